/* Follows AWS's "Create a canonical request for Signature Version 4":
 * path segments URI-encoded (unreserved characters kept), dot segments and
 * empty segments removed; query parameters decoded, re-encoded and sorted
 * by name, then value; header names lower-cased and sorted, values trimmed
 * with inner whitespace runs collapsed and folded lines joined by commas;
 * the payload's SHA-256 in hex.  The canonical request carries header
 * values (the session token among them) and query values (a presigned
 * URL's token), so every working copy of it is wiped (zalloc) before it is
 * freed. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sigv4.h"
#include "zalloc.h"

#define SIGV4_MAX_PARAMS 64
#define SIGV4_MAX_SECRET 128 /* AWS secret keys are 40 characters */
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
 * segments dropped (a trailing slash kept).  A path that keeps more than
 * SIGV4_MAX_SEGMENTS segments once resolved is refused: dropping some
 * would sign a different path than the one sent.  n counts the resolved
 * depth; only the first SIGV4_MAX_SEGMENTS are stored, as anything deeper
 * is either popped again by ".." or an error. */
static int sigv4_canonical_path(struct sigv4_out *o, const char *path,
				struct errmsg *err)
{
	const char *seg[SIGV4_MAX_SEGMENTS], *p = path, *slash;
	size_t len[SIGV4_MAX_SEGMENTS], n = 0, i, l;
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
		} else if (!(l == 1 && *p == '.')) {
			if (n < SIGV4_MAX_SEGMENTS) {
				seg[n] = p;
				len[n] = l;
			}
			n++;
		}
		p += l;
	}
	if (n > SIGV4_MAX_SEGMENTS)
		return errmsg_set(err, -EMSGSIZE,
				  "sigv4: the path has more than %d segments",
				  SIGV4_MAX_SEGMENTS);
	for (i = 0; i < n; i++) {
		out_str(o, "/");
		out_encoded(o, seg[i], len[i]);
	}
	if (n == 0 || trailing)
		out_str(o, "/");
	return 0;
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
	char *tmp = zalloc_malloc(n + 1), *res = zalloc_malloc(3 * n + 2);
	struct sigv4_out o = {res, 3 * n + 2, 0};
	size_t d;

	if (tmp == NULL || res == NULL) {
		zalloc_free(tmp);
		zalloc_free(res);
		return NULL;
	}
	d = sigv4_decode(p, kl, tmp);
	out_encoded(&o, tmp, d);
	out_str(&o, "=");
	d = eq ? sigv4_decode(eq + 1, vl, tmp) : 0;
	out_encoded(&o, tmp, d);
	zalloc_free(tmp);
	return res;
}

static int sigv4_canonical_query(struct sigv4_out *o, const char *query,
				 struct errmsg *err)
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
		zalloc_free(params[i].text);
	}
	if (r == -EMSGSIZE)
		return errmsg_set(err, r,
				  "sigv4: the query has more than %d "
				  "parameters",
				  SIGV4_MAX_PARAMS);
	if (r < 0)
		return errmsg_set(err, r, "sigv4: out of memory");
	return 0;
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

/* Insertion sort: stable, so repeated headers keep their request order
 * (their values are joined in that order). */
static void sigv4_sort_headers(struct sigv4_header *h, size_t n)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		struct sigv4_header t = h[i];

		for (j = i; j > 0 && sigv4_cmp_header(&h[j - 1], &t) > 0; j--)
			h[j] = h[j - 1];
		h[j] = t;
	}
}

/* sigv4_canonical_request, with err saying what was refused. */
static int sigv4_canonical(const struct sigv4_request *req, char *buf,
			   size_t size, char *signed_headers,
			   size_t signed_size, struct errmsg *err)
{
	struct sigv4_header sorted[SIGV4_MAX_HEADERS];
	struct sigv4_out o = {buf, size, 0},
			 sh = {signed_headers, signed_size, 0};
	char hash[65];
	size_t i;
	bool host = false;
	int r;

	if (req->header_count > SIGV4_MAX_HEADERS)
		return errmsg_set(err, -EINVAL, "sigv4: more than %d headers",
				  SIGV4_MAX_HEADERS);
	for (i = 0; i < req->header_count; i++)
		host = host || strcasecmp(req->headers[i].name, "host") == 0;
	if (!host)
		return errmsg_set(err, -EINVAL,
				  "sigv4: the request has no host header");
	memcpy(sorted, req->headers, req->header_count * sizeof(sorted[0]));
	sigv4_sort_headers(sorted, req->header_count);
	out_str(&o, req->method);
	out_str(&o, "\n");
	r = sigv4_canonical_path(&o, req->path, err);
	if (r < 0)
		return r;
	out_str(&o, "\n");
	r = sigv4_canonical_query(&o, req->query ? req->query : "", err);
	if (r < 0)
		return r;
	out_str(&o, "\n");
	sigv4_canonical_headers(&o, &sh, sorted, req->header_count);
	out_str(&o, "\n");
	out_str(&o, signed_headers);
	out_str(&o, "\n");
	r = sigv4_sha256_hex(req->body ? req->body : "", req->body_len, hash);
	if (r < 0)
		return errmsg_set(err, r, "sigv4: cannot hash the payload");
	out_str(&o, hash);
	if (!out_ok(&o) || !out_ok(&sh))
		return errmsg_set(err, -EMSGSIZE,
				  "sigv4: the canonical request does not fit");
	return 0;
}

