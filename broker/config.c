/* The daemon's JSON configuration (see config.h and docs/config.md).
 *
 * Parsing is strict so that a typo fails at start rather than silently
 * weakening what the broker enforces: every object is checked against a
 * list of known keys, every value's type and range is checked, and every
 * message names the JSON path of what was wrong.  Parsing does no I/O and
 * keeps nothing from the JSON tree: backends copy what they need in their
 * parse hooks. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "backend.h"
#include "config.h"

#define CONFIG_MAX_DEPTH 32	    /* JSON nesting, checked before jansson */
#define CONFIG_PATH_LEN 160	    /* a JSON path in a message */
#define CONFIG_SHOWN_LEN 48	    /* user text quoted in a message */
#define CONFIG_MAX_UID 4294967294LL /* (uid_t)-1 means "no change" */
#define CONFIG_DEFAULT_CONTROL "/run/credbroker/control.sock"
#define CONFIG_DEFAULT_MODE 0400
#define CONFIG_DURATION_HINT "a duration string like \"90s\""

/* ---- small helpers ---- */

/* Copies user text for a message: bytes outside printable ASCII become '?'
 * (no terminal escapes or newlines in a log line) and text longer than the
 * buffer is cut, ending in "...". */
static void config_show(const char *s, char *buf, size_t size)
{
	size_t i, n = 0, max = size - 1;

	for (i = 0; s[i] != '\0' && n < max; i++)
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] != '\0' && n >= 3)
		memcpy(buf + n - 3, "...", 3);
	buf[n] = '\0';
}

/* Marks a path that snprintf cut (n is its return value) with "...". */
static void config_path_cut(char *buf, size_t size, int n)
{
	if (n >= 0 && (size_t)n < size)
		return;
	if (size >= 4)
		memcpy(buf + size - 4, "...", 4);
}

/* "parent.key", or "key" at the top level.  Paths are only used in messages,
 * so a cut path is acceptable. */
static void config_path_key(char *buf, size_t size, const char *parent,
			    const char *key)
{
	char shown[CONFIG_SHOWN_LEN + 1];

	config_show(key, shown, sizeof(shown));
	config_path_cut(
	    buf, size,
	    snprintf(buf, size, "%s%s%s", parent, parent[0] ? "." : "", shown));
}

static void config_path_index(char *buf, size_t size, const char *parent,
			      size_t idx)
{
	config_path_cut(buf, size, snprintf(buf, size, "%s[%zu]", parent, idx));
}

static bool config_in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* Fails on the first key of obj that is neither in allowed nor extra. */
static int config_check_keys(const json_t *obj, const char *path,
			     const char *const *allowed, const char *extra,
			     struct errmsg *err)
{
	char p[CONFIG_PATH_LEN];
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		if (config_in_list(key, allowed) ||
		    (extra != NULL && strcmp(key, extra) == 0))
			continue;
		config_path_key(p, sizeof(p), path, key);
		return errmsg_set(err, -EINVAL, "%s: unknown key", p);
	}
	return 0;
}

/* True for [A-Za-z0-9_-]{1,CONFIG_MAX_NAME-1} not starting with '-'. */
static bool config_name_valid(const char *s)
{
	size_t n =
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		      "0123456789_-");

	return n > 0 && s[n] == '\0' && n < CONFIG_MAX_NAME && s[0] != '-';
}

/* True for a file name a secret directory may hold: [A-Za-z0-9._-], not
 * starting with '.' (which also keeps out ".", ".." and ".lease.json"). */
/* "*" stands for one file per key of the issued values. */
static bool config_file_name_valid(const char *s)
{
	size_t n;

	if (strcmp(s, "*") == 0)
		return true;
	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		      "0123456789._-");

	return n > 0 && s[n] == '\0' && n < STORE_MAX_FILE_NAME && s[0] != '.';
}

