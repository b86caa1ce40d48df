/* The CSI node plugin's volume work, independent of the gRPC transport:
 * NodePublishVolume mounts a FUSE filesystem at the pod's volume target and
 * hands its /dev/fuse descriptor to the pod's broker over a Unix socket in
 * the broker's emptyDir; NodeUnpublishVolume undoes it.  The plugin holds
 * no secret: it never serves the filesystem, it only mounts and hands over.
 *
 * Paths come from kubelet but point into directories the pod can write,
 * so every one is resolved below the configured pods directory without
 * following symlinks (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
 *
 * Thread safety: publish and unpublish may be called from several threads;
 * each hand-off waits for its broker on a thread of its own. */
#ifndef CREDBROKER_CSI_NODE_H
#define CREDBROKER_CSI_NODE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errmsg.h"

#define CSI_HANDOFF_SOCKET "credbroker-fuse.sock"
#define CSI_DEFAULT_BROKER_UID 65534
#define CSI_DEFAULT_HANDOFF_USEC (5ULL * 60 * 1000000)
#define CSI_MAX_VOLUMES 256
#define CSI_MAX_PAYLOAD 4096

struct csi_node_config {
	char pods_dir[PATH_MAX]; /* kubelet's, e.g. /var/lib/kubelet/pods */
	uint64_t handoff_timeout_usec; /* then the descriptor is closed */
};

struct csi_publish {
	const char *volume_id;
	const char *target_path;    /* PODS/<uid>/volumes/kubernetes.io~csi/
				     * <name>/mount */
	const char *handoff_volume; /* the broker's emptyDir in that pod */
	uid_t broker_uid;	    /* the only uid the descriptor goes to */
	const void *payload;	    /* sent with it (pod facts, no token) */
	size_t payload_len;	    /* at most CSI_MAX_PAYLOAD */
};

struct csi_node;

int csi_node_new(const struct csi_node_config *cfg, struct csi_node **ret,
		 struct errmsg *err) __attribute__((warn_unused_result));
/* Mounts and starts the hand-off.  Idempotent: a target already published
 * (or already a FUSE mount, after a plugin restart) returns 0 and is never
 * remounted.  Returns 0, -EINVAL (a path outside the pods directory, a
 * symlink on the way, a bad name), -ENOSPC past CSI_MAX_VOLUMES, -errno
 * from mkdir, open or mount; err names the cause (never the payload). */
int csi_node_publish(struct csi_node *n, const struct csi_publish *p,
		     struct errmsg *err) __attribute__((warn_unused_result));
/* Ends a pending hand-off, removes the socket, unmounts (lazily when
 * busy) and removes the target directory.  Returns 0 also when it is
 * already gone. */
int csi_node_unpublish(struct csi_node *n, const char *volume_id,
		       const char *target_path, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Unpublishes nothing; waits for hand-off threads and frees.  NULL-safe. */
void csi_node_free(struct csi_node *n);

#endif
