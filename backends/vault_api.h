/* Vault's wire format, with no I/O: parsing of the response bodies the
 * vault backend reads (login and renew-self "auth" blocks, logical
 * responses of leased and KV paths, lease renewals, error lists) and the
 * mapping of HTTP statuses to -errno.  Every function copies secret values
 * (tokens, credential fields) straight into struct secret / struct kv and
 * never logs. */
#ifndef CREDBROKER_VAULT_API_H
#define CREDBROKER_VAULT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "errmsg.h"
#include "kv.h"
#include "secret.h"

#define VAULT_MAX_BODY (1024 * 1024)

enum vault_kind {
	VAULT_LEASED, /* any logical path returning lease_id + data */
	VAULT_KV2,    /* <mount>/data/<path>: data.data, data.metadata */
	VAULT_KV1,    /* <mount>/<path>: data, no lease */
};

/* An "auth" block (login, renew-self). */
struct vault_auth {
	struct secret *token; /* client_token; NULL after renew-self
			       * when the body repeats none */
	int64_t lease_duration_s;
	bool renewable;
};

/* A logical response. */
struct vault_secret {
	char lease_id[LEASE_MAX_ID]; /* "" when not leased */
	int64_t lease_duration_s;
	bool renewable;
	int64_t kv_version; /* KV v2 metadata.version, else 0 */
	struct kv values;   /* data (KV v2: data.data) */
};

/* Parses an auth block.  Returns 0, or -EPROTO with err naming what was
 * missing or malformed.  On success out->token (when set) is owned by the
 * caller. */
int vault_parse_auth(const void *body, size_t len, bool need_token,
		     struct vault_auth *out, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Parses a logical response of the given kind into out (values owned by the
 * caller: kv_clear).  Non-string values are kept as their JSON text. */
int vault_parse_secret(const void *body, size_t len, enum vault_kind kind,
		       struct vault_secret *out, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Parses a sys/leases/renew response: the granted lease_duration. */
int vault_parse_renew(const void *body, size_t len, int64_t *duration_s,
		      bool *renewable, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Writes "STATUS first error; second error" from an {"errors":[...]} body
 * into buf (printable ASCII only, cut at size).  Vault's error strings say
 * what was refused, never a secret value. */
void vault_error_text(long status, const void *body, size_t len, char *buf,
		      size_t size);
/* The -errno for a non-2xx status: 400 -EINVAL, 401/403 -EACCES,
 * 404 -ENOENT, 412/429/5xx (except 501) -EAGAIN, others -EIO. */
int vault_status_errno(long status);
/* True for statuses worth retrying with backoff (5xx but 501, 412, 429). */
bool vault_status_retryable(long status);

#endif
