/* Follows AWS's "Create a canonical request for Signature Version 4":
 * path segments URI-encoded (unreserved characters kept), dot segments and
 * empty segments removed; query parameters decoded, re-encoded and sorted
 * by name, then value; header names lower-cased and sorted, values trimmed
 * with inner whitespace runs collapsed and folded lines joined by commas;
 * the payload's SHA-256 in hex. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"

#define SIGV4_MAX_PARAMS 64
#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

/* A bounded writer; once full, further appends only count. */
struct sigv4_out {
	char *buf;
	size_t size, len;
};

static void out_mem(struct sigv4_out *o, const char *p, size_t n)
{
	if (o->len + n < o->size)
		memcpy(o->buf + o->len, p, n);
	o->len += n;
	if (o->len < o->size)
		o->buf[o->len] = '\0';
}

static void out_str(struct sigv4_out *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

static bool out_ok(const struct sigv4_out *o)
{
	return o->len < o->size;
}

static bool sigv4_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	       c == '~';
}

static void out_encoded(struct sigv4_out *o, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char esc[3] = {'%', 0, 0};
	size_t i;

	for (i = 0; i < n; i++) {
		if (sigv4_unreserved((unsigned char)p[i])) {
			out_mem(o, &p[i], 1);
			continue;
		}
		esc[1] = hex[(unsigned char)p[i] >> 4];
		esc[2] = hex[(unsigned char)p[i] & 15];
		out_mem(o, esc, 3);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes p[0..n) into dst (at most n bytes); returns the length. */
static size_t sigv4_decode(const char *p, size_t n, char *dst)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 &&
		    hexval(p[i + 2]) >= 0) {
			dst[o++] =
			    (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
			i += 2;
		} else {
			dst[o++] = p[i];
		}
	}
	return o;
}

/* The canonical URI: segments encoded, "." and ".." resolved, empty
 * segments dropped (a trailing slash kept). */
static void sigv4_canonical_path(struct sigv4_out *o, const char *path)
{
	const char *seg[128], *p = path, *slash;
	size_t len[128], n = 0, i, l;
	bool trailing;

	l = strlen(path);
	trailing = l > 1 && path[l - 1] == '/';
	while (*p != '\0') {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		slash = strchr(p, '/');
		l = slash ? (size_t)(slash - p) : strlen(p);
		if (l == 2 && strncmp(p, "..", 2) == 0) {
			if (n > 0)
				n--;
		} else if (!(l == 1 && *p == '.') && n < 128) {
			seg[n] = p;
			len[n++] = l;
		}
		p += l;
	}
	for (i = 0; i < n; i++) {
		out_str(o, "/");
		out_encoded(o, seg[i], len[i]);
	}
	if (n == 0 || trailing)
		out_str(o, "/");
}

struct sigv4_param {
	char *text; /* "key=value", both encoded */
};

static int sigv4_cmp_param(const void *a, const void *b)
{
	const char *x = ((const struct sigv4_param *)a)->text;
	const char *y = ((const struct sigv4_param *)b)->text;
	size_t kx = strcspn(x, "="), ky = strcspn(y, "=");
	int r = strncmp(x, y, kx < ky ? kx : ky);

	if (r != 0 || kx != ky)
		return r != 0 ? r : (kx < ky ? -1 : 1);
	return strcmp(x + kx, y + ky);
}

/* One "k=v" of the query, decoded and re-encoded. */
static char *sigv4_param(const char *p, size_t n)
{
	const char *eq = memchr(p, '=', n);
	size_t kl = eq ? (size_t)(eq - p) : n, vl = eq ? n - kl - 1 : 0;
	char *tmp = malloc(n + 1), *res = malloc(3 * n + 2);
	struct sigv4_out o = {res, 3 * n + 2, 0};
	size_t d;

	if (tmp == NULL || res == NULL) {
		free(tmp);
		free(res);
		return NULL;
	}
	d = sigv4_decode(p, kl, tmp);
	out_encoded(&o, tmp, d);
	out_str(&o, "=");
	d = eq ? sigv4_decode(eq + 1, vl, tmp) : 0;
	out_encoded(&o, tmp, d);
	free(tmp);
	return res;
}