int sigv4_canonical_request(const struct sigv4_request *req, char *buf,
			    size_t size, char *signed_headers,
			    size_t signed_size)
{
	return sigv4_canonical(req, buf, size, signed_headers, signed_size,
			       NULL);
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

static int sigv4_hmac(const void *key, size_t klen, const void *msg,
		      size_t mlen, unsigned char out[32])
{
	unsigned int len = 0;

	return HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len) !=
			   NULL &&
		       len == 32
		   ? 0
		   : -EIO;
}

static int sigv4_hmac_str(const void *key, size_t klen, const char *msg,
			  unsigned char out[32])
{
	return sigv4_hmac(key, klen, msg, strlen(msg), out);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
 * service), "aws4_request"), every intermediate in a wiped buffer.  date
 * is the 8-character YYYYMMDD. */
static int sigv4_derive(const struct secret *secret_key, const char *date,
			const char *region, const char *service,
			unsigned char ksigning[32])
{
	unsigned char k[3][32];
	char seed[4 + SIGV4_MAX_SECRET];
	size_t slen;
	const char *secret = secret_expose(secret_key, &slen);
	int r = -EMSGSIZE;

	if (slen <= SIGV4_MAX_SECRET) {
		memcpy(seed, "AWS4", 4);
		memcpy(seed + 4, secret, slen);
		r = sigv4_hmac_str(seed, 4 + slen, date, k[0]);
	}
	if (r == 0)
		r = sigv4_hmac_str(k[0], 32, region, k[1]);
	if (r == 0)
		r = sigv4_hmac_str(k[1], 32, service, k[2]);
	if (r == 0)
		r = sigv4_hmac_str(k[2], 32, "aws4_request", ksigning);
	secret_wipe(seed, sizeof(seed));
	secret_wipe(k, sizeof(k));
	return r;
}

/* The signed-header list and the string to sign for req.  The canonical
 * request only lives in between, in a buffer wiped as it is freed. */
static int sigv4_prepare(const struct sigv4_request *req, const char *amz_date,
			 const char *region, const char *service, char *sh,
			 size_t sh_size, char *sts, size_t sts_size,
			 struct errmsg *err)
{
	char *canonical = zalloc_malloc(SIGV4_MAX_CANONICAL);
	int r;

	if (canonical == NULL)
		return errmsg_set(err, -ENOMEM, "sigv4: out of memory");
	r = sigv4_canonical(req, canonical, SIGV4_MAX_CANONICAL, sh, sh_size,
			    err);
	if (r == 0 && (r = sigv4_string_to_sign(canonical, amz_date, region,
						service, sts, sts_size)) < 0)
		(void)errmsg_set(err, r, "sigv4: bad date or scope");
	zalloc_free(canonical);
	return r;
}

/* The Authorization header from the signing key and the string to sign. */
static int sigv4_finish(const unsigned char ksigning[32], const char *sts,
			const char *access_key_id, const char *amz_date,
			const char *region, const char *service, const char *sh,
			char *buf, size_t size, struct errmsg *err)
{
	unsigned char sig[32];
	char hex[65];
	int r, n;

	r = sigv4_hmac_str(ksigning, 32, sts, sig);
	if (r < 0)
		return errmsg_set(err, r, "sigv4: cannot sign");
	sigv4_hex(sig, 32, hex);
	n = snprintf(buf, size,
		     SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, "
				     "SignedHeaders=%s, Signature=%s",
		     access_key_id, amz_date, region, service, sh, hex);
	if (n < 0 || (size_t)n >= size)
		return errmsg_set(err, -EMSGSIZE, "sigv4: header too long");
	return 0;
}

int sigv4_authorization(const struct sigv4_request *req, const char *amz_date,
			const char *region, const char *service,
			const struct sigv4_key *key, char *buf, size_t size,
			struct errmsg *err)
{
	unsigned char ksigning[32];
	char sh[1024], sts[512], date[9];
	int r;

