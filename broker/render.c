/* Renderings are written straight into secret memory: each builder sizes its
 * output from the worst case of its escaping, so no intermediate copy of a
 * value ever exists outside struct secret. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "render.h"

struct outbuf {
	struct secret *s;
	unsigned char *p;
	size_t len;
	size_t cap;
};

static int outbuf_init(struct outbuf *o, size_t cap)
{
	int r;

	memset(o, 0, sizeof(*o));
	r = secret_new(cap, &o->s);
	if (r < 0)
		return r;
	o->p = secret_expose(o->s, NULL);
	o->cap = cap;
	return 0;
}

/* The capacity is computed up front, so running out is a bug; still, never
 * write past it. */
static void outbuf_put(struct outbuf *o, const void *bytes, size_t n)
{
	if (n > o->cap - o->len)
		n = o->cap - o->len;
	memcpy(o->p + o->len, bytes, n);
	o->len += n;
}

static void outbuf_puts(struct outbuf *o, const char *str)
{
	outbuf_put(o, str, strlen(str));
}

static int outbuf_finish(struct outbuf *o, struct secret **ret)
{
	int r = secret_set_len(o->s, o->len);

	if (r < 0) {
		secret_free(o->s);
		return r;
	}
	*ret = o->s;
	return 0;
}

int render_is_format(const char *spec)
{
	return strcmp(spec, "json") == 0 || strcmp(spec, "env") == 0 ||
	       strcmp(spec, "dsn") == 0 || strcmp(spec, "credentials") == 0 ||
	       strcmp(spec, "credential_process") == 0;
}

/* The keys a rendering cannot do without; err names the first missing. */
static int render_need(const struct kv *kv, const char *spec,
		       const char *const *keys, size_t n, struct errmsg *err)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (kv_get(kv, keys[i]) == NULL)
			return errmsg_set(err, -ENOENT,
					  "%s needs the value \"%s\"", spec,
					  keys[i]);
	return 0;
}

/* secret_len of key, 0 when absent: for sizing optional values. */
static size_t render_len(const struct kv *kv, const char *key)
{
	const struct secret *v = kv_get(kv, key);

	return v != NULL ? secret_len(v) : 0;
}

static size_t render_total(const struct kv *kv, size_t per_byte, size_t extra)
{
	size_t i, total = 16;

	for (i = 0; i < kv->count; i++)
		total += strlen(kv->items[i].key) * per_byte +
			 secret_len(kv->items[i].value) * per_byte + extra;
	return total;
}

static void put_json_string(struct outbuf *o, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	outbuf_puts(o, "\"");
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];
		char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

		if (c == '"' || c == '\\') {
			outbuf_put(o, "\\", 1);
			outbuf_put(o, &c, 1);
		} else if (c < 0x20 || c == 0x7f) {
			outbuf_put(o, esc, sizeof(esc));
		} else {
			outbuf_put(o, &c, 1);
		}
	}
	outbuf_puts(o, "\"");
}

static int render_json(const struct kv *kv, struct secret **ret)
{
	struct outbuf o;
	size_t i, len;
	int r;

	r = outbuf_init(&o, render_total(kv, 6, 8));
	if (r < 0)
		return r;
	outbuf_puts(&o, "{");
	for (i = 0; i < kv->count; i++) {
		const unsigned char *val =
		    secret_expose(kv->items[i].value, &len);

		outbuf_puts(&o, i ? ",\"" : "\"");
		outbuf_puts(&o, kv->items[i].key);
		outbuf_puts(&o, "\":");
		put_json_string(&o, val, len);
	}
	outbuf_puts(&o, "}\n");
	return outbuf_finish(&o, ret);
}

