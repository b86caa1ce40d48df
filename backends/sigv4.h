/* AWS Signature Version 4 (the "AWS4-HMAC-SHA256" scheme), as the AWS
 * backend signs its STS, Secrets Manager and KMS calls.  Pure computation:
 * no clock (the caller passes the X-Amz-Date it sends), no I/O.  The
 * secret key is only ever read through struct secret, the derived
 * signing key is wiped after use (or kept in a signer's cache, in struct
 * secret), and the canonical request, which carries header values such as
 * the session token, is wiped once hashed.  Checked against AWS's published
 * aws-sig-v4-test-suite (tests/data/sigv4/). */
#ifndef CREDBROKER_SIGV4_H
#define CREDBROKER_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "secret.h"

#define SIGV4_MAX_HEADERS 32
#define SIGV4_MAX_CANONICAL 16384
#define SIGV4_MAX_SEGMENTS 128 /* path segments, after "." and ".." */

struct sigv4_header {
	const char *name;  /* any case */
	const char *value; /* raw; folded lines ("a\n  b") allowed */
};

struct sigv4_request {
	const char *method;
	const char *path;  /* as sent on the wire ("/", "/ሴ", "/x%20y"):
			    * dot segments removed and each segment
			    * URI-encoded once more, as AWS does for every
			    * service but S3 */
	const char *query; /* "a=b&c=d" without '?', "" for none */
	const struct sigv4_header *headers; /* host and x-amz-date included */
	size_t header_count;		    /* at most SIGV4_MAX_HEADERS */
	const void *body;
	size_t body_len;
};

struct sigv4_key {
	const char *access_key_id;
	const struct secret *secret_access_key;
};

/* The canonical request (AWS's "CanonicalRequest") into buf, and the
 * signed-header list ("host;x-amz-date") into signed_headers.  Returns 0,
 * -EMSGSIZE when either does not fit or the path has more than
 * SIGV4_MAX_SEGMENTS segments, -EINVAL for a request without host or with
 * too many headers. */
int sigv4_canonical_request(const struct sigv4_request *req, char *buf,
			    size_t size, char *signed_headers,
			    size_t signed_size)
    __attribute__((warn_unused_result));

/* The string to sign for amz_date ("20150830T123600Z"), region and
 * service, over canonical. */
int sigv4_string_to_sign(const char *canonical, const char *amz_date,
			 const char *region, const char *service, char *buf,
			 size_t size) __attribute__((warn_unused_result));

/* The Authorization header value for req, into buf.  Returns 0, or what
 * the two functions above return (err says what was refused), -EMSGSIZE
 * when the header does not fit in size or the secret key is over 128
 * bytes, -ENOMEM. */
int sigv4_authorization(const struct sigv4_request *req, const char *amz_date,
			const char *region, const char *service,
			const struct sigv4_key *key, char *buf, size_t size,
			struct errmsg *err) __attribute__((warn_unused_result));

/* A signer: sigv4_authorization with a cache of the derived signing keys,
 * which stay the same for a whole day, region and service.  The cache holds
 * a few entries (least recently used replaced, its key wiped), in struct
 * secret; an entry is only reused for the same access key id, date,
 * region, service and secret key (compared by a keyed fingerprint, so a
 * rotated secret under the same id is never signed with a stale key). */
struct sigv4_signer;

/* A signer with an empty cache, into *ret (owned by the caller).  Returns 0,
 * -ENOMEM, or -EIO when the random generator fails. */
int sigv4_signer_new(struct sigv4_signer **ret)
    __attribute__((warn_unused_result));
/* Wipes the cached keys and frees; NULL-safe. */
void sigv4_signer_free(struct sigv4_signer *s);
/* Forgets every cached signing key (wiped) and the fingerprints beside
 * them, so nothing derived from a dropped secret key outlives it: called
 * when the keys it signed with are revoked or replaced.  The signer stays
 * usable; the next signature of each scope derives its key again. */
void sigv4_signer_wipe(struct sigv4_signer *s);

/* What a signer's cache did since sigv4_signer_new, for tests and
 * diagnostics: signatures whose key came from the cache (hits), keys
 * derived (misses, including scopes too long to cache), and the entries
 * held now.  No key material. */
struct sigv4_signer_stats {
	uint64_t hits;
	uint64_t misses;
	size_t cached;
};
void sigv4_signer_stats(struct sigv4_signer *s, struct sigv4_signer_stats *out);

/* Like sigv4_authorization (same arguments, results and errors), with the
 * signing key taken from s's cache when the access key id, the date (first
 * 8 characters of amz_date), region, service and secret key match an
 * entry, else derived and cached.  Thread-safe: any number of threads may
 * sign with one signer. */
int sigv4_sign(struct sigv4_signer *s, const struct sigv4_request *req,
	       const char *amz_date, const char *region, const char *service,
	       const struct sigv4_key *key, char *buf, size_t size,
	       struct errmsg *err) __attribute__((warn_unused_result));

#endif
