/* fsbench: the read-path and rotation benchmarks of bench/scen_read.py and
 * bench/scen_rotation.py.  One run mounts one target, forks C reader loops
 * (Python is far too slow to time microsecond reads), prints one JSON object
 * on stdout and cleans up.  Targets:
 *
 *   fs        the real fusefs over a real store holding synthetic secrets
 *             this program publishes itself, so it knows when each rotation
 *             happened (CLOCK_MONOTONIC, shared with the readers through an
 *             anonymous shared mapping);
 *   tmpfs     a directory on /dev/shm: the limit (and Vault Agent's model);
 *   naive     tmpfs rewritten in place (O_TRUNC, then two writes): the
 *             negative control of the torn-read checker;
 *   uncached  a minimal FUSE server with entry/attr timeouts of 0 and
 *             direct_io, so every open+read+close reaches userspace (the
 *             keywhiz-fs model).
 *
 *   fsbench read   --target T [--mode M] [--op orc|pread] [--readers N]
 *                  [--count N | --ms MS] [--listener comm|none] ...
 *   fsbench rotate --target T [--mode M] --ms MS --interval-us U ...
 *
 * With --flush-ms, each publish also waits (at most MS) for the fs's
 * kernel invalidations (fs_flush_invalidations), as revocation does.
 *
 * The fs gets an access listener that reads the opener's /proc/PID/comm,
 * as the broker's does (--listener none leaves it out).
 *
 * Every file holds "V<seq hex>:<payload derived from seq>:<FNV-1a hex>", so
 * a read mixing two versions, or a short one, fails validation.  Readers and
 * the hog are forked before anything is mounted (they never share a
 * /dev/fuse descriptor) and die with the parent (PR_SET_PDEATHSIG).  The
 * caller gives --dir, an empty directory it removes (and whose "mnt" it
 * detaches) whatever happens to this process. */
#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "errmsg.h"
#include "fs.h"
#include "log.h"
#include "secret.h"
#include "store.h"

#define BENCH_MAX_READERS 4
#define BENCH_MAX_ROT 65536	  /* rotations per run */
#define BENCH_MAX_SAMPLES 4000000 /* timed ops per reader */
#define BENCH_BUF 4096
#define BENCH_MIN_SIZE 40
#define BENCH_HDR 18	 /* "V" + 16 hex + ":" */
#define BENCH_TRAILER 17 /* ":" + 16 hex */
#define BENCH_FILE "value"
#define BENCH_SECRET "bench"
#define BENCH_HOUR_USEC (3600 * USEC_PER_SEC)
/* A read opened this long after a newer publish returned, still old, is
 * stale. */
#define BENCH_STALE_NS 5000000ULL
#define BENCH_PIN_EVERY 64    /* ops between two checks of a held fd */
#define BENCH_PIN_REOPEN 8192 /* ops between two re-opens of it */
#define BENCH_HOG_CHUNK (2 << 20)
#define TMPFS_MAGIC_NR 0x01021994

enum bench_target { TGT_FS, TGT_TMPFS, TGT_NAIVE, TGT_UNCACHED };
enum bench_op { OP_ORC, OP_PREAD };

struct bench_opts {
	bool rotate;
	enum bench_target target;
	const char *mode;
	enum bench_op op;
	int readers;
	int server_cpu;
	int reader_cpu[BENCH_MAX_READERS];
	uint64_t count;
	uint64_t warmup;
	double seconds;
	size_t size;
	uint64_t interval_us;
	uint64_t pressure_mib;
	bool no_listener;
	unsigned flush_ms;
	const char *dir;
	const char *samples;
};

struct reader_stat {
	uint64_t ops;
	uint64_t valid;
	uint64_t torn;
	uint64_t short_reads;
	uint64_t errors;      /* failed open or read of a fresh open */
	uint64_t open_enoent; /* of which open() said ENOENT */
	uint64_t open_estale; /* of which open() said ESTALE */
	uint64_t open_other;  /* other open() errors */
	uint64_t held_errors; /* failed preads on a descriptor held open */
	int held_errno;
	uint64_t stale;
	uint64_t regress;
	uint64_t pin_checks;
	uint64_t pin_viol;
	uint64_t t_start;
	uint64_t t_end;
	int first_errno;
};

/* Lives in a MAP_SHARED mapping made before any fork. */
struct bench_shared {
	_Atomic int stop;
	_Atomic uint64_t pub_seq; /* the newest seq whose publish returned */
	_Atomic uint64_t hog_loops;
	_Atomic uint64_t hog_evictions;
	_Atomic int hog_ready;
	_Atomic uint64_t broker_opens; /* opens the fs told its listener of */
	_Atomic uint64_t flush_timeouts;
	_Atomic int warm;  /* readers done with their warm-up */
	_Atomic int timed; /* the timed window of a --ms read run is open */
	uint64_t pub_start[BENCH_MAX_ROT + 1];
	_Atomic uint64_t pub_done[BENCH_MAX_ROT + 1];
	_Atomic uint64_t first_seen[BENCH_MAX_ROT + 1];
	_Atomic uint64_t first_dur[BENCH_MAX_ROT + 1];
	struct reader_stat rs[BENCH_MAX_READERS];
};

static struct bench_shared *sh;
static uint32_t *samples; /* readers * count, shared */

static uint64_t now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

/* ---- content: version number, payload, checksum ---- */

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void put_hex(unsigned char *p, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--) {
		p[i] = (unsigned char)digits[v & 0xf];
		v >>= 4;
	}
}