static int sigv4_canonical_query(struct sigv4_out *o, const char *query)
{
	struct sigv4_param params[SIGV4_MAX_PARAMS];
	const char *p = query, *amp;
	size_t n = 0, i, l;
	int r = 0;

	while (*p != '\0' && r == 0) {
		amp = strchr(p, '&');
		l = amp ? (size_t)(amp - p) : strlen(p);
		if (l > 0 && n == SIGV4_MAX_PARAMS)
			r = -EMSGSIZE;
		else if (l > 0 && (params[n].text = sigv4_param(p, l)) == NULL)
			r = -ENOMEM;
		else if (l > 0)
			n++;
		p += l + (amp != NULL);
	}
	qsort(params, n, sizeof(params[0]), sigv4_cmp_param);
	for (i = 0; i < n; i++) {
		if (r == 0) {
			out_str(o, i ? "&" : "");
			out_str(o, params[i].text);
		}
		free(params[i].text);
	}
	return r;
}

static int sigv4_cmp_header(const void *a, const void *b)
{
	return strcasecmp(((const struct sigv4_header *)a)->name,
			  ((const struct sigv4_header *)b)->name);
}

/* A header value trimmed, inner whitespace runs as one space, folded
 * lines joined by commas. */
static void sigv4_header_value(struct sigv4_out *o, const char *v)
{
	bool space = false, start = true;

	for (; *v != '\0'; v++) {
		if (*v == '\n' || *v == '\r') {
			if (!start && *v == '\n')
				out_str(o, ",");
			space = false;
			start = true;
			continue;
		}
		if (*v == ' ' || *v == '\t') {
			space = !start;
			continue;
		}
		if (space)
			out_str(o, " ");
		out_mem(o, v, 1);
		space = false;
		start = false;
	}
}

static void out_lower(struct sigv4_out *o, const char *s)
{
	char c;

	for (; *s != '\0'; s++) {
		c = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
		out_mem(o, &c, 1);
	}
}

/* Canonical headers (names lower-cased and sorted, one line each; equal
 * names joined with commas) and the signed-header list. */
static void sigv4_canonical_headers(struct sigv4_out *o, struct sigv4_out *sh,
				    const struct sigv4_header *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i > 0 && strcasecmp(h[i].name, h[i - 1].name) == 0) {
			out_str(o, ",");
		} else {
			if (i > 0)
				out_str(o, "\n");
			out_lower(o, h[i].name);
			out_str(o, ":");
			if (i > 0)
				out_str(sh, ";");
			out_lower(sh, h[i].name);
		}
		sigv4_header_value(o, h[i].value);
	}
	out_str(o, "\n");
}

static void sigv4_hex(const unsigned char *md, size_t n, char *hex)
{
	size_t i;

	for (i = 0; i < n; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static int sigv4_sha256_hex(const void *p, size_t n, char hex[65])
{
	unsigned char md[32];
	unsigned int len = 0;

	if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -EIO;
	sigv4_hex(md, 32, hex);
	return 0;
}

int sigv4_canonical_request(const struct sigv4_request *req, char *buf,
			    size_t size, char *signed_headers,
			    size_t signed_size)
{
	struct sigv4_header sorted[SIGV4_MAX_HEADERS];
	struct sigv4_out o = {buf, size, 0},
			 sh = {signed_headers, signed_size, 0};
	char hash[65];
	size_t i;
	bool host = false;
	int r;

	if (req->header_count > SIGV4_MAX_HEADERS)
		return -EINVAL;
	for (i = 0; i < req->header_count; i++)
		host = host || strcasecmp(req->headers[i].name, "host") == 0;
	if (!host)
		return -EINVAL;
	memcpy(sorted, req->headers, req->header_count * sizeof(sorted[0]));
	/* A stable sort keeps repeated headers in request order. */
	for (i = 1; i < req->header_count; i++) {
		struct sigv4_header t = sorted[i];
		size_t j = i;

		while (j > 0 && sigv4_cmp_header(&sorted[j - 1], &t) > 0) {
			sorted[j] = sorted[j - 1];
			j--;
		}
		sorted[j] = t;
	}
	out_str(&o, req->method);
	out_str(&o, "\n");
	sigv4_canonical_path(&o, req->path);
	out_str(&o, "\n");
	r = sigv4_canonical_query(&o, req->query ? req->query : "");
	if (r < 0)
		return r;
	out_str(&o, "\n");
	sigv4_canonical_headers(&o, &sh, sorted, req->header_count);
	out_str(&o, "\n");
	out_str(&o, signed_headers);
	out_str(&o, "\n");
	r = sigv4_sha256_hex(req->body ? req->body : "", req->body_len, hash);
	if (r < 0)
		return r;
	out_str(&o, hash);
	return out_ok(&o) && out_ok(&sh) ? 0 : -EMSGSIZE;
}

int sigv4_string_to_sign(const char *canonical, const char *amz_date,
			 const char *region, const char *service, char *buf,
			 size_t size)
{
	char hash[65];
	int n;

	if (strlen(amz_date) != 16 ||
	    sigv4_sha256_hex(canonical, strlen(canonical), hash) < 0)
		return -EINVAL;
	n = snprintf(buf, size,
		     SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s",
		     amz_date, amz_date, region, service, hash);
	return n < 0 || (size_t)n >= size ? -EMSGSIZE : 0;
}

static int sigv4_hmac(const void *key, size_t klen, const char *msg,
		      unsigned char out[32])
{
	unsigned int len = 0;

	return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
		    strlen(msg), out, &len) != NULL &&
		       len == 32
		   ? 0
		   : -EIO;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
 * service), "aws4_request"), all in a wiped buffer. */