/* An absolute path that fits in size bytes. */
static int config_copy_path(const json_t *v, const char *path, char *dst,
			    size_t size, struct errmsg *err)
{
	const char *s;

	if (!json_is_string(v))
		return errmsg_set(err, -EINVAL, "%s: expected a path string",
				  path);
	s = json_string_value(v);
	if (s[0] != '/')
		return errmsg_set(err, -EINVAL, "%s: expected an absolute path",
				  path);
	if (strlen(s) >= size)
		return errmsg_set(err, -EINVAL, "%s: longer than %zu bytes",
				  path, size - 1);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int config_get_uid(const json_t *v, const char *path, uid_t *ret,
			  struct errmsg *err)
{
	json_int_t n;

	if (!json_is_integer(v))
		return errmsg_set(err, -EINVAL, "%s: expected an integer id",
				  path);
	n = json_integer_value(v);
	if (n < 0 || n > CONFIG_MAX_UID)
		return errmsg_set(err, -EINVAL,
				  "%s: id out of range (0 to %lld)", path,
				  CONFIG_MAX_UID);
	*ret = (uid_t)n;
	return 0;
}

/* A non-empty array of distinct uids, at most STORE_MAX_READERS. */
static int config_get_uid_list(const json_t *v, const char *path, uid_t *out,
			       size_t *count, struct errmsg *err)
{
	char p[CONFIG_PATH_LEN];
	size_t i, j, n;
	int r;

	if (!json_is_array(v))
		return errmsg_set(err, -EINVAL,
				  "%s: expected an array of integer ids", path);
	n = json_array_size(v);
	if (n == 0)
		return errmsg_set(err, -EINVAL, "%s: must not be empty", path);
	if (n > STORE_MAX_READERS)
		return errmsg_set(err, -EINVAL, "%s: more than %d ids", path,
				  STORE_MAX_READERS);
	for (i = 0; i < n; i++) {
		config_path_index(p, sizeof(p), path, i);
		r = config_get_uid(json_array_get(v, i), p, &out[i], err);
		if (r < 0)
			return r;
		for (j = 0; j < i; j++)
			if (out[j] == out[i])
				return errmsg_set(err, -EINVAL,
						  "%s: duplicate id %u", p,
						  (unsigned)out[i]);
	}
	*count = n;
	return 0;
}

static int config_get_duration(const json_t *v, const char *path, uint64_t *ret,
			       struct errmsg *err)
{
	char shown[CONFIG_SHOWN_LEN + 1];

	if (!json_is_string(v))
		return errmsg_set(err, -EINVAL, "%s: expected %s", path,
				  CONFIG_DURATION_HINT);
	if (config_parse_duration(json_string_value(v), ret) < 0) {
		config_show(json_string_value(v), shown, sizeof(shown));
		return errmsg_set(err, -EINVAL,
				  "%s: invalid duration \"%s\" (expected %s)",
				  path, shown, CONFIG_DURATION_HINT);
	}
	return 0;
}

/* ---- mount, control and scalars ---- */

static int config_cache_mode(const char *name, enum fs_cache_mode *ret)
{
	static const struct {
		const char *name;
		enum fs_cache_mode mode;
	} modes[] = {{"audited", FS_CACHE_AUDITED},
		     {"none", FS_CACHE_NONE},
		     {"fast", FS_CACHE_FAST}};
	size_t i;

	for (i = 0; name != NULL && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(name, modes[i].name) == 0) {
			*ret = modes[i].mode;
			return 0;
		}
	return -EINVAL;
}

static int config_parse_mount(const json_t *obj, struct config *c,
			      struct errmsg *err)
{
	static const char *const keys[] = {"path", "fd_socket", "readers",
					   "cache", NULL};
	const json_t *v;
	int r;

	if (obj == NULL)
		return errmsg_set(err, -EINVAL, "mount: required");
	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "mount: expected an object");
	r = config_check_keys(obj, "mount", keys, NULL, err);
	if (r < 0)
		return r;
	v = json_object_get(obj, "path");
	if (v == NULL)
		return errmsg_set(err, -EINVAL, "mount.path: required");
	r = config_copy_path(v, "mount.path", c->mount_path,
			     sizeof(c->mount_path), err);
	if (r < 0)
		return r;
	v = json_object_get(obj, "fd_socket");
	if (v != NULL) {
		r = config_copy_path(v, "mount.fd_socket", c->mount_fd_socket,
				     sizeof(c->mount_fd_socket), err);
		if (r < 0)
			return r;
	}
	v = json_object_get(obj, "cache");
	if (v != NULL) {
		r = config_cache_mode(json_string_value(v), &c->mount_cache);
		if (r < 0)
			return errmsg_set(err, r,
					  "mount.cache: expected \"audited\", "
					  "\"none\" or \"fast\"");
	}
	v = json_object_get(obj, "readers");
	if (v != NULL)
		return config_get_uid_list(v, "mount.readers", c->readers,
					   &c->reader_count, err);
	return 0;
}

/* With opens handled by the kernel, the mode bits are the only access
 * check: each secret must be readable by exactly its readers, which they
 * can say only when the one reader owns the files and no group or other
 * bit is set.  (Root reads anyway: CAP_DAC_OVERRIDE.) */
static int config_check_fast(const struct config *c, struct errmsg *err)
{
	const struct config_secret *s;
	const uid_t *readers;
	size_t i, count;

	if (c->mount_cache != FS_CACHE_FAST)
		return 0;
	if (c->mount_fd_socket[0] != '\0' ||
	    strncmp(c->mount_path, "/dev/fd/", 8) == 0)
		return errmsg_set(err, -EINVAL,
				  "mount.cache: \"fast\" needs a mount.path "
				  "the broker mounts itself (it adds "
				  "default_permissions)");
	for (i = 0; i < c->secret_count; i++) {
		s = &c->secrets[i];
		readers = s->reader_count ? s->readers : c->readers;
		count = s->reader_count ? s->reader_count : c->reader_count;
		if (count != 1 || readers[0] != s->uid || (s->mode & 077) != 0)
			return errmsg_set(
			    err, -EINVAL,
			    "secrets[%zu]: mount.cache \"fast\" lets the "
			    "kernel check access by mode bits: it needs one "
			    "reader, the files' uid, and a mode without group "
			    "or other bits",
			    i);
	}
	return 0;
}

