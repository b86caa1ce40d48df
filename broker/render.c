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
	       strcmp(spec, "dsn") == 0;
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
	size_t i;
	int r;

	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (kv_get(kv, need[i]) == NULL)
			return errmsg_set(err, -ENOENT,
					  "dsn needs the value \"%s\"",
					  need[i]);
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
	value = kv_get(kv, spec);
	if (value == NULL)
		return errmsg_set(err, -ENOENT,
				  "the upstream returned no value \"%s\"",
				  spec);
	bytes = secret_expose(value, &len);
	return secret_from(bytes, len, ret);
}
