/* Parsing of the vault backend's config objects.  Messages name the JSON
 * path of the offending value, as config.c does for the rest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "vault_config.h"

#define VAULT_PATH_LEN 256
#define VAULT_MIN_TIMEOUT 100000ULL	     /* 100 ms */
#define VAULT_MAX_TIMEOUT (600ULL * 1000000) /* 10 min */

static int vault_parse_auth_obj(const json_t *auth, const char *path,
				struct vault_config *c, struct errmsg *err)
{
	static const char *const keys[] = {"method", "mount", "role",
					   "token_file", NULL};
	char p[VAULT_PATH_LEN], method[16] = "kubernetes";
	int r;

	(void)snprintf(p, sizeof(p), "%s.auth", path);
	if (!json_is_object(auth))
		return errmsg_set(err, -EINVAL,
				  "%s: required object with "
				  "\"role\"",
				  p);
	r = config_keys_check(auth, p, keys, err);
	if (r == 0)
		r = config_string_field(auth, p, "method", method,
					sizeof(method), err);
	if (r == 0 && strcmp(method, "kubernetes") != 0)
		r = errmsg_set(err, -EINVAL,
			       "%s.method: only \"kubernetes\" "
			       "is supported",
			       p);
	if (r == 0)
		r = config_string_field(auth, p, "mount", c->auth_mount,
					sizeof(c->auth_mount), err);
	if (r == 0)
		r = config_string_field(auth, p, "role", c->role,
					sizeof(c->role), err);
	if (r == 0 && c->role[0] == '\0')
		r = errmsg_set(err, -EINVAL, "%s.role: required", p);
	if (r == 0)
		r = config_string_field(auth, p, "token_file", c->token_file,
					sizeof(c->token_file), err);
	return r;
}

static int vault_parse_tls(const json_t *tls, const char *path,
			   struct vault_config *c, struct errmsg *err)
{
	static const char *const keys[] = {"ca_file",	  "ca_dir",
					   "cert_file",	  "key_file",
					   "server_name", "pinned_public_key",
					   NULL};
	char p[VAULT_PATH_LEN];
	int r;

	if (tls == NULL)
		return 0;
	(void)snprintf(p, sizeof(p), "%s.tls", path);
	if (!json_is_object(tls))
		return errmsg_set(err, -EINVAL, "%s: expected an object", p);
	r = config_keys_check(tls, p, keys, err);
	if (r == 0)
		r = config_string_field(tls, p, "ca_file", c->ca_file,
					sizeof(c->ca_file), err);
	if (r == 0)
		r = config_string_field(tls, p, "ca_dir", c->ca_dir,
					sizeof(c->ca_dir), err);
	if (r == 0)
		r = config_string_field(tls, p, "cert_file", c->cert_file,
					sizeof(c->cert_file), err);
	if (r == 0)
		r = config_string_field(tls, p, "key_file", c->key_file,
					sizeof(c->key_file), err);
	if (r == 0)
		r = config_string_field(tls, p, "server_name", c->server_name,
					sizeof(c->server_name), err);
	if (r == 0)
		r = config_string_field(tls, p, "pinned_public_key",
					c->pinned_public_key,
					sizeof(c->pinned_public_key), err);
	if (r == 0 && (c->cert_file[0] == '\0') != (c->key_file[0] == '\0'))
		r = errmsg_set(err, -EINVAL,
			       "%s: cert_file and key_file go "
			       "together",
			       p);
	if (r == 0 && c->pinned_public_key[0] != '\0' &&
	    strncmp(c->pinned_public_key, "sha256//", 8) != 0)
		r = errmsg_set(err, -EINVAL,
			       "%s.pinned_public_key: expected "
			       "\"sha256//BASE64\"",
			       p);
	return r;
}

/* TLS is not optional: only https:// addresses are accepted. */
static int vault_check_address(struct vault_config *c, const char *path,
			       struct errmsg *err)
{
	size_t len = strlen(c->address);

	if (len == 0)
		return errmsg_set(err, -EINVAL, "%s.address: required", path);
	if (strncmp(c->address, "https://", 8) != 0 || len == 8 ||
	    strpbrk(c->address, "?# \t") != NULL)
		return errmsg_set(err, -EINVAL,
				  "%s.address: expected "
				  "https://HOST[:PORT]",
				  path);
	while (len > 8 && c->address[len - 1] == '/')
		c->address[--len] = '\0';
	return 0;
}

static int vault_parse_limits(const json_t *obj, const char *path,
			      struct vault_config *c, struct errmsg *err)
{
	const json_t *v = json_object_get(obj, "max_response_bytes");
	int r;

	r = config_duration_field(obj, path, "connect_timeout",
				  VAULT_MIN_TIMEOUT, VAULT_MAX_TIMEOUT,
				  &c->connect_timeout_usec, err);
	if (r == 0)
		r = config_duration_field(obj, path, "request_timeout",
					  VAULT_MIN_TIMEOUT, VAULT_MAX_TIMEOUT,
					  &c->request_timeout_usec, err);
	if (r < 0 || v == NULL)
		return r;
	if (!json_is_integer(v) || json_integer_value(v) < 1024 ||
	    json_integer_value(v) > 64 * 1024 * 1024)
		return errmsg_set(err, -EINVAL,
				  "%s.max_response_bytes: "
				  "expected 1024 to 67108864",
				  path);
	c->max_response_bytes = (size_t)json_integer_value(v);
	return 0;
}

