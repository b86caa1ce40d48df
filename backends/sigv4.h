/* AWS Signature Version 4 (the "AWS4-HMAC-SHA256" scheme), as the AWS
 * backend signs its STS, Secrets Manager and KMS calls.  Pure computation:
 * no clock (the caller passes the X-Amz-Date it sends), no I/O.  The
 * secret key is only ever read through struct secret, and the derived
 * signing key is wiped after use.  Checked against AWS's published
 * aws-sig-v4-test-suite (tests/data/sigv4/). */
#ifndef CREDBROKER_SIGV4_H
#define CREDBROKER_SIGV4_H

#include <stddef.h>

#include "errmsg.h"
#include "secret.h"

#define SIGV4_MAX_HEADERS 32
#define SIGV4_MAX_CANONICAL 16384

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
 * -EMSGSIZE when either does not fit, -EINVAL for a request without host
 * or with too many headers. */
int sigv4_canonical_request(const struct sigv4_request *req, char *buf,
			    size_t size, char *signed_headers,
			    size_t signed_size)
    __attribute__((warn_unused_result));

/* The string to sign for amz_date ("20150830T123600Z"), region and
 * service, over canonical. */
int sigv4_string_to_sign(const char *canonical, const char *amz_date,
			 const char *region, const char *service, char *buf,
			 size_t size) __attribute__((warn_unused_result));

/* The Authorization header value for req.  Returns 0, or what the two
 * functions above return (err says which step). */
int sigv4_authorization(const struct sigv4_request *req, const char *amz_date,
			const char *region, const char *service,
			const struct sigv4_key *key, char *buf, size_t size,
			struct errmsg *err) __attribute__((warn_unused_result));

#endif