static bool get_hex(const unsigned char *p, uint64_t *ret)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 16; i++) {
		unsigned c = p[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (c - 'a' + 10);
		else
			return false;
	}
	*ret = v;
	return true;
}

static unsigned char payload_byte(uint64_t seq, size_t i)
{
	return (unsigned char)('a' + (seq * 7 + i * 13) % 26);
}

static void content_make(uint64_t seq, unsigned char *buf, size_t size)
{
	size_t i, body = size - BENCH_TRAILER;

	buf[0] = 'V';
	put_hex(buf + 1, seq);
	buf[BENCH_HDR - 1] = ':';
	for (i = BENCH_HDR; i < body; i++)
		buf[i] = payload_byte(seq, i);
	buf[body] = ':';
	put_hex(buf + body + 1, fnv1a(buf, body));
}

/* 0 and *seq for one whole, consistent version; -1 for anything else. */
static int content_check(const unsigned char *buf, ssize_t n, size_t size,
			 uint64_t *seq)
{
	size_t i, body = size - BENCH_TRAILER;
	uint64_t s, sum;

	if (n != (ssize_t)size || buf[0] != 'V' || buf[BENCH_HDR - 1] != ':' ||
	    buf[body] != ':' || !get_hex(buf + 1, &s) ||
	    !get_hex(buf + body + 1, &sum) || sum != fnv1a(buf, body))
		return -1;
	for (i = BENCH_HDR; i < body; i++)
		if (buf[i] != payload_byte(s, i))
			return -1;
	*seq = s;
	return 0;
}

/* ---- the real fusefs ---- */

struct target_fs {
	struct store *st;
	struct fs *fs;
};

static int fs_target_publish(struct target_fs *t, uint64_t seq, size_t size,
			     unsigned flush_ms, uint64_t *t_start)
{
	unsigned char buf[BENCH_BUF];
	struct version *v = NULL;
	struct secret *s;
	uint64_t now;
	int r;

	content_make(seq, buf, size);
	*t_start = now_ns();
	now = clock_mono(clock_system());
	r = version_new(seq, now + BENCH_HOUR_USEC, &v);
	if (r < 0)
		return r;
	r = secret_from(buf, size, &s);
	if (r < 0)
		goto out;
	r = version_add_file(v, BENCH_FILE, s);
	if (r < 0)
		goto out;
	r = store_publish(t->st, 0, v);
	if (r == 0 && flush_ms > 0 &&
	    fs_flush_invalidations(t->fs, flush_ms) == -ETIMEDOUT)
		atomic_fetch_add(&sh->flush_timeouts, 1);
out:
	version_unref(v);
	return r;
}

/* The stand-in for the broker's access listener (broker_on_access): it
 * reads the opener's /proc/PID/comm as the broker does, and counts.  The
 * broker then coalesces the audit record; that part is left out. */
static void fs_target_on_access(void *arg, const struct fs_access *ev)
{
	char path[64], comm[32];
	int fd;

	(void)arg;
	(void)snprintf(path, sizeof(path), "/proc/%d/comm", (int)ev->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, comm, sizeof(comm)) < 0)
			comm[0] = '\0';
		(void)close(fd);
	}
	atomic_fetch_add(&sh->broker_opens, 1);
}

static int fs_target_start(struct target_fs *t, const char *mnt,
			   const char *mode, bool listener, size_t size)
{
	struct store_slot_info slot;
	struct errmsg err = {""};
	uint64_t t0;
	int r;

	memset(&slot, 0, sizeof(slot));
	(void)snprintf(slot.name, sizeof(slot.name), BENCH_SECRET);
	slot.mode = 0440;
	slot.reader_count = 1;
	slot.readers[0] = geteuid();
	slot.uid = geteuid();
	slot.gid = getegid();
	r = store_new(&slot, 1, clock_system(), &t->st);
	if (r < 0)
		return r;
	r = fs_new(t->st, &t->fs);
	if (r < 0)
		return r;
	if (strcmp(mode, "audited") == 0)
		fs_set_cache_mode(t->fs, FS_CACHE_AUDITED);
	else if (strcmp(mode, "fast") == 0)
		fs_set_cache_mode(t->fs, FS_CACHE_FAST);
	else if (strcmp(mode, "none") == 0)
		fs_set_cache_mode(t->fs, FS_CACHE_NONE);
	else if (strcmp(mode, "default") != 0)
		fatalx(2, "fsbench: unknown --mode %s", mode);
	if (listener)
		fs_set_access_listener(t->fs, fs_target_on_access, NULL);
	store_set_listener(t->st, fs_invalidate, t->fs);
	r = fs_target_publish(t, 1, size, 0, &t0);
	if (r < 0)
		return r;
	r = fs_mount(t->fs, mnt, &err);
	if (r < 0) {
		log_warnx("fsbench: mount %s: %s", mnt, err.text);
		return r;
	}
	return fs_start(t->fs);
}

static void fs_target_stop(struct target_fs *t)
{
	if (t->st != NULL)
		store_set_listener(t->st, NULL, NULL);
	fs_free(t->fs);
	store_free(t->st);
	t->fs = NULL;
	t->st = NULL;
}

/* ---- the uncached FUSE model (keywhiz-fs: every request reaches us) ---- */

#define UNC_INO_FILE 2

struct target_unc {
	struct fuse_session *se;
	pthread_t thread;
	bool running;
	unsigned char data[BENCH_BUF];
	size_t size;
};