	r = sigv4_prepare(req, amz_date, region, service, sh, sizeof(sh), sts,
			  sizeof(sts), err);
	if (r < 0)
		goto out;
	(void)snprintf(date, sizeof(date), "%.8s", amz_date);
	r = sigv4_derive(key->secret_access_key, date, region, service,
			 ksigning);
	if (r < 0) {
		(void)errmsg_set(err, r,
				 "sigv4: cannot derive the signing key");
		goto out;
	}
	r = sigv4_finish(ksigning, sts, key->access_key_id, amz_date, region,
			 service, sh, buf, size, err);
out:
	secret_wipe(ksigning, sizeof(ksigning));
	secret_wipe(sts, sizeof(sts));
	return r;
}

/* The signing-key cache.  A derived key is as good as the secret key for a
 * day (for its region and service), so the keys live in struct secret; the
 * scope beside them is not secret.  An entry is found by access key id,
 * date, region, service and a fingerprint of the secret key, so a key
 * rotated under the same id never reuses a stale entry.  The fingerprint is
 * keyed with per-signer random bytes, so it says nothing about the secret
 * key to whoever reads the signer's memory. */
#define SIGV4_CACHE_SLOTS 8
#define SIGV4_MAX_ID 128    /* IAM access key ids are at most 128 chars */
#define SIGV4_MAX_SCOPE 63  /* region, service */
#define SIGV4_FP_KEY_LEN 32 /* at the start of keys; then one key a slot */

struct sigv4_slot {
	char access_key_id[SIGV4_MAX_ID + 1];
	char date[9];
	char region[SIGV4_MAX_SCOPE + 1];
	char service[SIGV4_MAX_SCOPE + 1];
	unsigned char fingerprint[32];
	uint64_t used; /* the signer's tick at last use; 0: empty */
};

struct sigv4_signer {
	pthread_mutex_t lock;
	/* The fingerprint key (written once, in sigv4_signer_new), then
	 * SIGV4_CACHE_SLOTS signing keys of 32 bytes (lock). */
	struct secret *keys;
	uint64_t tick;				    /* lock */
	uint64_t hits, misses;			    /* lock */
	struct sigv4_slot slots[SIGV4_CACHE_SLOTS]; /* lock */
};

/* What one signature's cache entry is looked up by. */
struct sigv4_scope {
	const char *access_key_id, *region, *service;
	char date[9];
	unsigned char fingerprint[32];
};

int sigv4_signer_new(struct sigv4_signer **ret)
{
	struct sigv4_signer *s = calloc(1, sizeof(*s));
	int r;

	if (s == NULL)
		return -ENOMEM;
	r = secret_new(SIGV4_FP_KEY_LEN + 32 * SIGV4_CACHE_SLOTS, &s->keys);
	if (r < 0) {
		free(s);
		return r;
	}
	if (RAND_bytes(secret_expose(s->keys, NULL), SIGV4_FP_KEY_LEN) != 1) {
		secret_free(s->keys);
		free(s);
		return -EIO;
	}
	(void)pthread_mutex_init(&s->lock, NULL);
	*ret = s;
	return 0;
}

void sigv4_signer_free(struct sigv4_signer *s)
{
	if (s == NULL)
		return;
	(void)pthread_mutex_destroy(&s->lock);
	secret_free(s->keys);
	secret_wipe(s, sizeof(*s));
	free(s);
}

static unsigned char *sigv4_slot_key(const struct sigv4_signer *s, size_t i)
{
	unsigned char *p = secret_expose(s->keys, NULL);

	return p + SIGV4_FP_KEY_LEN + 32 * i;
}

void sigv4_signer_wipe(struct sigv4_signer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	secret_wipe(sigv4_slot_key(s, 0), 32 * SIGV4_CACHE_SLOTS);
	secret_wipe(s->slots, sizeof(s->slots));
	pthread_mutex_unlock(&s->lock);
}

void sigv4_signer_stats(struct sigv4_signer *s, struct sigv4_signer_stats *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->lock);
	out->hits = s->hits;
	out->misses = s->misses;
	for (i = 0; i < SIGV4_CACHE_SLOTS; i++)
		if (s->slots[i].used != 0)
			out->cached++;
	pthread_mutex_unlock(&s->lock);
}

/* Scopes too long for a slot are signed without the cache. */
static bool sigv4_cacheable(const struct sigv4_scope *sc)
{
	return strlen(sc->access_key_id) <= SIGV4_MAX_ID &&
	       strlen(sc->region) <= SIGV4_MAX_SCOPE &&
	       strlen(sc->service) <= SIGV4_MAX_SCOPE;
}

static bool sigv4_slot_matches(const struct sigv4_slot *e,
			       const struct sigv4_scope *sc)
{
	return e->used != 0 && strcmp(e->date, sc->date) == 0 &&
	       strcmp(e->access_key_id, sc->access_key_id) == 0 &&
	       strcmp(e->region, sc->region) == 0 &&
	       strcmp(e->service, sc->service) == 0 &&
	       CRYPTO_memcmp(e->fingerprint, sc->fingerprint, 32) == 0;
}