int vault_config_parse(const json_t *obj, const char *path, void **ret,
		       struct errmsg *err)
{
	static const char *const keys[] = {"address",
					   "namespace",
					   "auth",
					   "tls",
					   "connect_timeout",
					   "request_timeout",
					   "max_response_bytes",
					   NULL};
	struct vault_config *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	(void)snprintf(c->auth_mount, sizeof(c->auth_mount), "kubernetes");
	(void)snprintf(c->token_file, sizeof(c->token_file), "%s",
		       VAULT_DEFAULT_TOKEN_FILE);
	c->connect_timeout_usec = 5ULL * 1000000;
	c->request_timeout_usec = 30ULL * 1000000;
	c->max_response_bytes = VAULT_MAX_BODY;
	r = config_keys_check(obj, path, keys, err);
	if (r == 0)
		r = config_string_field(obj, path, "address", c->address,
					sizeof(c->address), err);
	if (r == 0)
		r = vault_check_address(c, path, err);
	if (r == 0)
		r = config_string_field(obj, path, "namespace", c->namespace_,
					sizeof(c->namespace_), err);
	if (r == 0)
		r = vault_parse_auth_obj(json_object_get(obj, "auth"), path, c,
					 err);
	if (r == 0)
		r = vault_parse_tls(json_object_get(obj, "tls"), path, c, err);
	if (r == 0)
		r = vault_parse_limits(obj, path, c, err);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void vault_config_free(void *cfg)
{
	free(cfg);
}

static int vault_parse_kind(const json_t *obj, const char *path,
			    struct vault_secret_config *s, struct errmsg *err)
{
	static const char *const names[] = {"leased", "kv2", "kv1"};
	char kind[16] = "leased";
	size_t i;
	int r;

	r = config_string_field(obj, path, "kind", kind, sizeof(kind), err);
	if (r < 0)
		return r;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(kind, names[i]) == 0) {
			s->kind = (enum vault_kind)i;
			return 0;
		}
	}
	return errmsg_set(err, -EINVAL,
			  "%s.kind: expected \"leased\", "
			  "\"kv2\" or \"kv1\"",
			  path);
}

/* A logical path: relative, no "..", no query, printable. */
static int vault_check_path(const char *text, const char *path, const char *key,
			    struct errmsg *err)
{
	const char *p;

	if (text[0] == '/' || strstr(text, "..") != NULL)
		return errmsg_set(err, -EINVAL,
				  "%s.%s: a relative Vault path "
				  "without \"..\"",
				  path, key);
	for (p = text; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("?#%\\\"", *p))
			return errmsg_set(err, -EINVAL,
					  "%s.%s: character %s "
					  "not allowed",
					  path, key,
					  *p == '?' ? "'?'"
						    : "outside the "
						      "path alphabet");
	return 0;
}

static int vault_parse_secret_fields(const json_t *obj, const char *path,
				     struct vault_secret_config *s,
				     struct errmsg *err)
{
	const json_t *v = json_object_get(obj, "version");
	int r;

	r = config_string_field(obj, path, "path", s->path, sizeof(s->path),
				err);
	if (r == 0 && s->path[0] == '\0')
		r = errmsg_set(err, -EINVAL, "%s.path: required", path);
	if (r == 0)
		r = vault_check_path(s->path, path, "path", err);
	if (r == 0)
		r = config_string_field(obj, path, "mount", s->mount,
					sizeof(s->mount), err);
	if (r == 0)
		r = vault_check_path(s->mount, path, "mount", err);
	if (r == 0)
		r = config_string_field(obj, path, "method", s->method,
					sizeof(s->method), err);
	if (r == 0 && strcmp(s->method, "GET") != 0 &&
	    strcmp(s->method, "POST") != 0)
		r = errmsg_set(err, -EINVAL,
			       "%s.method: expected \"GET\" or "
			       "\"POST\"",
			       path);
	if (r < 0 || v == NULL)
		return r;
	if (s->kind != VAULT_KV2 || !json_is_integer(v) ||
	    json_integer_value(v) < 1)
		return errmsg_set(err, -EINVAL,
				  "%s.version: a positive "
				  "integer, for kind \"kv2\" only",
				  path);
	s->version = (int64_t)json_integer_value(v);
	return 0;
}

int vault_secret_config_parse(const json_t *obj, const char *path, void **ret,
			      struct errmsg *err)
{
	static const char *const keys[] = {"kind",    "path",	"mount",
					   "version", "method", "host",
					   "port",    "dbname", NULL};
	struct vault_secret_config *s;
	int r;

	if (obj == NULL)
		return errmsg_set(err, -EINVAL,
				  "%s: required object with "
				  "\"path\"",
				  path);
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	(void)snprintf(s->mount, sizeof(s->mount), "secret");
	(void)snprintf(s->method, sizeof(s->method), "GET");
	r = config_keys_check(obj, path, keys, err);
	if (r == 0)
		r = vault_parse_kind(obj, path, s, err);
	if (r == 0)
		r = vault_parse_secret_fields(obj, path, s, err);
	if (r == 0)
		r = config_string_field(obj, path, "host", s->host,
					sizeof(s->host), err);
	if (r == 0)
		r = config_string_field(obj, path, "port", s->port,
					sizeof(s->port), err);
	if (r == 0)
		r = config_string_field(obj, path, "dbname", s->dbname,
					sizeof(s->dbname), err);
	if (r < 0) {
		free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void vault_secret_config_free(void *cfg)
{
	free(cfg);
}
