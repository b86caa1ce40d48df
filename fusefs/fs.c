/* The read-only FUSE view of the store (libfuse3 low-level API), in the shape
 * of libfuse's example/hello_ll.c.
 *
 * Inode numbers are computed, not stored, so the daemon keeps no inode table
 * and ignores FORGET:
 *
 *   1                               the root
 *   base = (slot + 1) << 48         /<secret>
 *   base | f + 1                    /<secret>/<file f of the current version>
 *   base | 0xff                     /<secret>/..data
 *   base | seq << 8                 /<secret>/..v<seq>
 *   base | seq << 8 | f + 1         /<secret>/..v<seq>/<file f>
 *
 * so at most 65535 slots, STORE_MAX_FILES (< 255) files per version, and seq
 * below 2^40 for a ..vN directory (a larger seq is still served at the top
 * level, only its ..vN directory is hidden).  A top-level inode names a file
 * by its index in whatever version is current when it is used: renderers emit
 * the same file list for every version of a secret, so the index is stable.
 *
 * A top-level file's name resolves to the inode of its version's copy
 * (base | seq << 8 | f + 1, the same as ..v<seq>/<file>), so one inode
 * always holds one version's bytes and the kernel's page cache can keep
 * them (FS_CACHE_AUDITED, FS_CACHE_FAST) without ever mixing two versions;
 * rotation moves the name to another inode.  Every open pins the version
 * it will read; a version's pages are dropped from the kernel once it dies
 * (fs_inval_pages), after which reads reach us and fail EIO. */
#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fs.h"
#include "log.h"
#include "secret.h"

#define FS_SLOT_SHIFT 48
#define FS_SEQ_SHIFT 8
#define FS_MAX_SLOTS ((1ULL << (64 - FS_SLOT_SHIFT)) - 1)
#define FS_SEQ_MAX ((1ULL << (FS_SLOT_SHIFT - FS_SEQ_SHIFT)) - 1)
#define FS_FILE_MASK 0xffULL
#define FS_FILE_DATA 0xffULL /* ..data, in the low byte at seq 0 */
#define FS_NAME_MAX STORE_MAX_FILE_NAME
#define FS_MAX_VERSIONS STORE_KEEP_VERSIONS

/* Cache lifetimes (seconds) of names and attributes.  In FS_CACHE_NONE and
 * FS_CACHE_AUDITED none of them can make the workspace read a value past
 * its expiry or after a revocation: open() always reaches us and pins a
 * live version or fails with ENOENT.  What the kernel may keep is a name or
 * an attribute:
 *  - the root and the secret directories never change for the process's
 *    life, so their names and attributes are kept long;
 *  - top-level names and sizes change on every rotation: 1 s bounds how
 *    long stat() may show the previous size when an invalidation is missed
 *    (fs_invalidate normally drops them at once);
 *  - a ..vN directory and its files are immutable while they exist; once
 *    the version dies, stat() may still succeed for up to 10 s, but open()
 *    fails with ENOENT and reads with EIO. */
#define FS_TTL_STATIC 60.0
#define FS_TTL_TOP 1.0
#define FS_TTL_VERSION 10.0
/* FS_CACHE_FAST keeps every name and attribute until fs_invalidate() drops
 * it: an open that never reaches us must not cost a lookup either. */
#define FS_TTL_FAST 86400.0

/* The FUSE worker threads: at most this many.  Idle ones are kept (no
 * limit on idle threads, libfuse's default): a limit makes libfuse end and
 * start a thread around every burst of concurrent requests. */
#define FS_WORKERS_MAX 4
/* Versions of one slot whose pages the kernel may hold: the listed ones,
 * the orphans still pinned (store.c: 4 + 64) and those that died since the
 * last invalidation pass.  A read that would make it more fails EIO. */
#define FS_CACHED_MAX 128

/* How long fs_mount_from_socket() waits for the helper's descriptor. */
#define FS_SOCKET_TIMEOUT_SEC 10
/* More than one descriptor in the message is a protocol error; this many
 * are received (and closed) so that none leaks. */
#define FS_SOCKET_MAX_FDS 4
/* fs_stop() re-sends the wake-up signal this often until the loop exits. */
#define FS_STOP_RETRY_NSEC (50 * 1000 * 1000L)

enum fs_kind {
	FS_ROOT,
	FS_SLOT_DIR,
	FS_TOP_FILE,
	FS_DATA_LINK,
	FS_VER_DIR,
	FS_VER_FILE,
};

/* A decoded inode number. */
struct fs_node {
	enum fs_kind kind;
	size_t slot;
	uint64_t seq; /* 0 for the top level */
	size_t file;  /* index in the version, for files */
	bool by_name; /* a file reached by its top-level name (lookup) */
};

/* Links what fi->fh points to, so that fs_stop() can free handles whose
 * RELEASE never came (the kernel sends it asynchronously after close(), and
 * not at all once the connection is gone). */
struct fs_link {
	struct fs_link *prev, *next;
	bool is_dir;
};

/* What one open() pinned: fi->fh points here until release(). */
struct fs_handle {
	struct fs_link link;
	struct version *v;
	size_t idx;
	size_t slot;
	bool cached; /* its pages may live in the kernel's page cache */
};

/* A directory listing taken at opendir(), so that readdir() calls with
 * increasing offsets see one consistent list even across a rotation. */
struct fs_dirent {
	char name[FS_NAME_MAX];
	struct stat st;
	double ttl;
};

struct fs_dir {
	struct fs_link link;
	size_t count;
	struct fs_dirent ents[];
};

/* The names of a slot the kernel may have cached, as last shown; kept by
 * the invalidation thread only, so it can drop names that vanished. */
struct fs_seen {
	bool has_current;
	size_t nfiles, cap; /* files grows to the most names a version had */
	char (*files)[FS_NAME_MAX];
	size_t nseqs;
	uint64_t seqs[FS_MAX_VERSIONS];
};

/* A version of a slot whose file pages the kernel may cache. */
struct fs_cached_ver {
	uint64_t seq;
	size_t nfiles;
};

/* The versions of one slot that read() has served in a cache mode. */
struct fs_cached {
	size_t count, cap;
	struct fs_cached_ver *vers;
};

struct fs {
	struct store *st;
	const struct clock *clk;
	size_t nslots;
	time_t start_time;

	struct fuse_session *se; /* from fs_mount() until fs_stop() */
	bool own_mount;		 /* we mounted it: unmount in fs_stop() */
	bool started, stopped;
	enum fs_cache_mode cache;
	pthread_t loop_thread;
	pthread_t inval_thread;

	/* lock protects inval_running, inval_pending, the generations,
	 * dirty[] and cached[]. */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* work for the invalidation thread */
	pthread_cond_t flushed; /* inval_done moved */
	bool inval_running;
	bool inval_pending;
	uint64_t inval_queued;	  /* fs_invalidate() calls so far */
	uint64_t inval_done;	  /* of those, how many reached the kernel */
	bool *dirty;		  /* [nslots] */
	struct fs_cached *cached; /* [nslots] */
	bool *work;		  /* [nslots], invalidation thread only */
	struct fs_seen *seen;	  /* [nslots], invalidation thread only */

	/* open_lock protects the open list (handles and listings). */
	pthread_mutex_t open_lock;
	struct fs_link open;

	char handoff_info[FS_HANDOFF_INFO_MAX]; /* fs_mount_from_socket */
	fs_access_listener access_fn;		/* set before fs_start() */
	void *access_arg;
};