/* Called with s->lock held: the matching slot, or SIGV4_CACHE_SLOTS. */
static size_t sigv4_cache_find(const struct sigv4_signer *s,
			       const struct sigv4_scope *sc)
{
	size_t i;

	for (i = 0; i < SIGV4_CACHE_SLOTS; i++)
		if (sigv4_slot_matches(&s->slots[i], sc))
			break;
	return i;
}

/* Copies the cached key for sc into ksigning; false when there is none. */
static bool sigv4_cache_get(struct sigv4_signer *s,
			    const struct sigv4_scope *sc,
			    unsigned char ksigning[32])
{
	size_t i;

	pthread_mutex_lock(&s->lock);
	i = sigv4_cache_find(s, sc);
	if (i < SIGV4_CACHE_SLOTS) {
		memcpy(ksigning, sigv4_slot_key(s, i), 32);
		s->slots[i].used = ++s->tick;
		s->hits++;
	}
	pthread_mutex_unlock(&s->lock);
	return i < SIGV4_CACHE_SLOTS;
}

/* Stores ksigning for sc in an empty or the least recently used slot,
 * wiping the key it replaces.  Another thread may have stored the same
 * scope since the lookup missed: then that slot is refreshed instead. */
static void sigv4_cache_put(struct sigv4_signer *s,
			    const struct sigv4_scope *sc,
			    const unsigned char ksigning[32])
{
	struct sigv4_slot *e;
	size_t i, victim = 0;

	pthread_mutex_lock(&s->lock);
	i = sigv4_cache_find(s, sc);
	if (i == SIGV4_CACHE_SLOTS) {
		for (i = 1; i < SIGV4_CACHE_SLOTS; i++)
			if (s->slots[i].used < s->slots[victim].used)
				victim = i;
		i = victim;
	}
	e = &s->slots[i];
	secret_wipe(sigv4_slot_key(s, i), 32);
	memcpy(sigv4_slot_key(s, i), ksigning, 32);
	(void)snprintf(e->access_key_id, sizeof(e->access_key_id), "%s",
		       sc->access_key_id);
	memcpy(e->date, sc->date, sizeof(e->date));
	(void)snprintf(e->region, sizeof(e->region), "%s", sc->region);
	(void)snprintf(e->service, sizeof(e->service), "%s", sc->service);
	memcpy(e->fingerprint, sc->fingerprint, sizeof(e->fingerprint));
	e->used = ++s->tick;
	pthread_mutex_unlock(&s->lock);
}

/* The signing key for sc (whose fingerprint it fills in): from the cache,
 * else derived and cached. */
static int sigv4_signing_key(struct sigv4_signer *s, struct sigv4_scope *sc,
			     const struct secret *secret_key,
			     unsigned char ksigning[32])
{
	const unsigned char *fp_key = secret_expose(s->keys, NULL);
	size_t slen;
	const void *secret = secret_expose(secret_key, &slen);
	bool cacheable = sigv4_cacheable(sc);
	int r;

	if (cacheable) {
		r = sigv4_hmac(fp_key, SIGV4_FP_KEY_LEN, secret, slen,
			       sc->fingerprint);
		if (r < 0)
			return r;
		if (sigv4_cache_get(s, sc, ksigning))
			return 0;
	}
	pthread_mutex_lock(&s->lock);
	s->misses++;
	pthread_mutex_unlock(&s->lock);
	r = sigv4_derive(secret_key, sc->date, sc->region, sc->service,
			 ksigning);
	if (r == 0 && cacheable)
		sigv4_cache_put(s, sc, ksigning);
	return r;
}

int sigv4_sign(struct sigv4_signer *s, const struct sigv4_request *req,
	       const char *amz_date, const char *region, const char *service,
	       const struct sigv4_key *key, char *buf, size_t size,
	       struct errmsg *err)
{
	struct sigv4_scope sc = {key->access_key_id, region, service, {0}, {0}};
	unsigned char ksigning[32];
	char sh[1024], sts[512];
	int r;

	r = sigv4_prepare(req, amz_date, region, service, sh, sizeof(sh), sts,
			  sizeof(sts), err);
	if (r < 0)
		goto out;
	/* amz_date is 16 characters: sigv4_string_to_sign checked. */
	memcpy(sc.date, amz_date, 8);
	r = sigv4_signing_key(s, &sc, key->secret_access_key, ksigning);
	if (r < 0) {
		(void)errmsg_set(err, r,
				 "sigv4: cannot derive the signing key");
		goto out;
	}
	r = sigv4_finish(ksigning, sts, key->access_key_id, amz_date, region,
			 service, sh, buf, size, err);
out:
	secret_wipe(ksigning, sizeof(ksigning));
	secret_wipe(sts, sizeof(sts));
	secret_wipe(&sc, sizeof(sc));
	return r;
}
