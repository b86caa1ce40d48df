/* The vault backend: logs in with Kubernetes auth (the pod's projected
 * service-account token, re-read at every login), keeps its token alive
 * with renew-self and logs in again before the token's max TTL, reads
 * leased paths (database/creds/ROLE, aws/creds/ROLE, ...) and renews them
 * with sys/leases/renew, polls KV v2 and KV v1 paths, looks leases up to
 * notice revocations made in Vault, and revokes with sys/leases/revoke and
 * auth/token/revoke-self. */
#ifndef CREDBROKER_VAULT_H
#define CREDBROKER_VAULT_H

#include "backend.h"
#include "http.h"
#include "vault_config.h"

extern const struct backend_ops vault_backend_ops;

/* What vault_backend_ops.create does, over a transport of the caller's
 * choosing (tests script one).  The backend owns http from the call on,
 * also on failure; cfg must outlive it. */
int vault_backend_create_with(const struct vault_config *cfg,
			      struct http_transport *http, struct backend **ret)
    __attribute__((warn_unused_result));

#endif
