/* The daemon's JSON configuration.  Parsing is strict: unknown keys, wrong
 * types, duplicate keys and impossible values fail with a message naming the
 * JSON path ("secrets[1].ttl: ...").  Parsing does no I/O beyond reading the
 * file.  See docs/config.md for the reference. */
#ifndef CREDBROKER_CONFIG_H
#define CREDBROKER_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "audit.h"
#include "errmsg.h"
#include "fs.h"
#include "hooks.h"
#include "log.h"
#include "store.h"

#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_BACKENDS 16
#define CONFIG_MAX_SECRETS 256
#define CONFIG_MAX_NAME 48 /* secret and backend names */
#define CONFIG_MIN_TTL_USEC (1ULL * 1000000)
#define CONFIG_MAX_TTL_USEC (366ULL * 24 * 3600 * 1000000)
#define CONFIG_DEFAULT_REFRESH_USEC (5ULL * 60 * 1000000)
#define CONFIG_DEFAULT_LEASE_CHECK_USEC (60ULL * 1000000)

struct backend_ops;

#define CONFIG_MAX_HOOKS 8 /* per event, per secret and globally */

/* on_revoke and on_rotate hooks (hooks.h), each list at most
 * CONFIG_MAX_HOOKS. */
struct config_hooks {
	size_t revoke_count;
	struct hook_config *on_revoke;
	size_t rotate_count;
	struct hook_config *on_rotate;
};

struct config_backend {
	char name[CONFIG_MAX_NAME];
	const struct backend_ops *ops;
	void *cfg; /* ops->parse_config's result */
};

struct config_secret {
	char name[CONFIG_MAX_NAME]; /* [A-Za-z0-9_-], not starting with '.' */
	size_t backend;		    /* index into config.backends */
	uint64_t ttl_usec;
	uint64_t max_ttl_usec; /* >= ttl */
	uint64_t refresh_usec; /* poll period of non-expiring values */
	uint64_t overlap_usec; /* old credential kept after rotation;
				* 0: until it expires */
	uid_t uid;
	gid_t gid;
	mode_t mode;	     /* 0400 by default, never writable */
	size_t reader_count; /* 0: the mount's readers apply */
	uid_t readers[STORE_MAX_READERS];
	size_t file_count; /* 0: the backend's default files */
	char files[STORE_MAX_FILES][STORE_MAX_FILE_NAME];
	void *backend_cfg;	   /* ops->parse_secret_config's result */
	struct config_hooks hooks; /* this secret's own */
};

struct config {
	char mount_path[PATH_MAX]; /* a directory or /dev/fd/N */
	char mount_fd_socket[108]; /* receive /dev/fuse here instead */
	enum fs_cache_mode mount_cache;
	size_t reader_count;
	uid_t readers[STORE_MAX_READERS];
	char control_socket[108];
	size_t responder_count;
	uid_t responders[STORE_MAX_READERS];
	bool revoke_on_exit;
	/* The seccomp allowlist after start-up (default true).  false only
	 * for runs under valgrind, which cannot pass seccomp(2) through:
	 * everything else (no_new_privs, no capabilities, not dumpable)
	 * stays on. */
	bool seccomp;
	uint64_t lease_check_usec; /* ask upstreams if leases live; 0: off */
	struct audit_config audit;
	struct config_hooks hooks; /* for every secret */
	char state_file[PATH_MAX]; /* the freeze list; default: beside the
				    * control socket */
	enum log_level log_level;
	size_t backend_count;
	struct config_backend backends[CONFIG_MAX_BACKENDS];
	size_t secret_count;
	struct config_secret *secrets;
};

/* Parses text[0..len) (NUL bytes are not needed nor allowed).  Returns 0, or
 * -EINVAL with err naming the JSON path (syntax errors: "line L, column C"),
 * -EMSGSIZE past CONFIG_MAX_BYTES or 32 levels of nesting, -ENOMEM.  *ret is
 * set only on success and is freed with config_free.  Absent keys get their
 * defaults, except that secrets[].readers and secrets[].files stay empty
 * (count 0) so the mount's readers and the backend's default files apply. */
int config_parse(const char *text, size_t len, struct config **ret,
		 struct errmsg *err) __attribute__((warn_unused_result));
/* Reads and parses the file at path, following symlinks (ConfigMaps); it must
 * be a regular file.  Errors name the file: "PATH:L:C: ..." for syntax,
 * "PATH: secrets[0].ttl: ..." otherwise.  Returns config_parse's codes, or
 * -errno from open/read. */
int config_load(const char *path, struct config **ret, struct errmsg *err)
    __attribute__((warn_unused_result));
/* NULL-safe. */
void config_free(struct config *c);
/* "90s", "15m", "1h", "2d", "500ms", or a combination like "1h30m".
 * Returns 0 or -EINVAL. */
int config_parse_duration(const char *text, uint64_t *usec)
    __attribute__((warn_unused_result));
/* The duration at obj.key, from min to max, into *ret; an absent key
 * leaves *ret alone.  Returns 0, or -EINVAL with err naming "path.key"
 * and the allowed range.  For the parse hooks of backends and hooks. */
int config_duration_field(const json_t *obj, const char *path, const char *key,
			  uint64_t min, uint64_t max, uint64_t *ret,
			  struct errmsg *err)
    __attribute__((warn_unused_result));

/* Fails with "path.KEY: unknown key" on the first key of obj not in
 * allowed (NULL-terminated). */
int config_keys_check(const json_t *obj, const char *path,
		      const char *const *allowed, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Copies the string at obj.key into buf; an absent key leaves buf alone.
 * Returns 0, or -EINVAL naming "path.key" for a non-string, an empty
 * string, one that does not fit or one with a NUL. */
int config_string_field(const json_t *obj, const char *path, const char *key,
			char *buf, size_t size, struct errmsg *err)
    __attribute__((warn_unused_result));

#endif