static void fs_track(struct fs *fs, struct fs_link *l, bool is_dir)
{
	l->is_dir = is_dir;
	pthread_mutex_lock(&fs->open_lock);
	l->next = fs->open.next;
	l->prev = &fs->open;
	fs->open.next->prev = l;
	fs->open.next = l;
	pthread_mutex_unlock(&fs->open_lock);
}

static void fs_untrack(struct fs *fs, struct fs_link *l)
{
	pthread_mutex_lock(&fs->open_lock);
	l->prev->next = l->next;
	l->next->prev = l->prev;
	pthread_mutex_unlock(&fs->open_lock);
}

/* ---- inode numbers ---- */

static fuse_ino_t fs_ino(const struct fs_node *n)
{
	uint64_t base = (uint64_t)(n->slot + 1) << FS_SLOT_SHIFT;

	switch (n->kind) {
	case FS_ROOT:
		return FUSE_ROOT_ID;
	case FS_SLOT_DIR:
		return base;
	case FS_DATA_LINK:
		return base | FS_FILE_DATA;
	case FS_VER_DIR:
		return base | n->seq << FS_SEQ_SHIFT;
	case FS_TOP_FILE:
	case FS_VER_FILE:
		break;
	}
	return base | n->seq << FS_SEQ_SHIFT | (uint64_t)(n->file + 1);
}

/* Returns 0, or -ENOENT for a number we never hand out. */
static int fs_decode(const struct fs *fs, fuse_ino_t ino, struct fs_node *n)
{
	uint64_t slot1 = (uint64_t)ino >> FS_SLOT_SHIFT;
	uint64_t low = (uint64_t)ino & ((1ULL << FS_SLOT_SHIFT) - 1);
	uint64_t f = low & FS_FILE_MASK;

	memset(n, 0, sizeof(*n));
	if (ino == FUSE_ROOT_ID) {
		n->kind = FS_ROOT;
		return 0;
	}
	if (slot1 == 0 || slot1 > fs->nslots)
		return -ENOENT;
	n->slot = (size_t)(slot1 - 1);
	n->seq = low >> FS_SEQ_SHIFT;
	if (f == 0) {
		n->kind = n->seq == 0 ? FS_SLOT_DIR : FS_VER_DIR;
		return 0;
	}
	if (f == FS_FILE_DATA && n->seq == 0) {
		n->kind = FS_DATA_LINK;
		return 0;
	}
	if (f > STORE_MAX_FILES)
		return -ENOENT;
	n->kind = n->seq == 0 ? FS_TOP_FILE : FS_VER_FILE;
	n->file = (size_t)(f - 1);
	return 0;
}

/* Parses "..v<seq>" (decimal, no leading zero, 1 <= seq <= FS_SEQ_MAX). */
static bool fs_parse_vdir(const char *name, uint64_t *seq)
{
	const char *p = name + 3;
	unsigned long long v;
	char *end;

	if (strncmp(name, "..v", 3) != 0 || *p < '1' || *p > '9' ||
	    strlen(p) > 13)
		return false;
	for (end = (char *)p; *end != '\0'; end++)
		if (*end < '0' || *end > '9')
			return false;
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > FS_SEQ_MAX)
		return false;
	*seq = v;
	return true;
}

/* ---- attributes ---- */

static void fs_stat_init(const struct fs *fs, fuse_ino_t ino, mode_t mode,
			 uid_t uid, gid_t gid, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = uid;
	st->st_gid = gid;
	st->st_blksize = 4096;
	st->st_atime = st->st_mtime = st->st_ctime = fs->start_time;
}

static void fs_stat_dir(const struct fs *fs, const struct fs_node *n,
			struct stat *st)
{
	const struct store_slot_info *info;

	if (n->kind == FS_ROOT) {
		fs_stat_init(fs, FUSE_ROOT_ID, S_IFDIR | 0555, 0, 0, st);
		return;
	}
	info = store_slot_info(fs->st, n->slot);
	fs_stat_init(fs, fs_ino(n), S_IFDIR | 0555, info->uid, info->gid, st);
}

/* The seq that numbers the inodes of v's files: its own, or 0 (the
 * top-level inodes, which FS_CACHE_AUDITED serves uncached) for a seq too
 * large for an inode number. */
static uint64_t fs_file_seq(const struct version *v)
{
	uint64_t seq = version_seq(v);

	return seq <= FS_SEQ_MAX ? seq : 0;
}

/* File f of the pinned version v, shown at seq (0: top level). */
static void fs_stat_file(const struct fs *fs, size_t slot, uint64_t seq,
			 struct version *v, size_t f, struct stat *st)
{
	const struct store_slot_info *info = store_slot_info(fs->st, slot);
	struct fs_node n = {
	    .kind = seq == 0 ? FS_TOP_FILE : FS_VER_FILE,
	    .slot = slot,
	    .seq = seq,
	    .file = f,
	};
	size_t size = version_file_size(v, f);

	fs_stat_init(fs, fs_ino(&n), S_IFREG | (info->mode & 0777), info->uid,
		     info->gid, st);
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
}

/* The ..data symlink pointing at version v. */
static void fs_stat_link(const struct fs *fs, size_t slot, struct version *v,
			 struct stat *st)
{
	const struct store_slot_info *info = store_slot_info(fs->st, slot);
	struct fs_node n = {.kind = FS_DATA_LINK, .slot = slot};
	char target[32];
	int len;

	len = snprintf(target, sizeof(target), "..v%" PRIu64, version_seq(v));
	fs_stat_init(fs, fs_ino(&n), S_IFLNK | 0777, info->uid, info->gid, st);
	st->st_size = len;
}

static double fs_ttl(const struct fs *fs, enum fs_kind kind)
{
	if (fs->cache == FS_CACHE_FAST)
		return FS_TTL_FAST;
	switch (kind) {
	case FS_ROOT:
	case FS_SLOT_DIR:
		return FS_TTL_STATIC;
	case FS_VER_DIR:
	case FS_VER_FILE:
		return FS_TTL_VERSION;
	case FS_TOP_FILE:
	case FS_DATA_LINK:
		break;
	}
	return FS_TTL_TOP;
}

/* A new reference to the version node n shows (current or ..vN), or NULL. */
static struct version *fs_pin(struct fs *fs, const struct fs_node *n)
{
	if (n->seq == 0)
		return store_pin_current(fs->st, n->slot);
	return store_pin_seq(fs->st, n->slot, n->seq);
}

/* Why a file node of version n->seq cannot be pinned: -ESTALE when a newer
 * version is current (the kernel may still hold the top-level name of the
 * old one: ESTALE makes the VFS look the path up again, LOOKUP_REVAL, and
 * open or stat the version the name has moved to; a ..vN path then gets
 * ENOENT from that lookup), else -ENOENT. */
static int fs_gone(struct fs *fs, const struct fs_node *n)
{
	struct version *cur;
	int r = -ENOENT;

	if (n->kind != FS_VER_FILE)
		return r;
	cur = store_pin_current(fs->st, n->slot);
	if (cur != NULL && version_seq(cur) > n->seq)
		r = -ESTALE;
	version_unref(cur);
	return r;
}