/* Root may always use the control socket; responders adds to it. */
static int config_parse_control(const json_t *obj, struct config *c,
				struct errmsg *err)
{
	static const char *const keys[] = {"socket", "responders", NULL};
	const json_t *v;
	int r;

	if (obj == NULL)
		return 0;
	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "control: expected an object");
	r = config_check_keys(obj, "control", keys, NULL, err);
	if (r < 0)
		return r;
	v = json_object_get(obj, "socket");
	if (v != NULL) {
		r = config_copy_path(v, "control.socket", c->control_socket,
				     sizeof(c->control_socket), err);
		if (r < 0)
			return r;
	}
	v = json_object_get(obj, "responders");
	if (v != NULL)
		return config_get_uid_list(v, "control.responders",
					   c->responders, &c->responder_count,
					   err);
	return 0;
}

/* The audit log: stdout by default (the cluster's log pipeline). */
static int config_parse_audit(const json_t *obj, struct config *c,
			      struct errmsg *err)
{
	static const char *const keys[] = {"file", "stdout", "key_file",
					   "max_size", NULL};
	const json_t *v;
	int r;

	c->audit.to_stdout = true;
	if (obj == NULL)
		return 0;
	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "audit: expected an object");
	r = config_check_keys(obj, "audit", keys, NULL, err);
	if (r == 0 && (v = json_object_get(obj, "file")) != NULL) {
		r = config_copy_path(v, "audit.file", c->audit.path,
				     sizeof(c->audit.path), err);
		c->audit.to_stdout = false;
	}
	if (r == 0 && (v = json_object_get(obj, "key_file")) != NULL)
		r = config_copy_path(v, "audit.key_file", c->audit.key_file,
				     sizeof(c->audit.key_file), err);
	if (r == 0 && (v = json_object_get(obj, "stdout")) != NULL) {
		if (!json_is_boolean(v))
			return errmsg_set(err, -EINVAL,
					  "audit.stdout: "
					  "expected true or false");
		c->audit.to_stdout = json_is_true(v);
	}
	if (r == 0 && (v = json_object_get(obj, "max_size")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 4096)
			return errmsg_set(err, -EINVAL,
					  "audit.max_size: "
					  "expected bytes, at least 4096");
		c->audit.max_bytes = (uint64_t)json_integer_value(v);
	}
	return r;
}

/* The freeze list lives beside the control socket unless placed. */
static int config_parse_state_file(const json_t *v, struct config *c,
				   struct errmsg *err)
{
	const char *slash;

	if (v != NULL)
		return config_copy_path(v, "state_file", c->state_file,
					sizeof(c->state_file), err);
	slash = strrchr(c->control_socket, '/');
	(void)snprintf(c->state_file, sizeof(c->state_file), "%.*s/state.json",
		       (int)(slash - c->control_socket), c->control_socket);
	return 0;
}

/* One list of hooks at path ("hooks.on_revoke"). */
static int config_parse_hook_list(const json_t *v, const char *path,
				  struct hook_config **ret, size_t *count,
				  struct errmsg *err)
{
	char p[CONFIG_PATH_LEN];
	const json_t *item;
	size_t i;
	int r;

	if (v == NULL)
		return 0;
	if (!json_is_array(v) || json_array_size(v) > CONFIG_MAX_HOOKS)
		return errmsg_set(err, -EINVAL,
				  "%s: expected an array of at "
				  "most %d hooks",
				  path, CONFIG_MAX_HOOKS);
	*ret = calloc(json_array_size(v) + 1, sizeof(**ret));
	if (*ret == NULL)
		return -ENOMEM;
	json_array_foreach(v, i, item)
	{
		(void)snprintf(p, sizeof(p), "%s[%zu]", path, i);
		r = hook_config_parse(item, p, &(*ret)[i], err);
		if (r < 0)
			return r;
		(*count)++;
	}
	return 0;
}

/* {"on_revoke": [...], "on_rotate": [...]} at path ("hooks",
 * "secrets[2].hooks"). */
static int config_parse_hooks(const json_t *obj, const char *path,
			      struct config_hooks *h, struct errmsg *err)
{
	static const char *const keys[] = {"on_revoke", "on_rotate", NULL};
	char p[CONFIG_PATH_LEN];
	int r;

	if (obj == NULL)
		return 0;
	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "%s: expected an object", path);
	r = config_check_keys(obj, path, keys, NULL, err);
	(void)snprintf(p, sizeof(p), "%s.on_revoke", path);
	if (r == 0)
		r = config_parse_hook_list(json_object_get(obj, "on_revoke"), p,
					   &h->on_revoke, &h->revoke_count,
					   err);
	(void)snprintf(p, sizeof(p), "%s.on_rotate", path);
	if (r == 0)
		r = config_parse_hook_list(json_object_get(obj, "on_rotate"), p,
					   &h->on_rotate, &h->rotate_count,
					   err);
	return r;
}

