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
 * .lease.json is an ordinary file of each version (the broker adds it); the
 * filesystem synthesises nothing.  A secret with no live version shows as an
 * empty directory (the directory itself always exists).
 *
 * open() is allowed only to the slot's reader uids (others: EACCES, logged);
 * mode bits are shown but not enforced (no default_permissions), except in
 * FS_CACHE_FAST where the kernel enforces them instead.  Every write-like
 * request fails with EROFS.  Each open() pins one version, so a handle
 * reads EIO once its version is revoked or expired (in the cache modes,
 * once the kernel has dropped that version's pages, which the fs asks for
 * as soon as the store reports the change).  The FUSE side links no
 * upstream library: it sees only the store.
 *
 * Threads: fs_start() runs the FUSE loop (libfuse's multi-threaded loop,
 * FS_WORKERS_MAX workers at most, one kept idle so a request never waits
 * for a thread to start) and one thread sending the kernel the
 * invalidations queued by fs_invalidate().  The fs owns SIGUSR1:
 * it installs a no-op handler (process-wide) to interrupt its own thread in
 * fs_stop(). */
#ifndef CREDBROKER_FS_H
#define CREDBROKER_FS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "errmsg.h"
#include "store.h"

struct fs;

/* How much the kernel may cache (mount.cache in the config):
 *  - FS_CACHE_NONE: names and attributes only; every open() and every
 *    read() reaches the broker, which re-checks the version against the
 *    clock (direct_io).  No secret byte is ever in the page cache.
 *  - FS_CACHE_AUDITED (the default): every open() reaches the broker (the
 *    reader check, the audit record, the pin), but file pages stay in the
 *    kernel's page cache between opens.  A file's inode number names one
 *    version (the top-level name moves to another inode on rotation), so a
 *    cached page never holds another version's bytes; the pages of a
 *    version are dropped when it dies.
 *  - FS_CACHE_FAST: opens are handled by the kernel alone
 *    (FUSE_CAP_NO_OPEN_SUPPORT): no per-open reader check or audit record,
 *    access is the kernel's check of the mode bits (default_permissions),
 *    names and attributes are cached until invalidated.  A handle reads
 *    only while its version is listed (the newest four) and live. */
enum fs_cache_mode {
	FS_CACHE_AUDITED,
	FS_CACHE_NONE,
	FS_CACHE_FAST,
};

/* Returns 0, -ENOMEM, or -EINVAL when the store has more slots than inode
 * numbers can address (65535).  The store must outlive the fs. */
int fs_new(struct store *st, struct fs **ret)
    __attribute__((warn_unused_result));
/* The clock the store was created with (clock_system() by default): reads
 * on an open file compare their version's expiry against it.  Call before
 * fs_start(). */
void fs_set_clock(struct fs *fs, const struct clock *clk);
/* FS_CACHE_AUDITED unless set; call before fs_mount(). */
void fs_set_cache_mode(struct fs *fs, enum fs_cache_mode mode);
/* One open() of a secret's file, allowed or denied, for the audit log.
 * The strings live only for the call. */
struct fs_access {
	size_t slot;
	const char *secret;
	const char *file;
	uint64_t version;
	uid_t uid;
	gid_t gid;
	pid_t pid; /* 0 when the caller is in another pid namespace */
	bool allowed;
};

typedef void (*fs_access_listener)(void *arg, const struct fs_access *ev);

/* fn is called on the FUSE thread for every open() of a secret's file,
 * before the reply, so it must be quick and must not call into the fs.
 * Call before fs_start(). */
void fs_set_access_listener(struct fs *fs, fs_access_listener fn, void *arg);
/* Mounts at mountpoint, a directory (a stale mount left by a crashed run is
 * detached first, with a warning) or "/dev/fd/N" for a /dev/fuse descriptor
 * someone else mounted.  Returns 0, -ENOTDIR/-ENOENT for a bad mountpoint,
 * -EIO when the mount fails, -EALREADY when mounted before; err says why.
 * For "/dev/fd/N" the fs owns N on success (closed by fs_stop()); on failure
 * the caller keeps it. */
int fs_mount(struct fs *fs, const char *mountpoint, struct errmsg *err)
    __attribute__((warn_unused_result));
#define FS_HANDOFF_INFO_MAX 4096

/* From now on someone else (the broker's unmounter) unmounts: fs_stop()
 * only closes the /dev/fuse descriptor, which leaves the mount dead
 * (ENOTCONN) until it is detached.  libfuse frees its copy of the mount
 * point only when it unmounts, so those bytes stay allocated until exit
 * (tests/lsan.supp). */
void fs_disown_mount(struct fs *fs);
/* Connects to the Unix socket at path, receives one /dev/fuse descriptor
 * (SCM_RIGHTS, exactly one, a character device) from the privileged helper
 * that mounted it, and mounts it as "/dev/fd/N".  Returns 0, a connect
 * error, -EPROTO for a bad message, or what fs_mount() returns.  Waits at
 * most 10 s for the descriptor. */
int fs_mount_from_socket(struct fs *fs, const char *path, struct errmsg *err)
    __attribute__((warn_unused_result));
/* What the helper sent with the descriptor (the CSI plugin: a JSON object
 * with the pod's name, namespace and uid), NUL-terminated, "" for nothing;
 * at most FS_HANDOFF_INFO_MAX - 1 bytes. */
const char *fs_handoff_info(const struct fs *fs);
/* Starts the threads that answer FUSE requests and send invalidations.
 * Returns 0, -ENOTCONN before fs_mount(), -EALREADY, or a pthread error. */
int fs_start(struct fs *fs) __attribute__((warn_unused_result));
/* Tells the kernel to drop cached names and attributes of slot (after
 * publish, kill or expiry).  Only queues the work for the invalidation
 * thread, so it never blocks on a reader and may be called from any thread,
 * a FUSE request handler included; a no-op before fs_start() and after
 * fs_stop().  Suitable as a store listener (arg is the struct fs); remove
 * the listener before fs_free() (store_free() notifies too). */
void fs_invalidate(void *fs, size_t slot);
/* Waits until every invalidation queued before the call has reached the
 * kernel, at most timeout_ms.  Revocation calls it so that no page the
 * kernel cached is read after `revoke` answers.  Returns 0, or -ETIMEDOUT
 * (the invalidations still go out, later). */
int fs_flush_invalidations(struct fs *fs, unsigned timeout_ms);
/* Stops serving, joins the threads, unmounts when we mounted (not for
 * "/dev/fd/N") and closes the /dev/fuse descriptor, so processes still using
 * the mount get ENOTCONN.  Final: the fs cannot be mounted again.
 * Idempotent. */
void fs_stop(struct fs *fs);
/* NULL-safe; stops first. */
void fs_free(struct fs *fs);

#endif