/* Attributes of node n as the store shows it now; -ENOENT once gone. */
static int fs_node_stat(struct fs *fs, const struct fs_node *n, struct stat *st)
{
	struct version *v = NULL;
	int r = -ENOENT;

	switch (n->kind) {
	case FS_ROOT:
	case FS_SLOT_DIR:
		fs_stat_dir(fs, n, st);
		return 0;
	case FS_VER_DIR:
	case FS_DATA_LINK:
	case FS_TOP_FILE:
	case FS_VER_FILE:
		break;
	}
	v = fs_pin(fs, n);
	if (v == NULL) {
		r = fs_gone(fs, n);
		goto out;
	}
	if (n->kind == FS_VER_DIR)
		fs_stat_dir(fs, n, st);
	else if (n->kind == FS_DATA_LINK)
		fs_stat_link(fs, n->slot, v, st);
	else if (version_has_file(v, n->file))
		fs_stat_file(fs, n->slot, n->seq, v, n->file, st);
	else
		goto out;
	r = 0;
out:
	version_unref(v);
	return r;
}

/* ---- lookup ---- */

/* The file called name in the version node dir shows. */
static int fs_lookup_file(struct fs *fs, const struct fs_node *dir,
			  const char *name, struct fs_node *out)
{
	struct version *v = fs_pin(fs, dir);
	int idx;

	if (v == NULL)
		return -ENOENT;
	idx = version_find_file(v, name);
	out->slot = dir->slot;
	out->seq = dir->seq != 0 ? dir->seq : fs_file_seq(v);
	out->kind = out->seq == 0 ? FS_TOP_FILE : FS_VER_FILE;
	out->file = (size_t)idx;
	out->by_name = dir->seq == 0;
	version_unref(v);
	return idx < 0 ? -ENOENT : 0;
}

static int fs_lookup_child(struct fs *fs, fuse_ino_t parent, const char *name,
			   struct fs_node *out)
{
	struct fs_node dir;
	int r;

	r = fs_decode(fs, parent, &dir);
	if (r < 0)
		return r;
	if (strlen(name) >= FS_NAME_MAX)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	switch (dir.kind) {
	case FS_ROOT:
		r = store_slot_find(fs->st, name);
		if (r < 0)
			return r;
		out->kind = FS_SLOT_DIR;
		out->slot = (size_t)r;
		return 0;
	case FS_SLOT_DIR:
		out->slot = dir.slot;
		if (strcmp(name, "..data") == 0) {
			out->kind = FS_DATA_LINK;
			return 0;
		}
		if (fs_parse_vdir(name, &out->seq)) {
			out->kind = FS_VER_DIR;
			return 0;
		}
		return fs_lookup_file(fs, &dir, name, out);
	case FS_VER_DIR:
		return fs_lookup_file(fs, &dir, name, out);
	case FS_TOP_FILE:
	case FS_DATA_LINK:
	case FS_VER_FILE:
		break;
	}
	return -ENOTDIR;
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fuse_entry_param e;
	struct fs_node n;
	int r;

	memset(&e, 0, sizeof(e));
	r = fs_lookup_child(fs, parent, name, &n);
	if (r == 0)
		r = fs_node_stat(fs, &n, &e.attr);
	if (r < 0) {
		/* A plain error, not a zero-inode entry: the kernel does not
		 * cache it, so a name that appears on rotation is seen at
		 * once. */
		fuse_reply_err(req, -r);
		return;
	}
	e.ino = e.attr.st_ino;
	e.attr_timeout = fs_ttl(fs, n.kind);
	/* The name moves to another inode on rotation. */
	e.entry_timeout = n.by_name ? fs_ttl(fs, FS_TOP_FILE) : e.attr_timeout;
	fuse_reply_entry(req, &e);
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_handle *h =
	    fi != NULL ? (struct fs_handle *)(uintptr_t)fi->fh : NULL;
	struct stat st;
	struct fs_node n;
	int r;

	/* Attributes describe what a new open() would see through this
	 * inode.  fstat() comes without a handle and fails with ENOENT once
	 * the file is gone; a read past the cached size asks with its
	 * handle (FUSE_GETATTR_FH), and must fail like the read: EIO. */
	r = fs_decode(fs, ino, &n);
	if (r == 0 && h != NULL &&
	    (n.kind == FS_TOP_FILE || n.kind == FS_VER_FILE)) {
		r = -EIO;
		if (version_live(h->v, clock_mono(fs->clk))) {
			fs_stat_file(fs, n.slot, n.seq, h->v, h->idx, &st);
			r = 0;
		}
	} else if (r == 0) {
		r = fs_node_stat(fs, &n, &st);
		/* A handle the kernel opened by itself (FS_CACHE_FAST). */
		if ((r == -ENOENT || r == -ESTALE) && fi != NULL &&
		    n.kind == FS_VER_FILE)
			r = -EIO;
	}
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs_ttl(fs, n.kind));
}

static void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct version *v = NULL;
	struct fs_node n;
	char target[32];
	int r;

	r = fs_decode(fs, ino, &n);
	if (r == 0 && n.kind != FS_DATA_LINK)
		r = -EINVAL;
	if (r == 0 && (v = store_pin_current(fs->st, n.slot)) == NULL)
		r = -ENOENT;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	(void)snprintf(target, sizeof(target), "..v%" PRIu64, version_seq(v));
	version_unref(v);
	fuse_reply_readlink(req, target);
}

/* ---- open, read, release ---- */

static bool fs_is_reader(const struct store_slot_info *info, uid_t uid)
{
	size_t i;

	for (i = 0; i < info->reader_count && i < STORE_MAX_READERS; i++)
		if (info->readers[i] == uid)
			return true;
	return false;
}

static void fs_report_access(struct fs *fs, const struct fuse_ctx *ctx,
			     const struct fs_node *n,
			     const struct store_slot_info *info,
			     const struct version *v, bool allowed)
{
	struct fs_access ev = {
	    .slot = n->slot,
	    .secret = info->name,
	    .file = version_file_name(v, n->file),
	    .version = version_seq(v),
	    .uid = ctx->uid,
	    .gid = ctx->gid,
	    .pid = ctx->pid,
	    .allowed = allowed,
	};

	if (fs->access_fn != NULL)
		fs->access_fn(fs->access_arg, &ev);
}

const char *fs_handoff_info(const struct fs *fs)
{
	return fs->handoff_info;
}

void fs_set_access_listener(struct fs *fs, fs_access_listener fn, void *arg)
{
	fs->access_fn = fn;
	fs->access_arg = arg;
}

/* Pins the version behind file node n for the caller of req, after the
 * reader check.  Returns 0, -EROFS, -EISDIR, -ENOENT, -EACCES, -ENOMEM. */
static int fs_open_handle(struct fs *fs, fuse_req_t req, fuse_ino_t ino,
			  int flags, struct fs_handle **ret)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	const struct store_slot_info *info;
	struct fs_handle *h = NULL;
	struct version *v = NULL;
	struct fs_node n;
	int r;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EROFS;
	r = fs_decode(fs, ino, &n);
	if (r < 0)
		return r;
	if (n.kind != FS_TOP_FILE && n.kind != FS_VER_FILE)
		return n.kind == FS_DATA_LINK ? -ELOOP : -EISDIR;
	r = -ENOENT;
	v = fs_pin(fs, &n);
	if (v == NULL)
		r = fs_gone(fs, &n);
	if (v == NULL || !version_has_file(v, n.file))
		goto out;
	info = store_slot_info(fs->st, n.slot);
	if (!fs_is_reader(info, ctx->uid)) {
		log_warnx("event=open_denied secret=%s file=%s uid=%u pid=%d",
			  info->name, version_file_name(v, n.file),
			  (unsigned)ctx->uid, (int)ctx->pid);
		fs_report_access(fs, ctx, &n, info, v, false);
		r = -EACCES;
		goto out;
	}
	r = -ENOMEM;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		goto out;
	log_debug("event=open secret=%s file=%s version=%" PRIu64
		  " uid=%u pid=%d",
		  info->name, version_file_name(v, n.file), version_seq(v),
		  (unsigned)ctx->uid, (int)ctx->pid);
	fs_report_access(fs, ctx, &n, info, v, true);
	h->v = v;
	h->idx = n.file;
	h->slot = n.slot;
	h->cached = fs->cache != FS_CACHE_NONE && n.kind == FS_VER_FILE;
	fs_track(fs, &h->link, false);
	v = NULL;
	*ret = h;
	r = 0;