static int sigv4_signature(const struct sigv4_key *key, const char *amz_date,
			   const char *region, const char *service,
			   const char *sts, char hex[65])
{
	unsigned char k[4][32], sig[32];
	char date[9], seed[4 + 128];
	size_t slen;
	const char *secret = secret_expose(key->secret_access_key, &slen);
	int r = -EMSGSIZE;

	if (slen <= 128) {
		memcpy(seed, "AWS4", 4);
		memcpy(seed + 4, secret, slen);
		(void)snprintf(date, sizeof(date), "%.8s", amz_date);
		r = sigv4_hmac(seed, 4 + slen, date, k[0]);
	}
	if (r == 0)
		r = sigv4_hmac(k[0], 32, region, k[1]);
	if (r == 0)
		r = sigv4_hmac(k[1], 32, service, k[2]);
	if (r == 0)
		r = sigv4_hmac(k[2], 32, "aws4_request", k[3]);
	if (r == 0)
		r = sigv4_hmac(k[3], 32, sts, sig);
	if (r == 0)
		sigv4_hex(sig, 32, hex);
	secret_wipe(seed, sizeof(seed));
	secret_wipe(k, sizeof(k));
	return r;
}

int sigv4_authorization(const struct sigv4_request *req, const char *amz_date,
			const char *region, const char *service,
			const struct sigv4_key *key, char *buf, size_t size,
			struct errmsg *err)
{
	char *canonical = malloc(SIGV4_MAX_CANONICAL), sh[1024], sts[512];
	char sig[65];
	int r, n;

	if (canonical == NULL)
		return errmsg_set(err, -ENOMEM, "sigv4: out of memory");
	r = sigv4_canonical_request(req, canonical, SIGV4_MAX_CANONICAL, sh,
				    sizeof(sh));
	if (r < 0)
		(void)errmsg_set(err, r,
				 "sigv4: cannot build the canonical "
				 "request");
	if (r == 0 && (r = sigv4_string_to_sign(canonical, amz_date, region,
						service, sts, sizeof(sts))) < 0)
		(void)errmsg_set(err, r, "sigv4: bad date or scope");
	if (r == 0 &&
	    (r = sigv4_signature(key, amz_date, region, service, sts, sig)) < 0)
		(void)errmsg_set(err, r, "sigv4: cannot sign");
	free(canonical);
	if (r < 0)
		return r;
	n = snprintf(buf, size,
		     SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, "
				     "SignedHeaders=%s, Signature=%s",
		     key->access_key_id, amz_date, region, service, sh, sig);
	return n < 0 || (size_t)n >= size
		   ? errmsg_set(err, -EMSGSIZE, "sigv4: header too long")
		   : 0;
}