static void unc_stat(struct target_unc *u, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0440;
		st->st_nlink = 1;
		st->st_size = (off_t)u->size;
	}
}

static void unc_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct target_unc *u = fuse_req_userdata(req);
	struct fuse_entry_param e;

	if (parent != FUSE_ROOT_ID || strcmp(name, BENCH_FILE) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = UNC_INO_FILE;
	unc_stat(u, e.ino, &e.attr);
	e.attr_timeout = e.entry_timeout = 0.0;
	fuse_reply_entry(req, &e);
}

static void unc_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct target_unc *u = fuse_req_userdata(req);
	struct stat st;

	if (ino != FUSE_ROOT_ID && ino != UNC_INO_FILE) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	unc_stat(u, ino, &st);
	fuse_reply_attr(req, &st, 0.0);
}

static void unc_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != UNC_INO_FILE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void unc_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct target_unc *u = fuse_req_userdata(req);

	if (off < 0 || (size_t)off >= u->size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > u->size - (size_t)off)
		size = u->size - (size_t)off;
	fuse_reply_buf(req, (const char *)u->data + off, size);
}

/* go-fuse, which keywhiz-fs uses, answers FLUSH and RELEASE. */
static void unc_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void unc_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops unc_ops = {
    .lookup = unc_lookup,
    .getattr = unc_getattr,
    .open = unc_open,
    .read = unc_read,
    .flush = unc_flush,
    .release = unc_release,
};

static void *unc_loop(void *arg)
{
	struct target_unc *u = arg;

	(void)fuse_session_loop(u->se);
	return NULL;
}

static int unc_start(struct target_unc *u, const char *mnt, size_t size)
{
	char *argv[] = {(char *)"fsbench", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	int r;

	u->size = size;
	content_make(1, u->data, size);
	u->se = fuse_session_new(&args, &unc_ops, sizeof(unc_ops), u);
	fuse_opt_free_args(&args);
	if (u->se == NULL)
		return -ENOMEM;
	if (fuse_session_mount(u->se, mnt) != 0)
		return -EIO;
	r = pthread_create(&u->thread, NULL, unc_loop, u);
	if (r != 0)
		return -r;
	u->running = true;
	return 0;
}

static void unc_stop(struct target_unc *u, const char *mnt)
{
	if (u->se == NULL)
		return;
	fuse_session_exit(u->se);
	fuse_session_unmount(u->se);
	if (u->running)
		(void)pthread_join(u->thread, NULL);
	fuse_session_destroy(u->se);
	u->se = NULL;
	(void)umount2(mnt, MNT_DETACH);
}

/* ---- tmpfs writers ---- */

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The atomic writer: a new file, then rename(2) over the old one. */
static int tmpfs_publish(const char *dir, uint64_t seq, size_t size,
			 uint64_t *t_start)
{
	unsigned char buf[BENCH_BUF];
	char tmp[PATH_MAX], path[PATH_MAX];
	int fd, r;

	content_make(seq, buf, size);
	(void)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, BENCH_FILE);
	(void)snprintf(path, sizeof(path), "%s/%s", dir, BENCH_FILE);
	*t_start = now_ns();
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0440);
	if (fd < 0)
		return -errno;
	r = write_all(fd, buf, size);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	return r;
}

/* The negative control: truncate in place, then write in two parts. */
static int naive_publish(const char *dir, uint64_t seq, size_t size,
			 uint64_t *t_start)
{
	unsigned char buf[BENCH_BUF];
	char path[PATH_MAX];
	int fd, r;

	content_make(seq, buf, size);
	(void)snprintf(path, sizeof(path), "%s/%s", dir, BENCH_FILE);
	*t_start = now_ns();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0440);
	if (fd < 0)
		return -errno;
	r = write_all(fd, buf, size / 2);
	if (r == 0)
		r = write_all(fd, buf + size / 2, size - size / 2);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* ---- readers ---- */

static void note_err(struct reader_stat *rs, int e)
{
	rs->errors++;
	if (rs->first_errno == 0)
		rs->first_errno = e;
}

/* open+read+close once; returns the byte count or -errno, and counts a
 * failed open in rs. */
static ssize_t orc(const char *path, unsigned char *buf, struct reader_stat *rs)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			rs->open_enoent++;
		else if (errno == ESTALE)
			rs->open_estale++;
		else
			rs->open_other++;
		return -errno;
	}
	n = read(fd, buf, BENCH_BUF);
	if (n < 0)
		n = -errno;
	(void)close(fd);
	return n;
}