out:
	version_unref(v);
	return r;
}

static void fs_handle_free(struct fs *fs, struct fs_handle *h)
{
	fs_untrack(fs, &h->link);
	version_unref(h->v);
	free(h);
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_handle *h = NULL;
	int r;

	/* The kernel opens by itself from now on (FUSE_CAP_NO_OPEN_SUPPORT);
	 * it checked the mode bits first (default_permissions). */
	if (fs->cache == FS_CACHE_FAST) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	r = fs_open_handle(fs, req, ino, fi->flags, &h);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	/* A cached inode holds one version's bytes for its whole life, so
	 * its pages stay valid across opens until fs_inval_pages() drops
	 * them; the rest (FS_CACHE_NONE, a seq too large for an inode) is
	 * read through us every time, each read re-checked. */
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = !h->cached;
	fi->keep_cache = h->cached;
	fi->noflush = 1;
	/* When the reply cannot be delivered (the caller was interrupted),
	 * no release will come for this handle. */
	if (fuse_reply_open(req, fi) != 0)
		fs_handle_free(fs, h);
}

/* Notes that the kernel may cache pages of version seq of slot, so that
 * fs_inval_pages() drops them when it dies.  Returns 0, or -EIO when too
 * many versions of the slot await that. */
static int fs_note_cached(struct fs *fs, size_t slot, uint64_t seq,
			  size_t nfiles)
{
	struct fs_cached *c = &fs->cached[slot];
	struct fs_cached_ver *grown;
	size_t i, cap;
	int r = 0;

	pthread_mutex_lock(&fs->lock);
	for (i = 0; i < c->count; i++)
		if (c->vers[i].seq == seq)
			goto out;
	if (c->count == c->cap) {
		r = -EIO;
		cap = c->cap == 0 ? 4 : c->cap * 2;
		if (cap > FS_CACHED_MAX)
			goto out;
		grown = realloc(c->vers, cap * sizeof(*grown));
		if (grown == NULL)
			goto out;
		c->vers = grown;
		c->cap = cap;
		r = 0;
	}
	c->vers[c->count].seq = seq;
	c->vers[c->count].nfiles = nfiles;
	c->count++;
out:
	pthread_mutex_unlock(&fs->lock);
	if (r < 0)
		log_warnx("event=fs_cache_full slot=%zu msg=\"more than %d "
			  "versions await a page-cache drop; read refused\"",
			  slot, FS_CACHED_MAX);
	return r;
}

/* The version a read without a handle (FS_CACHE_FAST) reads: the one its
 * inode names, while listed and live. */
static int fs_pin_inode(struct fs *fs, fuse_ino_t ino, struct fs_handle *h)
{
	struct fs_node n;
	int r;

	r = fs_decode(fs, ino, &n);
	if (r < 0)
		return r;
	if (n.kind != FS_TOP_FILE && n.kind != FS_VER_FILE)
		return -EISDIR;
	h->v = fs_pin(fs, &n);
	if (h->v == NULL)
		return -EIO;
	h->idx = n.file;
	h->slot = n.slot;
	h->cached = n.kind == FS_VER_FILE;
	return 0;
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;
	struct fs_handle inode_pin = {.v = NULL};
	uint64_t now = clock_mono(fs->clk);
	size_t fsize, n = 0;
	char *buf = NULL;
	ssize_t got;
	int r = -EINVAL;

	if (off < 0)
		goto out;
	if (h == NULL) {
		r = fs_pin_inode(fs, ino, &inode_pin);
		if (r < 0)
			goto out;
		h = &inode_pin;
	}
	/* Noted before the liveness check: a kill that lands after it is
	 * followed by an invalidation pass that sees this version. */
	if (h->cached) {
		r = fs_note_cached(fs, h->slot, version_seq(h->v),
				   version_file_count(h->v));
		if (r < 0)
			goto out;
	}
	/* A killed version reports size 0: ask first, or EOF would hide
	 * the revocation. */
	r = -EIO;
	if (!version_live(h->v, now))
		goto out;
	fsize = version_file_size(h->v, h->idx);
	if ((uint64_t)off < fsize)
		n = size < fsize - (size_t)off ? size : fsize - (size_t)off;
	r = -ENOMEM;
	buf = malloc(n > 0 ? n : 1);
	if (buf == NULL)
		goto out;
	got = version_read(h->v, h->idx, buf, n, off, now);
	if (got < 0) {
		r = (int)got;
		goto out;
	}
	r = 0;
	(void)fuse_reply_buf(req, buf, (size_t)got);
out:
	if (r < 0)
		fuse_reply_err(req, -r);
	if (buf != NULL) {
		secret_wipe(buf, n);
		free(buf);
	}
	version_unref(inode_pin.v);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;

	/* No handle: an open the kernel made by itself (FS_CACHE_FAST). */
	if (h != NULL)
		fs_handle_free(fuse_req_userdata(req), h);
	fuse_reply_err(req, 0);
}

static void fs_op_flush(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	/* ENOSYS: the kernel stops sending FLUSH at all, a round trip saved
	 * on every close (opens the kernel made by itself in FS_CACHE_FAST
	 * carry no noflush flag, and a kernel before 5.16 ignores it). */
	fuse_reply_err(req, ENOSYS);
}

static void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

/* ---- directories ---- */

static void fs_dir_add(struct fs_dir *d, const char *name,
		       const struct stat *st, double ttl)
{
	struct fs_dirent *e = &d->ents[d->count++];

	(void)snprintf(e->name, sizeof(e->name), "%s", name);
	e->st = *st;
	e->ttl = ttl;
}

static struct fs_dir *fs_dir_alloc(size_t max)
{
	struct fs_dir *d = calloc(1, sizeof(*d) + max * sizeof(d->ents[0]));

	return d;
}

/* The files of v (shown at seq) and, at the top level, ..data and ..vN. */
static void fs_dir_fill_version(struct fs *fs, struct fs_dir *d, size_t slot,
				uint64_t seq, struct version *v)
{
	struct stat st;
	size_t i;

	for (i = 0; i < version_file_count(v); i++) {
		if (!version_has_file(v, i))
			continue;
		fs_stat_file(fs, slot, seq != 0 ? seq : fs_file_seq(v), v, i,
			     &st);
		fs_dir_add(d, version_file_name(v, i), &st,
			   fs_ttl(fs, seq == 0 ? FS_TOP_FILE : FS_VER_FILE));
	}
	if (seq == 0) {
		fs_stat_link(fs, slot, v, &st);
		fs_dir_add(d, "..data", &st, fs_ttl(fs, FS_DATA_LINK));
	}
}

/* The listing of a secret directory (seq 0) or of a ..vN one.  A secret with
 * no live version lists as empty: it stays, so a reader can tell "not
 * available now" (ENOENT on the file) from "no such secret". */
