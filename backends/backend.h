/* A backend talks to one upstream and nothing else: it owns no scheduling,
 * no files and no threads.  The core reaches it only through this table, so
 * it never tests a backend's name.  Every operation may be called from the
 * scheduler thread and from control threads at once: an implementation
 * serialises its own upstream I/O and bounds every call in time.
 *
 * Errors: -errno plus a message in err that never carries secret bytes.
 * -EAGAIN (or any error other than -EINVAL/-EPERM/-EACCES) means "retry
 * later"; -EINVAL/-EPERM/-EACCES mean a retry will not help. */
#ifndef CREDBROKER_BACKEND_H
#define CREDBROKER_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "errmsg.h"
#include "kv.h"
#include "render.h"

#define LEASE_MAX_ID 128

/* A lease that never expires by itself (a KV value): the broker polls it
 * every secret's refresh interval instead of renewing it. */
#define LEASE_NO_EXPIRY INT64_MAX

/* What the broker keeps about one issued credential: no secret bytes. */
struct lease {
	char id[LEASE_MAX_ID]; /* role name, Vault lease id, KV path@version */
	int64_t issued_wall;   /* wall usec */
	int64_t expires_wall;  /* wall usec, as granted; or LEASE_NO_EXPIRY */
	int64_t max_wall;      /* wall usec past which renewal is impossible */
	bool renewable;
	uint64_t identity; /* the backend identity generation that issued
			    * it (see maintain); 0 when not tracked */
};

/* The state of a backend's own upstream identity (a Vault token). */
struct backend_identity {
	uint64_t generation;  /* bumps with every new identity (login) */
	int64_t expires_wall; /* when the identity dies; LEASE_NO_EXPIRY */
	int64_t next_wall;    /* when maintain wants to run again */
};

struct backend_issue_request {
	const char *secret_name;
	const void *secret_cfg; /* from parse_secret */
	int64_t now_wall;
	uint64_t ttl_usec;
	uint64_t max_ttl_usec;
};

struct backend;

struct backend_ops {
	const char *type; /* the "type" in the config's backends map */
	/* Files a secret gets when its config names none; NULL-terminated. */
	const char *const *default_files;
	/* Optional: the default files of one secret, when they depend on its
	 * config (an AWS key pair versus a Secrets Manager value). */
	const char *const *(*secret_files)(const void *secret_cfg);
	/* Names for the "env" rendering; {NULL, NULL}-terminated. */
	const struct render_env_name *env_names;

	/* Parse this backend's part of the config.  path is the JSON path of
	 * obj for messages ("backends.pg").  *ret is owned by the caller and
	 * freed with free_config / free_secret_config. */
	int (*parse_config)(const json_t *obj, const char *path, void **ret,
			    struct errmsg *err);
	void (*free_config)(void *cfg);
	/* obj may be NULL when the secret has no backend-specific object. */
	int (*parse_secret_config)(const json_t *obj, const char *path,
				   void **ret, struct errmsg *err);
	void (*free_secret_config)(void *cfg);

	/* A new instance from a parsed config; no I/O yet. */
	int (*create)(const void *cfg, struct backend **ret);
	/* Establish (or re-establish) the upstream identity. */
	int (*login)(struct backend *b, struct errmsg *err);
	/* Issue a new credential: fills lease and values (owned by caller). */
	int (*issue)(struct backend *b, const struct backend_issue_request *req,
		     struct lease *lease, struct kv *values,
		     struct errmsg *err);
	/* Extend lease to want_expires_wall (the broker caps it at max_wall);
	 * on success lease->expires_wall holds what the upstream granted. */
	int (*renew)(struct backend *b, const void *secret_cfg,
		     struct lease *lease, int64_t want_expires_wall,
		     struct errmsg *err);
	/* Revoke one lease upstream; revoking a lease that is already gone
	 * succeeds. */
	int (*revoke)(struct backend *b, const struct lease *lease,
		      struct errmsg *err);
	/* Optional (NULL when the identity needs no upkeep).  Keeps the
	 * upstream identity alive: renews it, or logs in again when renewal
	 * can no longer extend it.  Fills *out.  Leases issued under an older
	 * generation die with that identity (Vault revokes a token's leases
	 * with it), so the broker re-issues them before out->expires_wall of
	 * the old one. */
	int (*maintain)(struct backend *b, int64_t now_wall,
			struct backend_identity *out, struct errmsg *err);
	/* Optional.  Asks the upstream whether lease still exists: 0 when it
	 * does, -ENOENT when the upstream no longer knows it (revoked from
	 * outside), another -errno when the question failed. */
	int (*check)(struct backend *b, const struct lease *lease,
		     struct errmsg *err);
	/* Optional.  Proves a revoked lease is dead upstream, for "revoke
	 * --verify"; values are the credential's (wiped right after).  0
	 * when proven, -EEXIST when it still works (err says how), another
	 * -errno when the question failed.  Fills detail (at most
	 * ERRMSG_MAX) with what was checked. */
	int (*verify)(struct backend *b, const struct lease *lease,
		      const struct kv *values, char *detail,
		      struct errmsg *err);
	/* Revoke every credential this instance issued that it still knows of,
	 * and its own upstream identity where it has one. */
	int (*revoke_all)(struct backend *b, struct errmsg *err);
	/* Close connections and free.  NULL-safe. */
	void (*destroy)(struct backend *b);
};

/* The backend type named type, or NULL.  The table lives in registry.c. */
const struct backend_ops *backend_find(const char *type);

#endif