static void reader_read(const struct bench_opts *o, int idx, const char *path)
{
	struct reader_stat *rs = &sh->rs[idx];
	uint32_t *mine =
	    samples != NULL ? samples + (size_t)idx * o->count : NULL;
	unsigned char buf[BENCH_BUF];
	uint64_t i, t0, t1;
	ssize_t n;
	int fd = -1;

	if (o->op == OP_PREAD) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			note_err(rs, errno);
			return;
		}
	}
	for (i = 0; i < o->warmup; i++) {
		n = fd >= 0 ? pread(fd, buf, BENCH_BUF, 0) : orc(path, buf, rs);
		if (n != (ssize_t)o->size)
			note_err(rs, n < 0 ? (int)-n : EIO);
	}
	/* A timed window starts when every reader is warm. */
	atomic_fetch_add(&sh->warm, 1);
	while (o->seconds > 0 && !atomic_load(&sh->timed))
		sched_yield();
	rs->t_start = now_ns();
	for (i = 0; o->seconds > 0 || i < o->count; i++) {
		if (o->seconds > 0 && (i & 63) == 0 &&
		    atomic_load_explicit(&sh->stop, memory_order_relaxed))
			break;
		t0 = now_ns();
		if (fd >= 0) {
			n = pread(fd, buf, BENCH_BUF, 0);
			if (n < 0)
				n = -errno;
		} else {
			n = orc(path, buf, rs);
		}
		t1 = now_ns();
		if (mine != NULL)
			mine[i] = t1 - t0 > UINT32_MAX ? UINT32_MAX
						       : (uint32_t)(t1 - t0);
		if (n != (ssize_t)o->size)
			note_err(rs, n < 0 ? (int)-n : EIO);
		else
			rs->valid++;
	}
	rs->t_end = now_ns();
	rs->ops = i;
	if (fd >= 0)
		(void)close(fd);
}

/* Notes the end t of a read that returned seq, and how long that
 * open+read+close took (dur): the first sight of a version. */
static void seen(uint64_t seq, uint64_t t, uint64_t dur)
{
	_Atomic uint64_t *p;
	uint64_t old;

	if (seq > BENCH_MAX_ROT)
		return;
	p = &sh->first_seen[seq];
	old = atomic_load(p);
	while (old == 0 || t < old) {
		if (atomic_compare_exchange_weak(p, &old, t)) {
			atomic_store(&sh->first_dur[seq], dur);
			break;
		}
	}
}

/* Checks the held descriptor: the version it pinned at open must never
 * change under it (invariant 2), also when the kernel's page cache of the
 * file is dropped. */
static void reader_pin_check(const struct bench_opts *o, struct reader_stat *rs,
			     const char *path, int *held, uint64_t *held_seq,
			     uint64_t ops)
{
	unsigned char buf[BENCH_BUF];
	uint64_t s;
	ssize_t n;

	if (*held >= 0 && ops % BENCH_PIN_REOPEN == 0) {
		(void)close(*held);
		*held = -1;
	}
	if (*held < 0) {
		*held = open(path, O_RDONLY | O_CLOEXEC);
		if (*held < 0)
			return;
		n = pread(*held, buf, BENCH_BUF, 0);
		if (content_check(buf, n, o->size, &s) < 0) {
			(void)close(*held);
			*held = -1;
			return;
		}
		*held_seq = s;
		return;
	}
	n = pread(*held, buf, BENCH_BUF, 0);
	rs->pin_checks++;
	if (n < 0) {
		rs->held_errors++;
		if (rs->held_errno == 0)
			rs->held_errno = errno;
		/* Dead (EIO): open a fresh one next time. */
		(void)close(*held);
		*held = -1;
	} else if (content_check(buf, n, o->size, &s) < 0) {
		rs->torn++;
	} else {
		rs->valid++;
		if (s != *held_seq)
			rs->pin_viol++;
	}
}

static void reader_rotate(const struct bench_opts *o, int idx, const char *path)
{
	struct reader_stat *rs = &sh->rs[idx];
	unsigned char buf[BENCH_BUF];
	uint64_t last = 0, known, known_done, t0, t1, s, held_seq = 0;
	ssize_t n;
	int held = -1;

	rs->t_start = now_ns();
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		known = atomic_load(&sh->pub_seq);
		known_done = known <= BENCH_MAX_ROT
				 ? atomic_load(&sh->pub_done[known])
				 : 0;
		t0 = now_ns();
		n = orc(path, buf, rs);
		t1 = now_ns();
		rs->ops++;
		if (n < 0) {
			note_err(rs, (int)-n);
			continue;
		}
		if (content_check(buf, n, o->size, &s) < 0) {
			rs->torn++;
			if (n != (ssize_t)o->size)
				rs->short_reads++;
			continue;
		}
		rs->valid++;
		if (s < last)
			rs->regress++;
		if (s > last) {
			last = s;
			seen(s, t1, t1 - t0);
		}
		if (s < known && known_done != 0 &&
		    t0 > known_done + BENCH_STALE_NS)
			rs->stale++;
		if (rs->ops % BENCH_PIN_EVERY == 0 && o->target != TGT_NAIVE)
			reader_pin_check(o, rs, path, &held, &held_seq,
					 rs->ops);
	}
	rs->t_end = now_ns();
	if (held >= 0)
		(void)close(held);
}

/* ---- memory pressure: a bounded hog plus page-cache eviction ---- */

static uint64_t mem_available_mib(void)
{
	char line[256];
	uint64_t kib = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "MemAvailable:", 13) == 0) {
			char *end;

			errno = 0;
			kib = strtoull(line + 13, &end, 10);
			if (errno != 0 || end == line + 13)
				kib = 0;
			break;
		}
	}
	fclose(f);
	return kib / 1024;
}

/* Holds mib MiB touched, then until stop: drops and re-faults it one chunk
 * at a time (the page allocator and reclaim paths stay busy) and evicts the
 * benchmark file's pages from the page cache after every chunk, as reclaim
 * would. */