static int fs_dir_secret(struct fs *fs, const struct fs_node *dn,
			 struct fs_dir **ret)
{
	struct fs_node parent = {.kind = dn->seq ? FS_SLOT_DIR : FS_ROOT,
				 .slot = dn->slot};
	uint64_t seqs[FS_MAX_VERSIONS];
	struct version *v = fs_pin(fs, dn);
	size_t nseqs = 0, i;
	struct fs_dir *d;
	struct stat st;
	char name[FS_NAME_MAX];

	if (v == NULL && dn->seq != 0)
		return -ENOENT;
	if (dn->seq == 0)
		nseqs = store_list_versions(fs->st, dn->slot, seqs,
					    FS_MAX_VERSIONS);
	d = fs_dir_alloc(2 + STORE_MAX_FILES + 1 + nseqs);
	if (d == NULL) {
		version_unref(v);
		return -ENOMEM;
	}
	fs_stat_dir(fs, dn, &st);
	fs_dir_add(d, ".", &st, fs_ttl(fs, dn->kind));
	fs_stat_dir(fs, &parent, &st);
	fs_dir_add(d, "..", &st, fs_ttl(fs, parent.kind));
	if (v != NULL)
		fs_dir_fill_version(fs, d, dn->slot, dn->seq, v);
	for (i = 0; i < nseqs; i++) {
		struct fs_node vn = {
		    .kind = FS_VER_DIR, .slot = dn->slot, .seq = seqs[i]};

		if (seqs[i] == 0 || seqs[i] > FS_SEQ_MAX)
			continue;
		(void)snprintf(name, sizeof(name), "..v%" PRIu64, seqs[i]);
		fs_stat_dir(fs, &vn, &st);
		fs_dir_add(d, name, &st, fs_ttl(fs, FS_VER_DIR));
	}
	version_unref(v);
	*ret = d;
	return 0;
}

static int fs_dir_root(struct fs *fs, struct fs_dir **ret)
{
	struct fs_node n = {.kind = FS_ROOT};
	struct fs_dir *d;
	struct stat st;
	size_t i;

	d = fs_dir_alloc(2 + fs->nslots);
	if (d == NULL)
		return -ENOMEM;
	fs_stat_dir(fs, &n, &st);
	fs_dir_add(d, ".", &st, fs_ttl(fs, FS_ROOT));
	fs_dir_add(d, "..", &st, fs_ttl(fs, FS_ROOT));
	for (i = 0; i < fs->nslots; i++) {
		n.kind = FS_SLOT_DIR;
		n.slot = i;
		fs_stat_dir(fs, &n, &st);
		fs_dir_add(d, store_slot_info(fs->st, i)->name, &st,
			   fs_ttl(fs, FS_SLOT_DIR));
	}
	*ret = d;
	return 0;
}

static void fs_op_opendir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_dir *d = NULL;
	struct fs_node n;
	int r;

	r = fs_decode(fs, ino, &n);
	if (r == 0) {
		if (n.kind == FS_ROOT)
			r = fs_dir_root(fs, &d);
		else if (n.kind == FS_SLOT_DIR || n.kind == FS_VER_DIR)
			r = fs_dir_secret(fs, &n, &d);
		else
			r = -ENOTDIR;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fs_track(fs, &d->link, true);
	if (fuse_reply_open(req, fi) != 0) {
		fs_untrack(fs, &d->link);
		free(d);
	}
}

static void fs_readdir_common(fuse_req_t req, size_t size, off_t off,
			      struct fuse_file_info *fi, bool plus)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	struct fuse_entry_param e;
	size_t pos = 0, len, i;
	char *buf;

	buf = calloc(1, size > 0 ? size : 1);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = off < 0 ? 0 : (size_t)off; i < d->count; i++) {
		const struct fs_dirent *de = &d->ents[i];

		if (plus) {
			memset(&e, 0, sizeof(e));
			e.ino = de->st.st_ino;
			e.attr = de->st;
			e.attr_timeout = e.entry_timeout = de->ttl;
			len =
			    fuse_add_direntry_plus(req, buf + pos, size - pos,
						   de->name, &e, (off_t)i + 1);
		} else {
			len =
			    fuse_add_direntry(req, buf + pos, size - pos,
					      de->name, &de->st, (off_t)i + 1);
		}
		if (len > size - pos)
			break;
		pos += len;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	fs_readdir_common(req, size, off, fi, false);
}

static void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			      off_t off, struct fuse_file_info *fi)
{
	fs_readdir_common(req, size, off, fi, true);
}

static void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino,
			     struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	fs_untrack(fuse_req_userdata(req), &d->link);
	free(d);
	fuse_reply_err(req, 0);
}

/* ---- everything else ---- */

/* access(2) and chdir: we enforce permissions ourselves (no
 * default_permissions), so answer as open() would. */
static void fs_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct fs *fs = fuse_req_userdata(req);
	struct stat st;
	struct fs_node n;
	int r;

	r = fs_decode(fs, ino, &n);
	if (r == 0)
		r = fs_node_stat(fs, &n, &st);
	if (r == 0 && (mask & W_OK))
		r = -EROFS;
	if (r == 0 && (n.kind == FS_TOP_FILE || n.kind == FS_VER_FILE)) {
		if ((mask & X_OK) ||
		    ((mask & R_OK) &&
		     !fs_is_reader(store_slot_info(fs->st, n.slot),
				   fuse_req_ctx(req)->uid)))
			r = -EACCES;
	}
	fuse_reply_err(req, -r);
}

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_files = fs->nslots;
	sv.f_namemax = FS_NAME_MAX - 1;
	fuse_reply_statfs(req, &sv);
}

static void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   size_t size)
{
	fuse_reply_err(req, ENODATA);
}

static void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* readlink must always reach us: ..data moves on rotation. */
	conn->want &=
	    ~(unsigned)(FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_WRITEBACK_CACHE |
			FUSE_CAP_EXPORT_SUPPORT);
}

/* Every request that would change the tree.  The mount is also "ro", so the
 * kernel normally refuses these first; this is for a mount made by someone
 * else without MS_RDONLY. */
static void fs_erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			  int to_set, struct fuse_file_info *fi)
{
	fs_erofs(req);
}

static void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, dev_t rdev)
{
	fs_erofs(req);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode)
{
	fs_erofs(req);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_erofs(req);
}

static void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			  const char *name)
{
	fs_erofs(req);
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned int flags)
{
	fs_erofs(req);
}

static void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		       const char *newname)
{
	fs_erofs(req);
}

static void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
			size_t size, off_t off, struct fuse_file_info *fi)
{
	fs_erofs(req);
}

static void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   const char *value, size_t size, int flags)
{
	fs_erofs(req);
}

static void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fs_erofs(req);
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, struct fuse_file_info *fi)
{
	fs_erofs(req);
}

static void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			    off_t offset, off_t length,
			    struct fuse_file_info *fi)
{
	fs_erofs(req);
}

static void fs_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in,
				  off_t off_in, struct fuse_file_info *fi_in,
				  fuse_ino_t ino_out, off_t off_out,
				  struct fuse_file_info *fi_out, size_t len,
				  int flags)
{
	fs_erofs(req);
}

/* FORGET is left out on purpose: inode numbers are computed, there is no
 * per-inode state to drop (libfuse answers it for us). */