static void config_hooks_free(struct config_hooks *h)
{
	size_t i;

	for (i = 0; i < h->revoke_count; i++)
		hook_config_free(&h->on_revoke[i]);
	for (i = 0; i < h->rotate_count; i++)
		hook_config_free(&h->on_rotate[i]);
	free(h->on_revoke);
	free(h->on_rotate);
	memset(h, 0, sizeof(*h));
}

static int config_parse_scalars(const json_t *root, struct config *c,
				struct errmsg *err)
{
	const json_t *v;

	v = json_object_get(root, "revoke_on_exit");
	if (v != NULL) {
		if (!json_is_boolean(v))
			return errmsg_set(
			    err, -EINVAL,
			    "revoke_on_exit: expected true or false");
		c->revoke_on_exit = json_is_true(v);
	}
	v = json_object_get(root, "seccomp");
	if (v != NULL) {
		if (!json_is_boolean(v))
			return errmsg_set(err, -EINVAL,
					  "seccomp: expected true or false");
		c->seccomp = json_is_true(v);
	}
	v = json_object_get(root, "log_level");
	if (v != NULL) {
		if (!json_is_string(v) ||
		    log_level_parse(json_string_value(v), &c->log_level) < 0)
			return errmsg_set(err, -EINVAL,
					  "log_level: expected \"debug\", "
					  "\"info\" or \"warn\"");
	}
	v = json_object_get(root, "lease_check_interval");
	if (v == NULL)
		return 0;
	if (config_get_duration(v, "lease_check_interval", &c->lease_check_usec,
				err) < 0)
		return -EINVAL;
	if (c->lease_check_usec != 0 &&
	    c->lease_check_usec < CONFIG_MIN_TTL_USEC)
		return errmsg_set(err, -EINVAL,
				  "lease_check_interval: must be "
				  "0s (off) or at least 1s");
	return 0;
}

/* ---- backend hooks ---- */

/* Runs a backend parse hook.  The hook writes its own message; one that
 * fails without a message still gets one naming the path.  Errors other
 * than -ENOMEM become -EINVAL, as config_parse promises. */
static int config_call_hook(int (*hook)(const json_t *, const char *, void **,
					struct errmsg *),
			    const json_t *obj, const char *path, void **ret,
			    struct errmsg *err)
{
	struct errmsg e = {{0}};
	int r;

	r = hook(obj, path, ret, &e);
	if (r >= 0)
		return 0;
	if (r != -ENOMEM)
		r = -EINVAL;
	if (e.text[0] == '\0')
		return errmsg_set(err, r, "%s: invalid", path);
	return errmsg_set(err, r, "%s", e.text);
}

/* Hands a copy of obj without "type" to the backend, so that the backend
 * can reject every key it does not know. */
static int config_backend_hook(struct config_backend *b, json_t *obj,
			       const char *path, struct errmsg *err)
{
	static const char *const keys[] = {"type", NULL};
	json_t *copy;
	int r;

	if (b->ops->parse_config == NULL)
		return config_check_keys(obj, path, keys, NULL, err);
	copy = json_copy(obj);
	if (copy == NULL || json_object_del(copy, "type") < 0) {
		json_decref(copy);
		return -ENOMEM;
	}
	r = config_call_hook(b->ops->parse_config, copy, path, &b->cfg, err);
	json_decref(copy);
	return r;
}

static int config_parse_backend(const char *name, json_t *obj,
				struct config_backend *b, struct errmsg *err)
{
	char path[CONFIG_PATH_LEN], shown[CONFIG_SHOWN_LEN + 1];
	const json_t *type;

	config_path_key(path, sizeof(path), "backends", name);
	if (!config_name_valid(name))
		return errmsg_set(err, -EINVAL,
				  "%s: invalid backend name (use 1 to %d of "
				  "[A-Za-z0-9_-], not starting with '-')",
				  path, CONFIG_MAX_NAME - 1);
	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "%s: expected an object", path);
	type = json_object_get(obj, "type");
	if (type == NULL)
		return errmsg_set(err, -EINVAL, "%s.type: required", path);
	if (!json_is_string(type))
		return errmsg_set(err, -EINVAL, "%s.type: expected a string",
				  path);
	b->ops = backend_find(json_string_value(type));
	if (b->ops == NULL) {
		config_show(json_string_value(type), shown, sizeof(shown));
		return errmsg_set(err, -EINVAL,
				  "%s.type: unknown backend type \"%s\"", path,
				  shown);
	}
	memcpy(b->name, name, strlen(name) + 1);
	return config_backend_hook(b, obj, path, err);
}

static int config_parse_backends(json_t *obj, struct config *c,
				 struct errmsg *err)
{
	const char *name;
	json_t *v;
	int r;