static void put_env_name(struct outbuf *o, const char *key,
			 const struct render_env_name *names)
{
	size_t i;

	for (i = 0; names != NULL && names[i].key != NULL; i++) {
		if (strcmp(names[i].key, key) == 0) {
			outbuf_puts(o, names[i].var);
			return;
		}
	}
	for (i = 0; key[i] != '\0'; i++) {
		char c = key[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			c = '_';
		outbuf_put(o, &c, 1);
	}
}

static int render_env(const struct kv *kv, const struct render_env_name *names,
		      struct secret **ret)
{
	struct outbuf o;
	size_t i, j, len;
	int r;

	r = outbuf_init(&o, render_total(kv, 4, 80));
	if (r < 0)
		return r;
	for (i = 0; i < kv->count; i++) {
		const char *val = secret_expose(kv->items[i].value, &len);

		put_env_name(&o, kv->items[i].key, names);
		outbuf_puts(&o, "='");
		for (j = 0; j < len; j++) {
			if (val[j] == '\'')
				outbuf_puts(&o, "'\\''");
			else
				outbuf_put(&o, &val[j], 1);
		}
		outbuf_puts(&o, "'\n");
	}
	return outbuf_finish(&o, ret);
}

static void put_pct(struct outbuf *o, const struct secret *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *v;
	size_t i, len;

	v = secret_expose(s, &len);
	for (i = 0; i < len; i++) {
		unsigned char c = v[i];
		bool unreserved = (c >= 'A' && c <= 'Z') ||
				  (c >= 'a' && c <= 'z') ||
				  (c >= '0' && c <= '9') || c == '-' ||
				  c == '.' || c == '_' || c == '~';
		char enc[3] = {'%', hex[c >> 4], hex[c & 15]};

		if (unreserved)
			outbuf_put(o, &c, 1);
		else
			outbuf_put(o, enc, sizeof(enc));
	}
}

/* A libpq URI.  A host that is a socket directory cannot sit in the
 * authority part, so it goes in the query string, as libpq documents. */
static int render_dsn(const struct kv *kv, struct secret **ret,
		      struct errmsg *err)
{
	static const char *const need[] = {"username", "password", "dbname"};
	const struct secret *host = kv_get(kv, "host");
	const struct secret *port = kv_get(kv, "port");
	bool socket_dir = false;
	struct outbuf o;
	int r;

	r = render_need(kv, "dsn", need, sizeof(need) / sizeof(need[0]), err);
	if (r < 0)
		return r;
	if (host != NULL && secret_len(host) > 0)
		socket_dir = *(const char *)secret_expose(host, NULL) == '/';
	r = outbuf_init(&o, render_total(kv, 3, 16) + 64);
	if (r < 0)
		return r;
	outbuf_puts(&o, "postgresql://");
	put_pct(&o, kv_get(kv, "username"));
	outbuf_puts(&o, ":");
	put_pct(&o, kv_get(kv, "password"));
	outbuf_puts(&o, "@");
	if (host != NULL && !socket_dir)
		put_pct(&o, host);
	if (port != NULL && !socket_dir) {
		outbuf_puts(&o, ":");
		put_pct(&o, port);
	}
	outbuf_puts(&o, "/");
	put_pct(&o, kv_get(kv, "dbname"));
	if (socket_dir) {
		outbuf_puts(&o, "?host=");
		put_pct(&o, host);
		if (port != NULL) {
			outbuf_puts(&o, "&port=");
			put_pct(&o, port);
		}
	}
	return outbuf_finish(&o, ret);
}

static const char *const render_aws_need[] = {"access_key_id",
					      "secret_access_key"};

/* An INI value runs to the end of its line and has no quoting, so a CR or
 * LF would start a new line (a forged key or section) and other control
 * bytes are read differently by different parsers: refuse them all. */
static int render_ini_check(const struct kv *kv, const char *key,
			    struct errmsg *err)
{
	const struct secret *v = kv_get(kv, key);
	const unsigned char *p;
	size_t i, len;

	if (v == NULL)
		return 0;
	p = secret_expose(v, &len);
	for (i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return errmsg_set(err, -EINVAL,
					  "credentials: the value \"%s\" holds "
					  "a control character, which an INI "
					  "file cannot carry",
					  key);
	return 0;
}

static void put_ini_line(struct outbuf *o, const char *name,
			 const struct secret *v)
{
	size_t len;
	const void *p = secret_expose(v, &len);

	outbuf_puts(o, name);
	outbuf_puts(o, " = ");
	outbuf_put(o, p, len);
	outbuf_puts(o, "\n");
}

/* The AWS shared-credentials file (~/.aws/credentials), profile "default",
 * as every AWS SDK and the CLI read it. */
static int render_aws_ini(const struct kv *kv, struct secret **ret,
			  struct errmsg *err)
{
	static const char *const vals[] = {"access_key_id", "secret_access_key",
					   "session_token"};
	const struct secret *token = kv_get(kv, "session_token");
	struct outbuf o;
	size_t i;
	int r;

	r = render_need(kv, "credentials", render_aws_need,
			sizeof(render_aws_need) / sizeof(render_aws_need[0]),
			err);
	for (i = 0; r == 0 && i < sizeof(vals) / sizeof(vals[0]); i++)
		r = render_ini_check(kv, vals[i], err);
	if (r < 0)
		return r;
	/* 128: the section and the three names, " = " and newlines. */
	r = outbuf_init(&o, 128 + render_len(kv, "access_key_id") +
				render_len(kv, "secret_access_key") +
				render_len(kv, "session_token"));
	if (r < 0)
		return r;
	outbuf_puts(&o, "[default]\n");
	put_ini_line(&o, "aws_access_key_id", kv_get(kv, "access_key_id"));
	put_ini_line(&o, "aws_secret_access_key",
		     kv_get(kv, "secret_access_key"));
	if (token != NULL)
		put_ini_line(&o, "aws_session_token", token);
	return outbuf_finish(&o, ret);
}

static void put_json_member(struct outbuf *o, const char *name,
			    const struct secret *v)
{
	size_t len;
	const unsigned char *p = secret_expose(v, &len);

	outbuf_puts(o, ",\"");
	outbuf_puts(o, name);
	outbuf_puts(o, "\":");
	put_json_string(o, p, len);
}

/* What a credential_process program prints for the AWS CLI and SDKs:
 * Version 1, the key pair, and for temporary credentials the session token
 * and the RFC 3339 expiration (the SDK refreshes before it). */
static int render_aws_process(const struct kv *kv, struct secret **ret,
			      struct errmsg *err)
{
	const struct secret *token = kv_get(kv, "session_token");
	const struct secret *expiration = kv_get(kv, "expiration");
	struct outbuf o;
	int r;

	r = render_need(kv, "credential_process", render_aws_need,
			sizeof(render_aws_need) / sizeof(render_aws_need[0]),
			err);
	if (r < 0)
		return r;
	/* Each value escapes to at most 6 bytes a byte; 128 covers the
	 * member names, quotes and braces. */
	r = outbuf_init(&o, 128 + 6 * (render_len(kv, "access_key_id") +
				       render_len(kv, "secret_access_key") +
				       render_len(kv, "session_token") +
				       render_len(kv, "expiration")));
	if (r < 0)
		return r;
	outbuf_puts(&o, "{\"Version\":1");
	put_json_member(&o, "AccessKeyId", kv_get(kv, "access_key_id"));
	put_json_member(&o, "SecretAccessKey", kv_get(kv, "secret_access_key"));
	if (token != NULL)
		put_json_member(&o, "SessionToken", token);
	if (expiration != NULL)
		put_json_member(&o, "Expiration", expiration);
	outbuf_puts(&o, "}\n");
	return outbuf_finish(&o, ret);
}

int render_file(const char *spec, const struct kv *kv,
		const struct render_env_name *env_names, struct secret **ret,
		struct errmsg *err)
{
	const struct secret *value;
	size_t len;
	void *bytes;

	if (strcmp(spec, "json") == 0)
		return render_json(kv, ret);
	if (strcmp(spec, "env") == 0)
		return render_env(kv, env_names, ret);
	if (strcmp(spec, "dsn") == 0)
		return render_dsn(kv, ret, err);
	if (strcmp(spec, "credentials") == 0)
		return render_aws_ini(kv, ret, err);
	if (strcmp(spec, "credential_process") == 0)
		return render_aws_process(kv, ret, err);
	value = kv_get(kv, spec);
	if (value == NULL)
		return errmsg_set(err, -ENOENT,
				  "the upstream returned no value \"%s\"",
				  spec);
	bytes = secret_expose(value, &len);
	return secret_from(bytes, len, ret);
}