static const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_op_init,
    .lookup = fs_op_lookup,
    .getattr = fs_op_getattr,
    .setattr = fs_op_setattr,
    .readlink = fs_op_readlink,
    .mknod = fs_op_mknod,
    .mkdir = fs_op_mkdir,
    .unlink = fs_op_unlink,
    .rmdir = fs_op_unlink,
    .symlink = fs_op_symlink,
    .rename = fs_op_rename,
    .link = fs_op_link,
    .open = fs_op_open,
    .read = fs_op_read,
    .write = fs_op_write,
    .flush = fs_op_flush,
    .release = fs_op_release,
    .fsync = fs_op_fsync,
    .opendir = fs_op_opendir,
    .readdir = fs_op_readdir,
    .releasedir = fs_op_releasedir,
    .fsyncdir = fs_op_fsync,
    .statfs = fs_op_statfs,
    .setxattr = fs_op_setxattr,
    .getxattr = fs_op_getxattr,
    .listxattr = fs_op_listxattr,
    .removexattr = fs_op_removexattr,
    .access = fs_op_access,
    .create = fs_op_create,
    .fallocate = fs_op_fallocate,
    .readdirplus = fs_op_readdirplus,
    .copy_file_range = fs_op_copy_file_range,
};

/* ---- invalidation ---- */

/* The names of slot's current version, into s (its seqs are the caller's
 * business).  Out of memory, the names that fit are kept: those left out
 * stay in the kernel's cache until their timeout. */
static void fs_seen_capture_names(struct fs *fs, size_t slot, struct fs_seen *s)
{
	struct version *v = store_pin_current(fs->st, slot);
	char(*grown)[FS_NAME_MAX];
	size_t i, count;

	s->has_current = v != NULL;
	s->nfiles = 0;
	if (v == NULL)
		return;
	count = version_file_count(v);
	if (count > s->cap) {
		grown = realloc(s->files, count * sizeof(*grown));
		if (grown != NULL) {
			s->files = grown;
			s->cap = count;
		} else {
			log_warnx("event=fs_names_truncated slot=%zu", slot);
		}
	}
	for (i = 0; i < count && i < s->cap; i++)
		(void)snprintf(s->files[i], FS_NAME_MAX, "%s",
			       version_has_file(v, i) ? version_file_name(v, i)
						      : "");
	s->nfiles = i;
	version_unref(v);
}

static bool fs_seqs_have(const uint64_t *seqs, size_t n, uint64_t seq)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (seqs[i] == seq)
			return true;
	return false;
}

static void fs_inval_entry(struct fs *fs, fuse_ino_t dir, const char *name)
{
	/* -ENOENT: the kernel had no such entry cached; nothing to do. */
	(void)fuse_lowlevel_notify_inval_entry(fs->se, dir, name, strlen(name));
}

static bool fs_seqs_past_inodes(const uint64_t *seqs, size_t n,
				const struct fs_seen *old)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (seqs[i] > FS_SEQ_MAX)
			return true;
	for (i = 0; i < old->nseqs; i++)
		if (old->seqs[i] > FS_SEQ_MAX)
			return true;
	return false;
}

/* Drops the kernel's names and attributes for slot: every name it showed
 * before (one may have vanished or moved to another index), every top-level
 * inode (sizes change on rotation) and the directory itself. */
static void fs_inval_slot(struct fs *fs, size_t slot)
{
	struct fs_seen *old = &fs->seen[slot];
	struct fs_node n = {.kind = FS_SLOT_DIR, .slot = slot};
	fuse_ino_t dir = fs_ino(&n);
	uint64_t seqs[FS_MAX_VERSIONS];
	char name[FS_NAME_MAX];
	size_t i, nseqs;

	nseqs = store_list_versions(fs->st, slot, seqs, FS_MAX_VERSIONS);
	for (i = 0; i < old->nfiles; i++)
		if (old->files[i][0] != '\0')
			fs_inval_entry(fs, dir, old->files[i]);
	if (old->has_current)
		fs_inval_entry(fs, dir, "..data");
	for (i = 0; i < old->nseqs; i++) {
		if (fs_seqs_have(seqs, nseqs, old->seqs[i]))
			continue;
		(void)snprintf(name, sizeof(name), "..v%" PRIu64, old->seqs[i]);
		fs_inval_entry(fs, dir, name);
	}
	(void)fuse_lowlevel_notify_inval_inode(fs->se, dir, 0, 0);
	/* Top-level inodes serve only versions numbered past what an inode
	 * can hold (fs_file_seq); otherwise names move between version
	 * inodes and these were never handed out. */
	n.kind = FS_TOP_FILE;
	for (i = 0;
	     fs_seqs_past_inodes(seqs, nseqs, old) && i < STORE_MAX_FILES;
	     i++) {
		n.file = i;
		(void)fuse_lowlevel_notify_inval_inode(fs->se, fs_ino(&n), 0,
						       0);
	}
	n.kind = FS_DATA_LINK;
	(void)fuse_lowlevel_notify_inval_inode(fs->se, fs_ino(&n), 0, 0);
	/* Names shown from now on; a publish meanwhile queued another pass,
	 * which drops whatever this one records. */
	fs_seen_capture_names(fs, slot, old);
	memcpy(old->seqs, seqs, sizeof(seqs));
	old->nseqs = nseqs;
}

/* Drops the kernel's pages of every version of slot that can no longer be
 * read by number (dead, or pushed out of the listing: a handle still on
 * it reads through us, which re-notes it). */
static void fs_inval_pages(struct fs *fs, size_t slot)
{
	struct fs_cached_ver drop[FS_CACHED_MAX];
	struct fs_cached *c = &fs->cached[slot];
	struct fs_node n = {.kind = FS_VER_FILE, .slot = slot};
	struct version *v;
	size_t i, kept = 0, ndrop = 0;

	pthread_mutex_lock(&fs->lock);
	for (i = 0; i < c->count; i++) {
		v = store_pin_seq(fs->st, slot, c->vers[i].seq);
		if (v != NULL)
			c->vers[kept++] = c->vers[i];
		else
			drop[ndrop++] = c->vers[i];
		version_unref(v);
	}
	c->count = kept;
	pthread_mutex_unlock(&fs->lock);
	for (i = 0; i < ndrop; i++) {
		n.seq = drop[i].seq;
		for (n.file = 0; n.file < drop[i].nfiles; n.file++)
			(void)fuse_lowlevel_notify_inval_inode(
			    fs->se, fs_ino(&n), 0, 0);
	}
}

/* The invalidation thread.  Notifications run here, never on the caller of
 * fs_invalidate(): a notification waits for kernel locks that a request in
 * flight may hold, so sending one from the FUSE thread (a store listener
 * firing inside a handler) would deadlock, and from the publishing thread
 * would make it wait on readers. */
static void *fs_inval_main(void *arg)
{
	struct fs *fs = arg;
	uint64_t gen;
	size_t i;

	pthread_mutex_lock(&fs->lock);
	for (;;) {
		while (fs->inval_running && !fs->inval_pending)
			pthread_cond_wait(&fs->cond, &fs->lock);
		if (!fs->inval_running)
			break;
		memcpy(fs->work, fs->dirty, fs->nslots * sizeof(bool));
		memset(fs->dirty, 0, fs->nslots * sizeof(bool));
		fs->inval_pending = false;
		gen = fs->inval_queued;
		pthread_mutex_unlock(&fs->lock);
		for (i = 0; i < fs->nslots; i++) {
			if (!fs->work[i])
				continue;
			fs_inval_slot(fs, i);
			fs_inval_pages(fs, i);
		}
		pthread_mutex_lock(&fs->lock);
		fs->inval_done = gen;
		pthread_cond_broadcast(&fs->flushed);
	}
	pthread_cond_broadcast(&fs->flushed);
	pthread_mutex_unlock(&fs->lock);
	return NULL;
}

