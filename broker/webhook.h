/* `credbroker webhook`: a mutating admission webhook over HTTPS (OpenSSL,
 * TLS 1.2 at least) serving AdmissionReview v1.  A Pod is answered with a
 * base64 JSON Patch made from inject_object()'s result, so the webhook and
 * `credbroker inject` can never disagree.  The certificate and key are
 * re-read when their files change (cert-manager rotation); malformed or
 * oversized requests get 400/413 and a log line.  GET /healthz answers ok.
 *
 * Requests carry whole pods (no secret values, but the broker logs names
 * only). */
#ifndef CREDBROKER_WEBHOOK_H
#define CREDBROKER_WEBHOOK_H

#include <jansson.h>

#include "errmsg.h"
#include "inject.h"

#define WEBHOOK_MAX_BODY (4 * 1024 * 1024)
#define WEBHOOK_MAX_HEADER (16 * 1024)
#define WEBHOOK_MAX_CLIENTS 32

struct webhook_config {
	const char *cert_file;
	const char *key_file;
	const char *listen; /* "HOST:PORT" */
	struct inject_options inject;
};

/* Serves until SIGTERM or SIGINT (which the caller has blocked; the
 * webhook waits for them on a signalfd).  Returns 0 after a signal, or
 * -errno with err set when it cannot start. */
int webhook_run(const struct webhook_config *cfg, struct errmsg *err)
    __attribute__((warn_unused_result));

/* The AdmissionReview v1 answer to review (a parsed request body): a new
 * object, or NULL with err set when review is not an AdmissionReview. */
json_t *webhook_review(const json_t *review, const struct inject_options *opt,
		       struct errmsg *err);

/* A JSON Patch (RFC 6902) turning a into b: objects are compared key by
 * key, anything else is replaced whole.  A new array, or NULL. */
json_t *webhook_diff(const json_t *a, const json_t *b);

#endif