	if (obj == NULL)
		return errmsg_set(err, -EINVAL, "backends: required");
	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL,
				  "backends: expected an object of named "
				  "backends");
	if (json_object_size(obj) > CONFIG_MAX_BACKENDS)
		return errmsg_set(err, -EINVAL, "backends: more than %d",
				  CONFIG_MAX_BACKENDS);
	json_object_foreach(obj, name, v)
	{
		/* Counted first so config_free sees a half-parsed backend. */
		r = config_parse_backend(name, v,
					 &c->backends[c->backend_count++], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- secrets ---- */

/* Secrets before s in c->secrets are already parsed: names must differ. */
static int config_secret_name(const json_t *obj, const char *path,
			      const struct config *c, struct config_secret *s,
			      struct errmsg *err)
{
	const json_t *v = json_object_get(obj, "name");
	size_t i, idx = (size_t)(s - c->secrets);

	if (v == NULL)
		return errmsg_set(err, -EINVAL, "%s.name: required", path);
	if (!json_is_string(v) || !config_name_valid(json_string_value(v)))
		return errmsg_set(err, -EINVAL,
				  "%s.name: expected 1 to %d of [A-Za-z0-9_-], "
				  "not starting with '-'",
				  path, CONFIG_MAX_NAME - 1);
	for (i = 0; i < idx; i++)
		if (strcmp(c->secrets[i].name, json_string_value(v)) == 0)
			return errmsg_set(err, -EINVAL,
					  "%s.name: duplicate secret name "
					  "\"%s\"",
					  path, json_string_value(v));
	memcpy(s->name, json_string_value(v), strlen(json_string_value(v)) + 1);
	return 0;
}

/* Sets s->backend from the secret's "backend" key. */
static int config_secret_backend(const json_t *obj, const char *path,
				 const struct config *c,
				 struct config_secret *s, struct errmsg *err)
{
	char shown[CONFIG_SHOWN_LEN + 1];
	const json_t *v = json_object_get(obj, "backend");
	size_t i;

	if (v == NULL)
		return errmsg_set(err, -EINVAL, "%s.backend: required", path);
	if (!json_is_string(v))
		return errmsg_set(err, -EINVAL,
				  "%s.backend: expected a backend name", path);
	for (i = 0; i < c->backend_count; i++) {
		if (strcmp(c->backends[i].name, json_string_value(v)) == 0) {
			s->backend = i;
			return 0;
		}
	}
	config_show(json_string_value(v), shown, sizeof(shown));
	return errmsg_set(err, -EINVAL,
			  "%s.backend: no backend named \"%s\" in backends",
			  path, shown);
}

static int config_secret_ttls(const json_t *obj, const char *path,
			      struct config_secret *s, struct errmsg *err)
{
	char p[CONFIG_PATH_LEN];
	const json_t *v;
	int r;

	config_path_key(p, sizeof(p), path, "ttl");
	v = json_object_get(obj, "ttl");
	if (v == NULL)
		return errmsg_set(err, -EINVAL, "%s: required", p);
	r = config_get_duration(v, p, &s->ttl_usec, err);
	if (r < 0)
		return r;
	if (s->ttl_usec < CONFIG_MIN_TTL_USEC ||
	    s->ttl_usec > CONFIG_MAX_TTL_USEC)
		return errmsg_set(err, -EINVAL, "%s: must be from 1s to 366d",
				  p);
	s->max_ttl_usec = s->ttl_usec;
	config_path_key(p, sizeof(p), path, "max_ttl");
	v = json_object_get(obj, "max_ttl");
	if (v == NULL)
		return 0;
	r = config_get_duration(v, p, &s->max_ttl_usec, err);
	if (r < 0)
		return r;
	if (s->max_ttl_usec < s->ttl_usec)
		return errmsg_set(err, -EINVAL, "%s: shorter than ttl", p);
	if (s->max_ttl_usec > CONFIG_MAX_TTL_USEC)
		return errmsg_set(err, -EINVAL, "%s: longer than 366d", p);
	return 0;
}

/* How long a superseded credential stays valid after a rotation;
 * absent: until it expires. */
static int config_secret_overlap(const json_t *obj, const char *path,
				 struct config_secret *s, struct errmsg *err)
{
	char p[CONFIG_PATH_LEN];
	const json_t *v = json_object_get(obj, "overlap");

	s->overlap_usec = 0;
	if (v == NULL)
		return 0;
	config_path_key(p, sizeof(p), path, "overlap");
	if (config_get_duration(v, p, &s->overlap_usec, err) < 0)
		return -EINVAL;
	if (s->overlap_usec > s->max_ttl_usec)
		return errmsg_set(err, -EINVAL, "%s: longer than max_ttl", p);
	return 0;
}

/* How often a value that never expires by itself (KV) is polled. */
static int config_secret_refresh(const json_t *obj, const char *path,
				 struct config_secret *s, struct errmsg *err)
{
	char p[CONFIG_PATH_LEN];
	const json_t *v;
	int r;

	s->refresh_usec = CONFIG_DEFAULT_REFRESH_USEC;
	config_path_key(p, sizeof(p), path, "refresh");
	v = json_object_get(obj, "refresh");
	if (v == NULL)
		return 0;
	r = config_get_duration(v, p, &s->refresh_usec, err);
	if (r < 0)
		return r;
	if (s->refresh_usec < CONFIG_MIN_TTL_USEC ||
	    s->refresh_usec > CONFIG_MAX_TTL_USEC)
		return errmsg_set(err, -EINVAL, "%s: must be from 1s to 366d",
				  p);
	return 0;
}

/* An octal string of read bits only: the mount is read-only, and a secret
 * file is never executable nor setuid/setgid/sticky. */
static int config_get_mode(const json_t *v, const char *path, mode_t *ret,
			   struct errmsg *err)
{
	const char *s;
	size_t n;
	mode_t m = 0;

	if (!json_is_string(v))
		return errmsg_set(err, -EINVAL,
				  "%s: expected an octal string like \"0400\"",
				  path);
	s = json_string_value(v);
	n = strspn(s, "01234567");
	if (n < 3 || n > 4 || s[n] != '\0')
		return errmsg_set(err, -EINVAL,
				  "%s: expected an octal string like \"0400\"",
				  path);
	for (; *s != '\0'; s++)
		m = m * 8 + (mode_t)(*s - '0');
	if ((m & ~(mode_t)0444) != 0)
		return errmsg_set(err, -EINVAL,
				  "%s: only read bits (0444) are allowed: the "
				  "mount is read-only and never executable",
				  path);
	if (m == 0)
		return errmsg_set(err, -EINVAL, "%s: grants no read bit", path);
	*ret = m;
	return 0;
}

static int config_secret_owner(const json_t *obj, const char *path,
			       struct config_secret *s, struct errmsg *err)
{
	char p[CONFIG_PATH_LEN];
	const json_t *v;
	uid_t id;
	int r = 0;

	s->uid = getuid();
	s->gid = getgid();
	s->mode = CONFIG_DEFAULT_MODE;
	if ((v = json_object_get(obj, "uid")) != NULL) {
		config_path_key(p, sizeof(p), path, "uid");
		r = config_get_uid(v, p, &s->uid, err);
	}
	if (r == 0 && (v = json_object_get(obj, "gid")) != NULL) {
		config_path_key(p, sizeof(p), path, "gid");
		r = config_get_uid(v, p, &id, err);
		if (r == 0)
			s->gid = (gid_t)id;
	}
	if (r == 0 && (v = json_object_get(obj, "mode")) != NULL) {
		config_path_key(p, sizeof(p), path, "mode");
		r = config_get_mode(v, p, &s->mode, err);
	}
	if (r == 0 && (v = json_object_get(obj, "readers")) != NULL) {
		config_path_key(p, sizeof(p), path, "readers");
		r = config_get_uid_list(v, p, s->readers, &s->reader_count,
					err);
	}
	return r;
}

/* Leaves file_count 0 when absent: the backend's default files apply. */
static int config_secret_files(const json_t *obj, const char *path,
			       struct config_secret *s, struct errmsg *err)
{
	char p[CONFIG_PATH_LEN], q[CONFIG_PATH_LEN];
	const json_t *v = json_object_get(obj, "files"), *f;
	size_t i, j, n;

	if (v == NULL)
		return 0;
	config_path_key(p, sizeof(p), path, "files");
	if (!json_is_array(v) || json_array_size(v) == 0)
		return errmsg_set(
		    err, -EINVAL,
		    "%s: expected a non-empty array of file names", p);
	n = json_array_size(v);
	if (n > STORE_MAX_FILES)
		return errmsg_set(err, -EINVAL, "%s: more than %d files", p,
				  STORE_MAX_FILES);
	for (i = 0; i < n; i++) {
		config_path_index(q, sizeof(q), p, i);
		f = json_array_get(v, i);
		if (!json_is_string(f) ||
		    !config_file_name_valid(json_string_value(f)))
			return errmsg_set(
			    err, -EINVAL,
			    "%s: expected a file name: 1 to %d of "
			    "[A-Za-z0-9._-], not starting with "
			    "'.'",
			    q, STORE_MAX_FILE_NAME - 1);
		memcpy(s->files[i], json_string_value(f),
		       strlen(json_string_value(f)) + 1);
		for (j = 0; j < i; j++)
			if (strcmp(s->files[j], s->files[i]) == 0)
				return errmsg_set(err, -EINVAL,
						  "%s: duplicate file \"%s\"",
						  q, s->files[i]);
	}
	s->file_count = n;
	return 0;
}

/* The secret's backend-specific object sits under the backend's type
 * ("postgres": {...}); the hook sees NULL when it is absent. */
static int config_secret_backend_cfg(const json_t *obj, const char *path,
				     const struct config_backend *b,
				     struct config_secret *s,
				     struct errmsg *err)
{
	char p[CONFIG_PATH_LEN];
	const json_t *v = json_object_get(obj, b->ops->type);

	config_path_key(p, sizeof(p), path, b->ops->type);
	if (v != NULL && !json_is_object(v))
		return errmsg_set(err, -EINVAL, "%s: expected an object", p);
	if (b->ops->parse_secret_config == NULL)
		return 0;
	return config_call_hook(b->ops->parse_secret_config, v, p,
				&s->backend_cfg, err);
}

static int config_parse_secret(const json_t *obj, const char *path,
			       const struct config *c, struct config_secret *s,
			       struct errmsg *err)
{
	static const char *const keys[] = {
	    "name",    "backend", "ttl",     "max_ttl", "uid",	 "gid", "mode",
	    "readers", "files",	  "refresh", "overlap", "hooks", NULL};
	const struct config_backend *b;
	int r;

	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "%s: expected an object", path);
	/* The backend first: its type is the one extra key allowed. */
	r = config_secret_backend(obj, path, c, s, err);
	if (r < 0)
		return r;
	b = &c->backends[s->backend];
	r = config_check_keys(obj, path, keys,
			      b->ops->parse_secret_config ? b->ops->type : NULL,
			      err);
	if (r == 0)
		r = config_secret_name(obj, path, c, s, err);
	if (r == 0)
		r = config_secret_ttls(obj, path, s, err);
	if (r == 0)
		r = config_secret_refresh(obj, path, s, err);
	if (r == 0)
		r = config_secret_overlap(obj, path, s, err);
	if (r == 0)
		r = config_secret_owner(obj, path, s, err);
	if (r == 0)
		r = config_secret_files(obj, path, s, err);
	if (r == 0)
		r = config_secret_backend_cfg(obj, path, b, s, err);
	if (r == 0) {
		char p[CONFIG_PATH_LEN];

		config_path_key(p, sizeof(p), path, "hooks");
		r = config_parse_hooks(json_object_get(obj, "hooks"), p,
				       &s->hooks, err);
	}
	return r;
}

static int config_parse_secrets(const json_t *arr, struct config *c,
				struct errmsg *err)
{
	char path[CONFIG_PATH_LEN];
	size_t i, n;
	int r;

	if (arr == NULL)
		return errmsg_set(err, -EINVAL, "secrets: required");
	if (!json_is_array(arr))
		return errmsg_set(err, -EINVAL,
				  "secrets: expected an array of secrets");
	n = json_array_size(arr);
	if (n == 0)
		return errmsg_set(err, -EINVAL,
				  "secrets: at least one secret is required");
	if (n > CONFIG_MAX_SECRETS)
		return errmsg_set(err, -EINVAL, "secrets: more than %d",
				  CONFIG_MAX_SECRETS);
	c->secrets = calloc(n, sizeof(*c->secrets));
	if (c->secrets == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		/* Counted first so config_free sees a half-parsed secret. */
		c->secret_count = i + 1;
		config_path_index(path, sizeof(path), "secrets", i);
		r = config_parse_secret(json_array_get(arr, i), path, c,
					&c->secrets[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the whole document ---- */

static int config_parse_root(json_t *root, struct config *c, struct errmsg *err)
{
	static const char *const keys[] = {
	    "mount",	 "control",    "revoke_on_exit", "seccomp",
	    "log_level", "backends",   "secrets",	 "lease_check_interval",
	    "audit",	 "state_file", "hooks",		 NULL};
	int r;

	if (!json_is_object(root))
		return errmsg_set(err, -EINVAL,
				  "expected a JSON object at the top level");
	c->reader_count = 1;
	c->readers[0] = getuid();
	memcpy(c->control_socket, CONFIG_DEFAULT_CONTROL,
	       sizeof(CONFIG_DEFAULT_CONTROL));
	c->revoke_on_exit = true;
	c->seccomp = true;
	c->log_level = LOG_LEVEL_INFO;
	c->lease_check_usec = CONFIG_DEFAULT_LEASE_CHECK_USEC;
	r = config_check_keys(root, "", keys, NULL, err);
	if (r == 0)
		r = config_parse_mount(json_object_get(root, "mount"), c, err);
	if (r == 0)
		r = config_parse_control(json_object_get(root, "control"), c,
					 err);
	if (r == 0)
		r = config_parse_scalars(root, c, err);
	if (r == 0)
		r = config_parse_audit(json_object_get(root, "audit"), c, err);
	if (r == 0)
		r = config_parse_hooks(json_object_get(root, "hooks"), "hooks",
				       &c->hooks, err);
	if (r == 0)
		r = config_parse_state_file(json_object_get(root, "state_file"),
					    c, err);
	if (r == 0)
		r = config_parse_backends(json_object_get(root, "backends"), c,
					  err);
	if (r == 0)
		r = config_parse_secrets(json_object_get(root, "secrets"), c,
					 err);
	if (r == 0)
		r = config_check_fast(c, err);
	return r;
}

/* jansson recurses once per nesting level; bound it well below its own
 * compiled-in limit (2048) before it runs.  Brackets inside strings do not
 * count; malformed input is left for jansson to report. */
static int config_check_depth(const char *text, size_t len, const char *source,
			      struct errmsg *err)
{
	size_t i, depth = 0, line = 1;
	bool in_str = false;

	for (i = 0; i < len; i++) {
		if (text[i] == '\n')
			line++;
		if (in_str) {
			if (text[i] == '\\')
				i++;
			else if (text[i] == '"')
				in_str = false;
		} else if (text[i] == '"') {
			in_str = true;
		} else if (text[i] == '[' || text[i] == '{') {
			if (++depth > CONFIG_MAX_DEPTH)
				return errmsg_set(err, -EMSGSIZE,
						  "%s%sline %zu: nested deeper "
						  "than %d levels",
						  source ? source : "",
						  source ? ": " : "", line,
						  CONFIG_MAX_DEPTH);
		} else if ((text[i] == ']' || text[i] == '}') && depth > 0) {
			depth--;
		}
	}
	return 0;
}

static int config_json_error(const json_error_t *je, const char *source,
			     struct errmsg *err)
{
	char shown[JSON_ERROR_TEXT_LENGTH];

	if (json_error_code(je) == json_error_out_of_memory)
		return -ENOMEM;
	config_show(je->text, shown, sizeof(shown));
	if (source != NULL)
		return errmsg_set(err, -EINVAL, "%s:%d:%d: %s", source,
				  je->line, je->column, shown);
	return errmsg_set(err, -EINVAL, "line %d, column %d: %s", je->line,
			  je->column, shown);
}

/* source names the file for syntax errors (NULL: none). */
static int config_parse_source(const char *text, size_t len, const char *source,
			       struct config **ret, struct errmsg *err)
{
	struct config *c = NULL;
	json_t *root = NULL;
	json_error_t je;
	int r;

	if (len > CONFIG_MAX_BYTES)
		return errmsg_set(
		    err, -EMSGSIZE, "%s%sconfig larger than %d bytes",
		    source ? source : "", source ? ": " : "", CONFIG_MAX_BYTES);
	r = config_check_depth(text, len, source, err);
	if (r < 0)
		return r;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return config_json_error(&je, source, err);
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = config_parse_root(root, c, err);
	if (r < 0) {
		if (r == -EINVAL && source != NULL)
			(void)errmsg_prefix(err, r, "%s", source);
		goto out;
	}
	*ret = c;
	c = NULL;
out:
	config_free(c);
	json_decref(root);
	return r;
}

int config_parse(const char *text, size_t len, struct config **ret,
		 struct errmsg *err)
{
	return config_parse_source(text, len, NULL, ret, err);
}

/* ---- files ---- */

/* Reads at most CONFIG_MAX_BYTES + 1 bytes, so an oversized file is
 * detected without trusting st_size. */
static int config_read_fd(int fd, char *buf, size_t *len)
{
	size_t n = 0;
	ssize_t k;

	while (n < CONFIG_MAX_BYTES + 1) {
		k = read(fd, buf + n, CONFIG_MAX_BYTES + 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > CONFIG_MAX_BYTES)
		return -EMSGSIZE;
	*len = n;
	return 0;
}

static int config_file_error(struct errmsg *err, int r, const char *path)
{
	if (r == -EMSGSIZE)
		return errmsg_set(err, r, "%s: larger than %d bytes", path,
				  CONFIG_MAX_BYTES);
	return errmsg_set(err, r, "%s: %s", path, strerror(-r));
}

/* Symlinks are followed on purpose: Kubernetes ConfigMap volumes are
 * symlinks into a timestamped directory. */
static int config_read_file(const char *path, char **ret, size_t *len,
			    struct errmsg *err)
{
	struct stat st;
	char *buf = NULL;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return config_file_error(err, -errno, path);
	if (fstat(fd, &st) < 0) {
		r = config_file_error(err, -errno, path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = errmsg_set(err, -EINVAL, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > CONFIG_MAX_BYTES) {
		r = config_file_error(err, -EMSGSIZE, path);
		goto out;
	}
	buf = malloc(CONFIG_MAX_BYTES + 1);
	if (buf == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = config_read_fd(fd, buf, len);
	if (r < 0) {
		(void)config_file_error(err, r, path);
		goto out;
	}
	*ret = buf;
	buf = NULL;
out:
	free(buf);
	(void)close(fd);
	return r;
}

int config_load(const char *path, struct config **ret, struct errmsg *err)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	r = config_read_file(path, &text, &len, err);
	if (r < 0)
		return r;
	r = config_parse_source(text, len, path, ret, err);
	free(text);
	return r;
}

void config_free(struct config *c)
{
	const struct config_backend *b;
	size_t i;

	if (c == NULL)
		return;
	config_hooks_free(&c->hooks);
	for (i = 0; i < c->secret_count; i++) {
		config_hooks_free(&c->secrets[i].hooks);
		b = &c->backends[c->secrets[i].backend];
		if (c->secrets[i].backend_cfg != NULL && b->ops != NULL &&
		    b->ops->free_secret_config != NULL)
			b->ops->free_secret_config(c->secrets[i].backend_cfg);
	}
	free(c->secrets);
	for (i = 0; i < c->backend_count; i++) {
		b = &c->backends[i];
		if (b->cfg != NULL && b->ops != NULL &&
		    b->ops->free_config != NULL)
			b->ops->free_config(b->cfg);
	}
	free(c);
}