void fs_invalidate(void *arg, size_t slot)
{
	struct fs *fs = arg;

	if (fs == NULL || slot >= fs->nslots)
		return;
	pthread_mutex_lock(&fs->lock);
	if (fs->inval_running) {
		fs->dirty[slot] = true;
		fs->inval_pending = true;
		fs->inval_queued++;
		pthread_cond_signal(&fs->cond);
	}
	pthread_mutex_unlock(&fs->lock);
}

int fs_flush_invalidations(struct fs *fs, unsigned timeout_ms)
{
	struct timespec deadline;
	uint64_t target;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fs->lock);
	target = fs->inval_queued;
	while (r == 0 && fs->inval_running && fs->inval_done < target)
		r = -pthread_cond_timedwait(&fs->flushed, &fs->lock, &deadline);
	pthread_mutex_unlock(&fs->lock);
	return r;
}

/* ---- lifecycle ---- */

/* libfuse's own messages (mount failures, mostly) as our log lines. */
static void fs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void fs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[256];
	size_t i;

	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	for (i = 0; msg[i] != '\0'; i++)
		if (msg[i] == '\n' || msg[i] == '"')
			msg[i] = msg[i] == '"' ? '\'' : ' ';
	while (i > 0 && msg[i - 1] == ' ')
		msg[--i] = '\0';
	if (level <= FUSE_LOG_WARNING)
		log_warnx("event=fuse_log msg=\"%s\"", msg);
	else
		log_debug("event=fuse_log msg=\"%s\"", msg);
}

static void fs_once_log(void)
{
	fuse_set_log_func(fs_fuse_log);
}

int fs_new(struct store *st, struct fs **ret)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_condattr_t cattr;
	struct fs *fs;
	size_t n = store_slot_count(st);

	if (n > FS_MAX_SLOTS)
		return -EINVAL;
	fs = calloc(1, sizeof(*fs));
	if (fs == NULL)
		return -ENOMEM;
	fs->st = st;
	fs->clk = clock_system();
	fs->nslots = n;
	fs->start_time = time(NULL);
	fs->dirty = calloc(n + 1, sizeof(bool));
	fs->work = calloc(n + 1, sizeof(bool));
	fs->seen = calloc(n + 1, sizeof(struct fs_seen));
	fs->cached = calloc(n + 1, sizeof(struct fs_cached));
	if (fs->dirty == NULL || fs->work == NULL || fs->seen == NULL ||
	    fs->cached == NULL) {
		free(fs->dirty);
		free(fs->work);
		free(fs->seen);
		free(fs->cached);
		free(fs);
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->lock, NULL);
	pthread_cond_init(&fs->cond, NULL);
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->flushed, &cattr);
	pthread_condattr_destroy(&cattr);
	pthread_mutex_init(&fs->open_lock, NULL);
	fs->open.next = fs->open.prev = &fs->open;
	(void)pthread_once(&once, fs_once_log);
	*ret = fs;
	return 0;
}

void fs_set_clock(struct fs *fs, const struct clock *clk)
{
	fs->clk = clk != NULL ? clk : clock_system();
}

void fs_set_cache_mode(struct fs *fs, enum fs_cache_mode mode)
{
	fs->cache = mode;
}

/* Runs "fusermount3 -u -z -- path" (no shell); for a non-root process that
 * cannot umount2() a mount it made through fusermount3. */
static int fs_fusermount_detach(const char *path)
{
	char *const argv[] = {"fusermount3", "-u",	   "-z",
			      "--",	     (char *)path, NULL};
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EPERM;
	return 0;
}

/* Returns 0 when path is a directory we may mount on, detaching a stale
 * FUSE mount (ENOTCONN: its daemon died) first. */
static int fs_check_mountpoint(const char *path, struct errmsg *err)
{
	struct stat st;
	int r;

	if (stat(path, &st) < 0 && errno == ENOTCONN) {
		log_warnx("event=stale_mount path=%s msg=\"a FUSE mount left "
			  "by a crashed run; detaching it\"",
			  path);
		r = umount2(path, MNT_DETACH) == 0 ? 0 : -errno;
		if (r == -EPERM)
			r = fs_fusermount_detach(path);
		if (r < 0)
			return errmsg_set(err, r,
					  "mount.path: %s: cannot "
					  "detach a stale FUSE mount: %s",
					  path, strerror(-r));
	}
	if (stat(path, &st) < 0) {
		r = -errno;
		if (r == -ENOENT)
			return errmsg_set(err, r,
					  "mount.path: %s does not "
					  "exist",
					  path);
		return errmsg_set(err, r, "mount.path: %s: %s", path,
				  strerror(-r));
	}
	if (!S_ISDIR(st.st_mode))
		return errmsg_set(err, -ENOTDIR,
				  "mount.path: %s is not a "
				  "directory",
				  path);
	return 0;
}

/* allow_other only when some reader is not us: an unprivileged broker
 * whose readers are its own uid then mounts without user_allow_other in
 * /etc/fuse.conf. */
static bool fs_needs_allow_other(const struct fs *fs)
{
	const struct store_slot_info *info;
	size_t slot, i;

	for (slot = 0; slot < store_slot_count(fs->st); slot++) {
		info = store_slot_info(fs->st, slot);
		for (i = 0; i < info->reader_count; i++)
			if (info->readers[i] != geteuid())
				return true;
	}
	return false;
}

int fs_mount(struct fs *fs, const char *mountpoint, struct errmsg *err)
{
	char opts[128];
	char *argv[] = {"credbroker", "-o", opts, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	bool is_fd = strncmp(mountpoint, "/dev/fd/", 8) == 0;
	struct fuse_session *se;
	int r;

	/* default_permissions only where opens never reach us: elsewhere
	 * open() checks the readers list itself. */
	(void)snprintf(opts, sizeof(opts),
		       "%s%sfsname=credbroker,subtype=credbroker,"
		       "ro,nosuid,nodev,noexec",
		       fs_needs_allow_other(fs) ? "allow_other," : "",
		       fs->cache == FS_CACHE_FAST ? "default_permissions,"
						  : "");
	if (fs->se != NULL || fs->stopped)
		return errmsg_set(err, -EALREADY, "mount: already mounted");
	/* Someone else mounted a descriptor with options we cannot see:
	 * without default_permissions nothing would check access. */
	if (is_fd && fs->cache == FS_CACHE_FAST)
		return errmsg_set(err, -EINVAL,
				  "mount.cache: \"fast\" needs a mount.path "
				  "the broker mounts itself");
	if (!is_fd) {
		r = fs_check_mountpoint(mountpoint, err);
		if (r < 0)
			return r;
	}
	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&args);
	if (se == NULL)
		return errmsg_set(err, -EIO,
				  "mount.path: %s: cannot create "
				  "the FUSE session",
				  mountpoint);
	if (fuse_session_mount(se, mountpoint) != 0) {
		fuse_session_destroy(se);
		return errmsg_set(err, -EIO,
				  "mount.path: %s: FUSE mount "
				  "failed (see the fuse_log line)",
				  mountpoint);
	}
	fs->se = se;
	fs->own_mount = !is_fd;
	log_info("event=mounted path=%s", mountpoint);
	return 0;
}