static void hog_run(uint64_t mib, const char *path)
{
	size_t len = (size_t)mib << 20, off, i;
	unsigned char *p;
	int fd;

	(void)prctl(PR_SET_NAME, "fsbench-hog");
	{
		FILE *f = fopen("/proc/self/oom_score_adj", "we");

		if (f != NULL) {
			(void)fputs("1000\n", f);
			fclose(f);
		}
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED) {
		atomic_store(&sh->hog_ready, -1);
		_exit(1);
	}
	for (i = 0; i < len; i += 4096)
		p[i] = 1;
	atomic_store(&sh->hog_ready, 1);
	while (!atomic_load(&sh->stop)) {
		for (off = 0; off < len && !atomic_load(&sh->stop);
		     off += BENCH_HOG_CHUNK) {
			(void)madvise(p + off, BENCH_HOG_CHUNK, MADV_DONTNEED);
			for (i = 0; i < BENCH_HOG_CHUNK; i += 4096)
				p[off + i] = (unsigned char)i;
			/* Each version has its own inode: open the current
			 * one every time. */
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			if (posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
				atomic_fetch_add(&sh->hog_evictions, 1);
			(void)close(fd);
		}
		atomic_fetch_add(&sh->hog_loops, 1);
	}
	_exit(0);
}

/* ---- the run ---- */

static pid_t fork_child(int go_fd, int cpu)
{
	pid_t pid = fork();
	char c;

	if (pid != 0)
		return pid;
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	if (pin_cpu(cpu) < 0)
		_exit(1);
	/* Wait for the parent's go (or its death: EOF). */
	if (read(go_fd, &c, 1) != 1)
		_exit(1);
	return 0;
}

static int is_tmpfs(const char *dir)
{
	struct statfs sfs;

	if (statfs(dir, &sfs) < 0)
		return -errno;
	return (unsigned long)sfs.f_type == TMPFS_MAGIC_NR ? 0 : -EXDEV;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_u32(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i];
}

static double pct_u64(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return (double)v[i];
}

static const char *target_name(enum bench_target t)
{
	switch (t) {
	case TGT_FS:
		return "fs";
	case TGT_TMPFS:
		return "tmpfs";
	case TGT_NAIVE:
		return "naive";
	case TGT_UNCACHED:
		return "uncached";
	}
	return "?";
}

static void print_reader_totals(const struct bench_opts *o)
{
	struct reader_stat t;
	int i;

	memset(&t, 0, sizeof(t));
	for (i = 0; i < o->readers; i++) {
		t.ops += sh->rs[i].ops;
		t.valid += sh->rs[i].valid;
		t.torn += sh->rs[i].torn;
		t.short_reads += sh->rs[i].short_reads;
		t.errors += sh->rs[i].errors;
		t.open_enoent += sh->rs[i].open_enoent;
		t.open_estale += sh->rs[i].open_estale;
		t.open_other += sh->rs[i].open_other;
		t.held_errors += sh->rs[i].held_errors;
		if (t.held_errno == 0)
			t.held_errno = sh->rs[i].held_errno;
		t.stale += sh->rs[i].stale;
		t.regress += sh->rs[i].regress;
		t.pin_checks += sh->rs[i].pin_checks;
		t.pin_viol += sh->rs[i].pin_viol;
		if (t.first_errno == 0)
			t.first_errno = sh->rs[i].first_errno;
	}
	printf("\"ops\": %" PRIu64 ", \"valid\": %" PRIu64
	       ", \"torn\": %" PRIu64 ", \"short\": %" PRIu64
	       ", \"errors\": %" PRIu64
	       ", \"first_errno\": %d, \"stale\": %" PRIu64
	       ", \"regress\": %" PRIu64 ", \"pin_checks\": %" PRIu64
	       ", \"pin_violations\": %" PRIu64 ", \"broker_opens\": %" PRIu64
	       ", \"open_enoent\": %" PRIu64 ", \"open_estale\": %" PRIu64
	       ", \"open_other\": %" PRIu64 ", \"held_errors\": %" PRIu64
	       ", \"held_errno\": %d",
	       t.ops, t.valid, t.torn, t.short_reads, t.errors, t.first_errno,
	       t.stale, t.regress, t.pin_checks, t.pin_viol,
	       atomic_load(&sh->broker_opens), t.open_enoent, t.open_estale,
	       t.open_other, t.held_errors, t.held_errno);
}

static int report_read(const struct bench_opts *o)
{
	size_t n = 0, i;
	double ops_s = 0;
	int k;

	for (k = 0; k < o->readers; k++) {
		struct reader_stat *rs = &sh->rs[k];

		if (rs->t_end > rs->t_start)
			ops_s += (double)rs->ops * 1e9 /
				 (double)(rs->t_end - rs->t_start);
	}
	printf("{\"cmd\": \"read\", \"target\": \"%s\", \"mode\": \"%s\", "
	       "\"op\": \"%s\", \"readers\": %d, \"ops_per_s\": %.1f, ",
	       target_name(o->target), o->mode,
	       o->op == OP_PREAD ? "pread" : "orc", o->readers, ops_s);
	print_reader_totals(o);
	if (o->seconds <= 0) {
		n = (size_t)o->readers * o->count;
		if (o->samples != NULL) {
			FILE *f = fopen(o->samples, "we");

			if (f == NULL ||
			    fwrite(samples, sizeof(*samples), n, f) != n) {
				log_warn("fsbench: write %s", o->samples);
				if (f != NULL)
					fclose(f);
				return -EIO;
			}
			if (fclose(f) != 0)
				return -EIO;
		}
		qsort(samples, n, sizeof(*samples), cmp_u32);
		printf(
		    ", \"samples\": %zu, \"min_ns\": %.0f, \"p50_ns\": %.0f, "
		    "\"p90_ns\": %.0f, \"p99_ns\": %.0f, \"p999_ns\": %.0f",
		    n, pct_u32(samples, n, 0), pct_u32(samples, n, 50),
		    pct_u32(samples, n, 90), pct_u32(samples, n, 99),
		    pct_u32(samples, n, 99.9));
		{
			double sum = 0;

			for (i = 0; i < n; i++)
				sum += samples[i];
			printf(", \"mean_ns\": %.1f", n ? sum / (double)n : 0);
		}
	}
	printf("}\n");
	return 0;
}

static int report_rotate(const struct bench_opts *o, uint64_t last_seq)
{
	uint64_t *lat, *pub, *cold, best = 0, s, n = 0, np, nc, missed = 0;
	FILE *f = NULL;

	lat = calloc(last_seq + 1, sizeof(*lat));
	pub = calloc(last_seq + 1, sizeof(*pub));
	cold = calloc(last_seq + 1, sizeof(*cold));
	if (lat == NULL || pub == NULL || cold == NULL) {
		free(lat);
		free(pub);
		free(cold);
		return -ENOMEM;
	}
	/* Version s counts as seen by the first read of s or of a newer one
	 * (a reader may skip s when the next rotation comes first). */
	for (s = last_seq; s >= 2; s--) {
		uint64_t fs_ = atomic_load(&sh->first_seen[s]);

		if (fs_ != 0 && (best == 0 || fs_ < best))
			best = fs_;
		if (best == 0 || best < sh->pub_start[s]) {
			missed++;
			continue;
		}
		lat[n++] = best - sh->pub_start[s];
	}
	if (o->samples != NULL) {
		f = fopen(o->samples, "we");
		if (f == NULL || fwrite(lat, sizeof(*lat), n, f) != n) {
			log_warn("fsbench: write %s", o->samples);
			if (f != NULL)
				fclose(f);
			free(lat);
			free(pub);
			free(cold);
			return -EIO;
		}
		if (fclose(f) != 0) {
			free(lat);
			free(pub);
			free(cold);
			return -EIO;
		}
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	/* How long the publish call itself took (the rest of the latency is
	 * the time until a reader's open reaches the new version). */
	for (s = 2, np = 0; s <= last_seq; s++)
		pub[np++] = atomic_load(&sh->pub_done[s]) - sh->pub_start[s];
	qsort(pub, np, sizeof(*pub), cmp_u64);
	/* How long the read that first saw each version took (on the fs: the
	 * cold path, LOOKUP of the new inode, OPEN, READ into the page
	 * cache). */
	for (s = 2, nc = 0; s <= last_seq; s++)
		if (atomic_load(&sh->first_dur[s]) != 0)
			cold[nc++] = atomic_load(&sh->first_dur[s]);
	qsort(cold, nc, sizeof(*cold), cmp_u64);
	printf("{\"cmd\": \"rotate\", \"target\": \"%s\", \"mode\": \"%s\", "
	       "\"pub_p50_ns\": %.0f, \"pub_p99_ns\": %.0f, "
	       "\"flush_timeouts\": %" PRIu64 ", "
	       "\"first_read_p50_ns\": %.0f, \"first_read_p99_ns\": %.0f, "
	       "\"readers\": %d, \"rotations\": %" PRIu64
	       ", \"latency_samples\": %" PRIu64 ", \"unseen\": %" PRIu64
	       ", \"lat_p50_ns\": %.0f, \"lat_p99_ns\": %.0f, "
	       "\"lat_max_ns\": %.0f, \"pressure_mib\": %" PRIu64
	       ", \"hog_loops\": %" PRIu64 ", \"hog_evictions\": %" PRIu64 ", ",
	       target_name(o->target), o->mode, pct_u64(pub, np, 50),
	       pct_u64(pub, np, 99), atomic_load(&sh->flush_timeouts),
	       pct_u64(cold, nc, 50), pct_u64(cold, nc, 99), o->readers,
	       last_seq - 1, n, missed, pct_u64(lat, n, 50),
	       pct_u64(lat, n, 99), pct_u64(lat, n, 100), o->pressure_mib,
	       atomic_load(&sh->hog_loops), atomic_load(&sh->hog_evictions));
	print_reader_totals(o);
	printf("}\n");
	free(lat);
	free(pub);
	free(cold);
	return 0;
}

static void sleep_until(uint64_t t_ns)
{
	struct timespec ts = {(time_t)(t_ns / 1000000000ULL),
			      (long)(t_ns % 1000000000ULL)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static int publish(const struct bench_opts *o, struct target_fs *tf,
		   const char *dir, uint64_t seq, uint64_t *t_start)
{
	switch (o->target) {
	case TGT_FS:
		return fs_target_publish(tf, seq, o->size, o->flush_ms,
					 t_start);
	case TGT_TMPFS:
		return tmpfs_publish(dir, seq, o->size, t_start);
	case TGT_NAIVE:
		return naive_publish(dir, seq, o->size, t_start);
	case TGT_UNCACHED:
		break;
	}
	return -EINVAL;
}

static void record_publish(uint64_t seq, uint64_t t_start)
{
	if (seq > BENCH_MAX_ROT)
		return;
	sh->pub_start[seq] = t_start;
	atomic_store(&sh->pub_done[seq], now_ns());
	atomic_store(&sh->pub_seq, seq);
}

static int run(const struct bench_opts *o)
{
	pid_t pids[BENCH_MAX_READERS + 1];
	int npids = 0, go[2] = {-1, -1}, i, r, status;
	char mnt[PATH_MAX], path[PATH_MAX];
	const char *data_dir;
	struct target_fs tf = {NULL, NULL};
	struct target_unc *tu = NULL;
	uint64_t seq = 1, t0, start, next;
	bool failed = false;

	if (snprintf(mnt, sizeof(mnt), "%s/mnt", o->dir) >= (int)sizeof(mnt))
		return -ENAMETOOLONG;
	if (o->target == TGT_FS)
		r = snprintf(path, sizeof(path), "%s/%s/%s", mnt, BENCH_SECRET,
			     BENCH_FILE);
	else
		r = snprintf(path, sizeof(path), "%s/%s", mnt, BENCH_FILE);
	if (r < 0 || r >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(mnt, 0755) < 0 && errno != EEXIST)
		return -errno;
	data_dir = mnt;
	if (o->target == TGT_TMPFS || o->target == TGT_NAIVE) {
		r = is_tmpfs(o->dir);
		if (r < 0) {
			log_warnx("fsbench: --dir %s is not on tmpfs", o->dir);
			return r;
		}
	}

	if (pipe2(go, O_CLOEXEC) < 0)
		return -errno;
	for (i = 0; i < o->readers; i++) {
		pid_t pid = fork_child(go[0], o->reader_cpu[i]);

		if (pid < 0) {
			r = -errno;
			goto out;
		}
		if (pid == 0) {
			(void)close(go[1]);
			if (o->rotate)
				reader_rotate(o, i, path);
			else
				reader_read(o, i, path);
			_exit(0);
		}
		pids[npids++] = pid;
	}
	if (o->pressure_mib > 0) {
		pid_t pid = fork_child(go[0], -1);

		if (pid < 0) {
			r = -errno;
			goto out;
		}
		if (pid == 0) {
			(void)close(go[1]);
			hog_run(o->pressure_mib, path);
		}
		pids[npids++] = pid;
	}

	r = pin_cpu(o->server_cpu);
	if (r < 0)
		goto out;
	switch (o->target) {
	case TGT_FS:
		r = fs_target_start(&tf, mnt, o->mode, !o->no_listener,
				    o->size);
		break;
	case TGT_UNCACHED:
		tu = calloc(1, sizeof(*tu));
		r = tu == NULL ? -ENOMEM : unc_start(tu, mnt, o->size);
		break;
	case TGT_TMPFS:
	case TGT_NAIVE:
		r = publish(o, &tf, data_dir, 1, &t0);
		break;
	}
	if (r < 0) {
		log_warnx("fsbench: start %s: %s", target_name(o->target),
			  strerror(-r));
		goto out;
	}
	record_publish(1, now_ns());

	/* Go: one byte per child. */
	for (i = 0; i < npids; i++)
		if (write(go[1], "g", 1) != 1) {
			r = -errno;
			goto out;
		}
	if (o->pressure_mib > 0) {
		while (atomic_load(&sh->hog_ready) == 0)
			usleep(1000);
		if (atomic_load(&sh->hog_ready) < 0) {
			log_warnx("fsbench: the hog could not map %" PRIu64
				  " MiB",
				  o->pressure_mib);
			r = -ENOMEM;
			goto out;
		}
	}
	start = now_ns();
	if (o->rotate) {
		next = start + o->interval_us * 1000;
		while (now_ns() - start < (uint64_t)(o->seconds * 1e9) &&
		       seq < BENCH_MAX_ROT) {
			sleep_until(next);
			next += o->interval_us * 1000;
			r = publish(o, &tf, data_dir, seq + 1, &t0);
			if (r < 0) {
				log_warnx("fsbench: publish: %s", strerror(-r));
				goto out;
			}
			seq++;
			record_publish(seq, t0);
		}
		/* Let the readers see the last one. */
		usleep(20000);
		atomic_store(&sh->stop, 1);
	} else if (o->seconds > 0) {
		while (atomic_load(&sh->warm) < o->readers)
			usleep(200);
		start = now_ns();
		atomic_store(&sh->timed, 1);
		sleep_until(start + (uint64_t)(o->seconds * 1e9));
		atomic_store(&sh->stop, 1);
	}
	r = 0;
out:
	atomic_store(&sh->stop, 1);
	if (go[1] >= 0)
		(void)close(go[1]);
	if (go[0] >= 0)
		(void)close(go[0]);
	for (i = 0; i < npids; i++) {
		if (waitpid(pids[i], &status, 0) == pids[i] &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			failed = true;
	}
	if (o->target == TGT_FS)
		fs_target_stop(&tf);
	if (tu != NULL) {
		unc_stop(tu, mnt);
		free(tu);
	}
	if (r == 0 && failed) {
		log_warnx("fsbench: a reader or the hog failed");
		r = -ECHILD;
	}
	if (r == 0)
		r = o->rotate ? report_rotate(o, seq) : report_read(o);
	return r;
}

/* ---- command line ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: fsbench read|rotate --dir DIR --target "
		"fs|tmpfs|naive|uncached\n"
		"  [--mode default|audited|fast|none] [--op orc|pread] "
		"[--readers N]\n"
		"  [--server-cpu C] [--reader-cpus C[,C...]] [--count N] "
		"[--warmup N]\n"
		"  [--ms MILLISECONDS] [--size BYTES] [--interval-us U] "
		"[--pressure-mib M]\n"
		"  [--listener comm|none] [--flush-ms MS] [--samples FILE]\n");
	exit(2);
}

static uint64_t num_arg(const char *name, const char *s, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max)
		fatalx(2, "fsbench: bad %s: %s", name, s);
	return v;
}

static int cpu_arg(const char *s)
{
	if (strcmp(s, "-1") == 0 || strcmp(s, "none") == 0)
		return -1;
	return (int)num_arg("cpu", s, CPU_SETSIZE - 1);
}

static void parse(int argc, char **argv, struct bench_opts *o)
{
	int i, k;

	memset(o, 0, sizeof(*o));
	o->mode = "default";
	o->readers = 1;
	o->server_cpu = -1;
	for (k = 0; k < BENCH_MAX_READERS; k++)
		o->reader_cpu[k] = -1;
	o->count = 100000;
	o->warmup = 2000;
	o->size = 64;
	o->interval_us = 1000;
	o->target = TGT_FS;
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "rotate") == 0)
		o->rotate = true;
	else if (strcmp(argv[1], "read") != 0)
		usage();
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--dir") == 0) {
			o->dir = v;
		} else if (strcmp(a, "--target") == 0) {
			if (strcmp(v, "fs") == 0)
				o->target = TGT_FS;
			else if (strcmp(v, "tmpfs") == 0)
				o->target = TGT_TMPFS;
			else if (strcmp(v, "naive") == 0)
				o->target = TGT_NAIVE;
			else if (strcmp(v, "uncached") == 0)
				o->target = TGT_UNCACHED;
			else
				usage();
		} else if (strcmp(a, "--mode") == 0) {
			o->mode = v;
		} else if (strcmp(a, "--op") == 0) {
			if (strcmp(v, "orc") == 0)
				o->op = OP_ORC;
			else if (strcmp(v, "pread") == 0)
				o->op = OP_PREAD;
			else
				usage();
		} else if (strcmp(a, "--readers") == 0) {
			o->readers = (int)num_arg(a, v, BENCH_MAX_READERS);
			if (o->readers < 1)
				usage();
		} else if (strcmp(a, "--server-cpu") == 0) {
			o->server_cpu = cpu_arg(v);
		} else if (strcmp(a, "--reader-cpus") == 0) {
			char buf[64], *tok, *save = NULL;

			(void)snprintf(buf, sizeof(buf), "%s", v);
			k = 0;
			for (tok = strtok_r(buf, ",", &save);
			     tok != NULL && k < BENCH_MAX_READERS;
			     tok = strtok_r(NULL, ",", &save))
				o->reader_cpu[k++] = cpu_arg(tok);
			/* One CPU given: every reader on it. */
			for (; k == 1 && k < BENCH_MAX_READERS; k++)
				o->reader_cpu[k] = o->reader_cpu[0];
		} else if (strcmp(a, "--count") == 0) {
			o->count = num_arg(a, v, BENCH_MAX_SAMPLES);
		} else if (strcmp(a, "--warmup") == 0) {
			o->warmup = num_arg(a, v, BENCH_MAX_SAMPLES);
		} else if (strcmp(a, "--ms") == 0) {
			o->seconds = (double)num_arg(a, v, 3600000) / 1000.0;
		} else if (strcmp(a, "--size") == 0) {
			o->size = num_arg(a, v, BENCH_BUF);
		} else if (strcmp(a, "--interval-us") == 0) {
			o->interval_us = num_arg(a, v, 10000000);
		} else if (strcmp(a, "--pressure-mib") == 0) {
			o->pressure_mib = num_arg(a, v, 1 << 20);
		} else if (strcmp(a, "--flush-ms") == 0) {
			o->flush_ms = (unsigned)num_arg(a, v, 60000);
		} else if (strcmp(a, "--listener") == 0) {
			if (strcmp(v, "none") == 0)
				o->no_listener = true;
			else if (strcmp(v, "comm") != 0)
				usage();
		} else if (strcmp(a, "--samples") == 0) {
			o->samples = v;
		} else {
			usage();
		}
	}
	if (o->dir == NULL || o->size < BENCH_MIN_SIZE || o->interval_us == 0)
		usage();
	if (o->rotate && (o->target == TGT_UNCACHED || o->seconds <= 0))
		usage();
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	size_t ns = 0;
	uint64_t avail;
	int r;

	log_init("fsbench", LOG_LEVEL_WARN);
	parse(argc, argv, &o);
	/* fs_stop() interrupts its thread with SIGUSR1 (fs.h). */
	if (o.pressure_mib > 0) {
		avail = mem_available_mib();
		if (avail == 0 || o.pressure_mib > avail / 4)
			fatalx(2,
			       "fsbench: --pressure-mib %" PRIu64
			       " exceeds a quarter of MemAvailable (%" PRIu64
			       " MiB)",
			       o.pressure_mib, avail);
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		fatalx(1, "fsbench: mmap: %s", strerror(errno));
	if (!o.rotate && o.seconds <= 0) {
		ns = (size_t)o.readers * o.count * sizeof(*samples);
		samples = mmap(NULL, ns ? ns : 1, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (samples == MAP_FAILED)
			fatalx(1, "fsbench: mmap: %s", strerror(errno));
	}
	r = run(&o);
	if (samples != NULL)
		(void)munmap(samples, ns ? ns : 1);
	(void)munmap(sh, sizeof(*sh));
	if (r < 0) {
		fprintf(stderr, "fsbench: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
