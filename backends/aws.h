/* The aws backend: exchanges the pod's web-identity token (re-read at
 * every call) for temporary keys at STS with AssumeRoleWithWebIdentity,
 * for the app (kind "credentials") and for itself; with its own keys it
 * signs (SigV4) Secrets Manager GetSecretValue polls and KMS Decrypt calls
 * of blobs kept in the config.  AWS cannot revoke an STS session's keys:
 * revoking drops them from memory and the mount, and the incident record
 * names the account-side step (see README). */
#ifndef CREDBROKER_AWS_H
#define CREDBROKER_AWS_H

#include "aws_config.h"
#include "backend.h"
#include "clock.h"
#include "http.h"
#include "sigv4.h"

extern const struct backend_ops aws_backend_ops;

/* What aws_backend_ops.create does, over a transport, signer and clock of
 * the caller's choosing (tests script the transport, read the signer's
 * counters and move the clock).  The backend owns http and signer from the
 * call on, also on failure; cfg and clk must outlive it. */
int aws_backend_create_with(const struct aws_config *cfg,
			    struct http_transport *http,
			    struct sigv4_signer *signer,
			    const struct clock *clk, struct backend **ret)
    __attribute__((warn_unused_result));

#endif
