/* The aws backend: exchanges the pod's web-identity token (re-read at
 * every call) for temporary keys at STS with AssumeRoleWithWebIdentity,
 * for the app (kind "credentials") and for itself; with its own keys it
 * signs (SigV4) Secrets Manager GetSecretValue polls and KMS Decrypt calls
 * of blobs kept in the config.  AWS cannot revoke an STS session's keys:
 * revoking drops them from memory and the mount, and the incident record
 * names the account-side step (see README). */
#ifndef CREDBROKER_AWS_H
#define CREDBROKER_AWS_H

#include "backend.h"

extern const struct backend_ops aws_backend_ops;

#endif
