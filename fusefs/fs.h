/* The read-only, in-memory FUSE filesystem (libfuse3 low-level API) that
 * shows the store to the workspace:
 *
 *   /<secret>/<file>            the current version; open() pins it
 *   /<secret>/.lease.json       metadata of the current version (no secret)
 *   /<secret>/..data -> ..vN    symlink to the current version's directory
 *   /<secret>/..vN/<file>       version N, for readers that need several
 *                               files from one version (as Kubernetes'
 *                               atomic writer does with ..data)
 *
 * open() is allowed only to the slot's reader uids (others: EACCES, logged).
 * Every write-like request fails with EROFS.  The FUSE side links no
 * upstream library: it sees only the store.  */
#ifndef CREDBROKER_FS_H
#define CREDBROKER_FS_H

#include "errmsg.h"
#include "store.h"

struct fs;

/* Returns 0 or -ENOMEM.  The store must outlive the fs. */
int fs_new(struct store *st, struct fs **ret)
	__attribute__((warn_unused_result));
/* Mounts at mountpoint, a directory (a stale mount left by a crashed run is
 * detached first, with a warning) or "/dev/fd/N" for a /dev/fuse descriptor
 * someone else mounted.  Returns 0, -ENOTDIR/-ENOENT for a bad mountpoint,
 * -EIO when the mount fails; err says why. */
int fs_mount(struct fs *fs, const char *mountpoint, struct errmsg *err)
	__attribute__((warn_unused_result));
/* Connects to the Unix socket at path, receives one /dev/fuse descriptor
 * (SCM_RIGHTS) from the privileged helper that mounted it, and serves it. */
int fs_mount_from_socket(struct fs *fs, const char *path, struct errmsg *err)
	__attribute__((warn_unused_result));
/* Starts the thread that answers FUSE requests. */
int fs_start(struct fs *fs) __attribute__((warn_unused_result));
/* Tells the kernel to drop cached data and names of slot (after publish,
 * kill or expiry).  Never blocks on a reader.  Suitable as a store
 * listener. */
void fs_invalidate(void *fs, size_t slot);
/* Stops serving, unmounts when we mounted, joins the thread.  Idempotent. */
void fs_stop(struct fs *fs);
/* NULL-safe; stops first. */
void fs_free(struct fs *fs);

#endif