/* Receives exactly one descriptor on sock; closes any extra ones. */
/* The descriptor, and the helper's payload (its first bytes come with the
 * descriptor, the rest until the helper closes) into info. */
static int fs_recv_fd(int sock, int *ret, char *info, size_t info_size,
		      struct errmsg *err)
{
	char *data = info;
	size_t have;
	ssize_t more;
	union {
		char buf[CMSG_SPACE(sizeof(int) * FS_SOCKET_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = data, .iov_len = info_size - 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	int fds[FS_SOCKET_MAX_FDS], nfds = 0, i, n;
	struct cmsghdr *c;
	ssize_t got;

	memset(ctl.buf, 0, sizeof(ctl.buf));
	do
		got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return errmsg_set(err, -errno, "fuse socket: recvmsg: %s",
				  strerror(errno));
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < n && nfds < FS_SOCKET_MAX_FDS; i++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int),
			       sizeof(int));
	}
	if (nfds == 1 && !(msg.msg_flags & MSG_CTRUNC)) {
		have = (size_t)got;
		while (have < info_size - 1 &&
		       (more = recv(sock, info + have, info_size - 1 - have,
				    0)) > 0)
			have += (size_t)more;
		info[have] = '\0';
		*ret = fds[0];
		return 0;
	}
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return errmsg_set(err, -EPROTO,
			  "fuse socket: expected one "
			  "descriptor, got %d%s",
			  nfds,
			  (msg.msg_flags & MSG_CTRUNC) ? " (truncated)" : "");
}

static int fs_connect(const char *path, struct errmsg *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = FS_SOCKET_TIMEOUT_SEC};
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return errmsg_set(err, -ENAMETOOLONG,
				  "fuse socket: %s: path "
				  "too long",
				  path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errmsg_set(err, -errno, "fuse socket: socket: %s",
				  strerror(errno));
	/* A helper that accepts and never sends must not hang us. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return errmsg_set(err, r, "fuse socket: %s: %s", path,
				  strerror(-r));
	}
	return fd;
}

int fs_mount_from_socket(struct fs *fs, const char *path, struct errmsg *err)
{
	char devpath[32];
	struct stat st;
	int sock, fd = -1, r;

	sock = fs_connect(path, err);
	if (sock < 0)
		return sock;
	r = fs_recv_fd(sock, &fd, fs->handoff_info, sizeof(fs->handoff_info),
		       err);
	close(sock);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
		r = errmsg_set(err, -EPROTO,
			       "fuse socket: %s: the descriptor "
			       "received is not a character device",
			       path);
		goto out;
	}
	(void)snprintf(devpath, sizeof(devpath), "/dev/fd/%d", fd);
	r = fs_mount(fs, devpath, err);
	if (r == 0)
		fd = -1; /* the session owns it now */
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static void fs_sigusr1(int sig)
{
	(void)sig;
}

/* The no-op SIGUSR1 handler that lets fs_stop() interrupt the loop's
 * blocking read(): installed without SA_RESTART so read() fails EINTR. */
static void fs_once_signal(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fs_sigusr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		log_warn("event=fs_sigaction signal=SIGUSR1");
}

static void *fs_loop_main(void *arg)
{
	struct fs *fs = arg;
	struct fuse_loop_config *cfg;
	sigset_t set;
	int r = -ENOMEM;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Workers inherit this mask: SIGUSR1 open, so fs_stop() reaches the
	 * loop's wait; libfuse cancels the workers when the loop ends. */
	cfg = fuse_loop_cfg_create();
	if (cfg != NULL) {
		fuse_loop_cfg_set_max_threads(cfg, FS_WORKERS_MAX);
		r = fuse_session_loop_mt(fs->se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	if (r != 0)
		log_warnx("event=fuse_loop_exit err=%d", r);
	return NULL;
}

/* Starts fn with every signal blocked (the loop thread unblocks SIGUSR1). */
static int fs_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int fs_start(struct fs *fs)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	size_t i;
	int r;

	if (fs->se == NULL)
		return -ENOTCONN;
	if (fs->started)
		return -EALREADY;
	(void)pthread_once(&once, fs_once_signal);
	for (i = 0; i < fs->nslots; i++)
		fs_seen_capture_names(fs, i, &fs->seen[i]);
	fs->seen[i].nseqs =
	    store_list_versions(fs->st, i, fs->seen[i].seqs, FS_MAX_VERSIONS);
	fs->inval_running = true;
	r = fs_thread_start(&fs->inval_thread, fs_inval_main, fs);
	if (r < 0) {
		fs->inval_running = false;
		return r;
	}
	r = fs_thread_start(&fs->loop_thread, fs_loop_main, fs);
	if (r < 0) {
		pthread_mutex_lock(&fs->lock);
		fs->inval_running = false;
		pthread_cond_signal(&fs->cond);
		pthread_mutex_unlock(&fs->lock);
		pthread_join(fs->inval_thread, NULL);
		return r;
	}
	fs->started = true;
	return 0;
}

/* Interrupts the loop's read() until the thread is gone: a signal sent just
 * before the thread blocks in read() would be lost, so it is re-sent. */
static void fs_join_loop(struct fs *fs)
{
	struct timespec deadline;
	int tries = 0;

	fuse_session_exit(fs->se);
	for (;;) {
		(void)pthread_kill(fs->loop_thread, SIGUSR1);
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += FS_STOP_RETRY_NSEC;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(fs->loop_thread, NULL, &deadline) == 0)
			return;
		if (++tries == 40)
			log_warnx("event=fs_stop msg=\"the FUSE thread is "
				  "slow to stop\"");
	}
}

/* After the session is gone no RELEASE can come: drop what is still open. */
static void fs_free_open(struct fs *fs)
{
	struct fs_link *l;

	while ((l = fs->open.next) != &fs->open) {
		if (l->is_dir) {
			fs_untrack(fs, l);
			free((struct fs_dir *)(void *)l);
		} else {
			fs_handle_free(fs, (struct fs_handle *)(void *)l);
		}
	}
}

void fs_disown_mount(struct fs *fs)
{
	fs->own_mount = false;
}

void fs_stop(struct fs *fs)
{
	if (fs == NULL || fs->stopped)
		return;
	fs->stopped = true;
	if (fs->started) {
		/* The invalidation thread first, while the loop still
		 * answers the requests its notifications may wait on. */
		pthread_mutex_lock(&fs->lock);
		fs->inval_running = false;
		pthread_cond_signal(&fs->cond);
		pthread_mutex_unlock(&fs->lock);
		pthread_join(fs->inval_thread, NULL);
		fs_join_loop(fs);
	}
	if (fs->se == NULL)
		return;
	/* Closing the device aborts the connection, so processes still
	 * using the mount get ENOTCONN rather than hang. */
	if (fs->own_mount)
		fuse_session_unmount(fs->se);
	fuse_session_destroy(fs->se);
	fs->se = NULL;
	fs_free_open(fs);
}

void fs_free(struct fs *fs)
{
	size_t i;

	if (fs == NULL)
		return;
	fs_stop(fs);
	pthread_mutex_destroy(&fs->lock);
	pthread_cond_destroy(&fs->cond);
	pthread_cond_destroy(&fs->flushed);
	pthread_mutex_destroy(&fs->open_lock);
	for (i = 0; i < fs->nslots; i++) {
		free(fs->cached[i].vers);
		free(fs->seen[i].files);
	}
	free(fs->cached);
	free(fs->dirty);
	free(fs->work);
	free(fs->seen);
	free(fs);
}
