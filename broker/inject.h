/* Pod injection: adds the broker to annotated pod templates, as
 * `credbroker inject` and the admission webhook do.  The result passes Pod
 * Security "restricted": the broker is a native sidecar (an init container
 * with restartPolicy Always) running as 65534 with no capability, the
 * secrets come through the CSI node plugin's inline volume, and the
 * broker's config, generated from the annotations, reaches it through a
 * downwardAPI file of the pod's own annotation.
 *
 * Annotations (on the pod template; reference in deploy/README.md):
 *   credbroker.io/inject: "true"              required to inject
 *   credbroker.io/backend: vault | postgres
 *   credbroker.io/role                        Vault Kubernetes-auth role
 *   credbroker.io/vault-address               https://...
 *   credbroker.io/vault-namespace, credbroker.io/vault-auth-mount
 *   credbroker.io/vault-ca-configmap          a ConfigMap with ca.crt
 *   credbroker.io/postgres-admin-secret       a Secret with key "dsn"
 *   credbroker.io/secret-NAME: PATH           one per secret (NAME: the
 *                                             directory in the mount)
 *   credbroker.io/secret-NAME-kind            leased | kv2 | kv1
 *   credbroker.io/secret-NAME-ttl, -max-ttl   durations
 *   credbroker.io/secret-NAME-files           comma-separated file list
 *   credbroker.io/mount-path                  default /secrets
 *   credbroker.io/readers                     uids; default: the app
 *                                             containers' runAsUser
 *   credbroker.io/file-mode                   default 0400
 *   credbroker.io/token-audience              default "vault"
 *   credbroker.io/cpu, credbroker.io/memory   the broker's requests
 *   credbroker.io/mode: privileged            no node plugin: the broker
 *                                             mounts itself (not
 *                                             "restricted")
 *   credbroker.io/injected                    set by injection */
#ifndef CREDBROKER_INJECT_H
#define CREDBROKER_INJECT_H

#include <stdbool.h>

#include <jansson.h>

#include "errmsg.h"

#define INJECT_DEFAULT_IMAGE "ghcr.io/credbroker/credbroker:0.1.0"
#define INJECT_CSI_DRIVER "csi.credbroker.io"

struct inject_options {
	const char *image; /* NULL: INJECT_DEFAULT_IMAGE */
};

/* Injects into obj in place: a Pod, a Deployment, StatefulSet, DaemonSet,
 * ReplicaSet, Job, CronJob, or a List of them.  Unannotated and already
 * injected templates are left exactly as they are.  *changed tells
 * whether anything was added.  Returns 0, or -EINVAL with err naming the
 * object and the annotation or JSON path at fault (obj may then be partly
 * modified: the caller discards it), -ENOMEM. */
int inject_object(json_t *obj, const struct inject_options *opt, bool *changed,
		  struct errmsg *err) __attribute__((warn_unused_result));

#endif
