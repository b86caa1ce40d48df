/* The FUSE filesystem against a real kernel mount: every check is an
 * ordinary syscall on the mounted tree, from the test process or from a
 * forked child running under another uid.  Needs root and /dev/fuse; exits
 * 77 (skipped) without /dev/fuse.
 *
 * Each test mounts under one directory made by the parent before the tests
 * run; the parent's teardown detaches and removes whatever a failed test
 * left there (Check skips a checked teardown when its test fails). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "secret.h"
#include "store.h"

#ifndef CB_SOURCE_DIR
#error CB_SOURCE_DIR must name the source tree
#endif
#ifndef CB_PYTHON
#define CB_PYTHON "python3"
#endif

#define HOUR (3600 * USEC_PER_SEC)
#define T0 (1000 * USEC_PER_SEC)
#define UID_OTHER 1000
#define UID_NOBODY 65534
#define SLOT_DB 0
#define SLOT_API 1

#define BASE_TEMPLATE "/tmp/cb-test-fs-XXXXXX"
static char base_dir[sizeof(BASE_TEMPLATE)];

/* The fake clock: only the test moves it. */
static _Atomic uint64_t fake_now = T0;

static uint64_t fake_mono(void *arg)
{
	(void)arg;
	return atomic_load(&fake_now);
}

static int64_t fake_wall(void *arg)
{
	(void)arg;
	return 1700000000LL * 1000000;
}

static const struct clock fake_clock = {fake_mono, fake_wall, NULL};

/* The fixture of the test running in this (forked) process. */
static struct store *st;
static struct fs *fs;
static char mnt[PATH_MAX];

/* ---- helpers ---- */

static void path_of(char *buf, size_t size, const char *rel)
{
	int n = snprintf(buf, size, "%s/%s", mnt, rel);

	ck_assert(n > 0 && (size_t)n < size);
}

/* Publishes version seq of slot with files name=value (NULL-terminated
 * pairs). */
static void publish(size_t slot, uint64_t seq, uint64_t expires, ...)
{
	struct version *v;
	struct secret *s;
	const char *name, *value;
	va_list ap;

	ck_assert_int_eq(version_new(seq, expires, &v), 0);
	va_start(ap, expires);
	while ((name = va_arg(ap, const char *)) != NULL) {
		value = va_arg(ap, const char *);
		ck_assert_int_eq(secret_from(value, strlen(value), &s), 0);
		ck_assert_int_eq(version_add_file(v, name, s), 0);
	}
	va_end(ap);
	ck_assert_int_eq(store_publish(st, slot, v), 0);
	version_unref(v);
}

/* Reads rel into buf (NUL-terminated); returns the length or -errno. */
static int read_rel(const char *rel, char *buf, size_t size)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd, r;

	path_of(path, sizeof(path), rel);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	r = n < 0 ? -errno : (int)n;
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return r;
}

static void assert_content(const char *rel, const char *want)
{
	char buf[256];

	ck_assert_int_eq(read_rel(rel, buf, sizeof(buf)), (int)strlen(want));
	ck_assert_str_eq(buf, want);
}

static int open_rel(const char *rel, int flags)
{
	char path[PATH_MAX];
	int fd;

	path_of(path, sizeof(path), rel);
	fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	return fd >= 0 ? 0 : -errno;
}

/* The sorted names of directory rel, "." and ".." left out, joined by
 * spaces. */
static void list_rel(const char *rel, char *out, size_t size)
{
	char path[PATH_MAX];
	struct dirent **ents;
	int n, i;

	path_of(path, sizeof(path), rel);
	n = scandir(path, &ents, NULL, alphasort);
	ck_assert_msg(n >= 0, "scandir %s: %s", path, strerror(errno));
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") != 0 &&
		    strcmp(ents[i]->d_name, "..") != 0) {
			if (out[0] != '\0')
				strncat(out, " ", size - strlen(out) - 1);
			strncat(out, ents[i]->d_name, size - strlen(out) - 1);
		}
		free(ents[i]);
	}
	free(ents);
}

static int stat_rel(const char *rel, struct stat *sb)
{
	char path[PATH_MAX];

	path_of(path, sizeof(path), rel);
	return lstat(path, sb) == 0 ? 0 : -errno;
}

/* Runs fn(arg) in a child as uid/gid; returns what the child returned. */
static int as_uid(uid_t uid, int (*fn)(const char *), const char *arg)
{
	pid_t pid;
	int status;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(100);
		_exit(fn(arg));
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* In a child: 0 when rel opens and reads "tok-1", else the errno. */
static int child_read_token(const char *rel)
{
	char buf[64];
	int r = read_rel(rel, buf, sizeof(buf));

	if (r < 0)
		return -r;
	return strcmp(buf, "tok-1") == 0 ? 0 : 99;
}

static int child_open(const char *rel)
{
	return -open_rel(rel, O_RDONLY);
}

/* Captures what the process writes to stderr (the log) between cap_start
 * and cap_end. */
static int cap_saved = -1, cap_fd = -1;

static void cap_start(void)
{
	cap_fd = memfd_create("log", MFD_CLOEXEC);
	ck_assert_int_ge(cap_fd, 0);
	fflush(stderr);
	cap_saved = dup(2);
	ck_assert_int_eq(dup2(cap_fd, 2), 2);
}

static void cap_end(char *buf, size_t size)
{
	ssize_t n;

	fflush(stderr);
	dup2(cap_saved, 2);
	close(cap_saved);
	n = pread(cap_fd, buf, size - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(cap_fd);
}

/* Waits (at most 3 s) until fstat(fd) shows size; the kernel drops its
 * cached attributes asynchronously, after fs_invalidate(). */
static bool wait_size(int fd, off_t size)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	struct stat sb;
	int i;

	for (i = 0; i < 150; i++) {
		if (fstat(fd, &sb) == 0 && sb.st_size == size)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

static bool wait_gone(const char *rel)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	struct stat sb;
	int i;

	for (i = 0; i < 150; i++) {
		if (stat_rel(rel, &sb) == -ENOENT)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* ---- fixtures ---- */

static void make_store(void)
{
	struct store_slot_info slots[2];

	memset(slots, 0, sizeof(slots));
	(void)snprintf(slots[0].name, sizeof(slots[0].name), "db");
	slots[0].uid = 0;
	slots[0].gid = 0;
	slots[0].mode = 0440;
	slots[0].reader_count = 2;
	slots[0].readers[0] = 0;
	slots[0].readers[1] = 4242;
	/* Root is not a reader of "api". */
	(void)snprintf(slots[1].name, sizeof(slots[1].name), "api");
	slots[1].uid = UID_OTHER;
	slots[1].gid = UID_OTHER;
	slots[1].mode = 0400;
	slots[1].reader_count = 1;
	slots[1].readers[0] = UID_OTHER;
	atomic_store(&fake_now, T0);
	ck_assert_int_eq(store_new(slots, 2, &fake_clock, &st), 0);
	ck_assert_int_eq(fs_new(st, &fs), 0);
	fs_set_clock(fs, &fake_clock);
	store_set_listener(st, fs_invalidate, fs);
	(void)snprintf(mnt, sizeof(mnt), "%s/mnt-%d", base_dir, (int)getpid());
	ck_assert_int_eq(mkdir(mnt, 0755), 0);
}

static void setup_mounted(void)
{
	struct errmsg err = {""};

	make_store();
	publish(SLOT_DB, 1, T0 + HOUR, "password", "hunter2", "username", "app",
		NULL);
	publish(SLOT_API, 1, T0 + HOUR, "token", "tok-1", NULL);
	ck_assert_msg(fs_mount(fs, mnt, &err) == 0, "mount: %s", err.text);
	ck_assert_int_eq(fs_start(fs), 0);
}

static void setup_unmounted(void)
{
	make_store();
	publish(SLOT_DB, 1, T0 + HOUR, "password", "hunter2", NULL);
	publish(SLOT_API, 1, T0 + HOUR, "token", "tok-1", NULL);
}

static void teardown(void)
{
	/* The store notifies as it frees: detach the fs first. */
	store_set_listener(st, NULL, NULL);
	fs_free(fs);
	fs = NULL;
	store_free(st);
	st = NULL;
	(void)umount2(mnt, MNT_DETACH);
	ck_assert_int_eq(rmdir(mnt), 0);
}

/* In the parent, whatever the outcome: detach and remove what is left. */
static void base_setup(void)
{
	memcpy(base_dir, BASE_TEMPLATE, sizeof(BASE_TEMPLATE));
	ck_assert_ptr_nonnull(mkdtemp(base_dir));
	ck_assert_int_eq(chmod(base_dir, 0755), 0);
}

static void base_teardown(void)
{
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d = opendir(base_dir);

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		(void)snprintf(path, sizeof(path), "%s/%s", base_dir,
			       de->d_name);
		(void)umount2(path, MNT_DETACH);
		(void)rmdir(path);
		(void)unlink(path);
	}
	if (d != NULL)
		closedir(d);
	(void)rmdir(base_dir);
}

/* ---- the tree ---- */

START_TEST(test_fs_lists_secrets_and_files)
{
	char names[512];

	list_rel("", names, sizeof(names));
	ck_assert_str_eq(names, "api db");
	list_rel("db", names, sizeof(names));
	ck_assert_str_eq(names, "..data ..v1 password username");
	list_rel("db/..v1", names, sizeof(names));
	ck_assert_str_eq(names, "password username");
	list_rel("api", names, sizeof(names));
	ck_assert_str_eq(names, "..data ..v1 token");
}
END_TEST

START_TEST(test_fs_attributes)
{
	struct stat sb;

	ck_assert_int_eq(stat_rel("", &sb), 0);
	ck_assert_int_eq(sb.st_mode, S_IFDIR | 0555);
	ck_assert_int_eq(sb.st_uid, 0);
	ck_assert_int_eq(stat_rel("api", &sb), 0);
	ck_assert_int_eq(sb.st_mode, S_IFDIR | 0555);
	ck_assert_int_eq(sb.st_uid, UID_OTHER);
	ck_assert_int_eq(stat_rel("api/token", &sb), 0);
	ck_assert_int_eq(sb.st_mode, S_IFREG | 0400);
	ck_assert_int_eq(sb.st_uid, UID_OTHER);
	ck_assert_int_eq(sb.st_gid, UID_OTHER);
	ck_assert_int_eq(sb.st_size, 5);
	ck_assert_int_eq(stat_rel("db/password", &sb), 0);
	ck_assert_int_eq(sb.st_mode, S_IFREG | 0440);
	ck_assert_int_eq(sb.st_size, 7);
	ck_assert_int_eq(stat_rel("db/..v1/username", &sb), 0);
	ck_assert_int_eq(sb.st_size, 3);
	ck_assert_int_eq(stat_rel("db/..v1", &sb), 0);
	ck_assert_int_eq(sb.st_mode, S_IFDIR | 0555);
	ck_assert_int_eq(stat_rel("db/..data", &sb), 0);
	ck_assert(S_ISLNK(sb.st_mode));
	ck_assert_int_eq(sb.st_size, 4);
}
END_TEST

START_TEST(test_fs_reads_content)
{
	char path[PATH_MAX], target[64];
	ssize_t n;

	assert_content("db/password", "hunter2");
	assert_content("db/username", "app");
	assert_content("db/..v1/password", "hunter2");
	assert_content("db/..data/username", "app");
	path_of(path, sizeof(path), "db/..data");
	n = readlink(path, target, sizeof(target) - 1);
	ck_assert_int_eq(n, 4);
	target[n] = '\0';
	ck_assert_str_eq(target, "..v1");
}
END_TEST

START_TEST(test_fs_reads_at_offsets)
{
	char path[PATH_MAX], buf[16];
	int fd;

	path_of(path, sizeof(path), "db/password");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, 3, 2), 3);
	ck_assert(memcmp(buf, "nte", 3) == 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 7), 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 100), 0);
	close(fd);
}
END_TEST

START_TEST(test_fs_unknown_is_enoent)
{
	struct stat sb;

	ck_assert_int_eq(stat_rel("nosuch", &sb), -ENOENT);
	ck_assert_int_eq(stat_rel("db/nosuch", &sb), -ENOENT);
	ck_assert_int_eq(stat_rel("db/..v9", &sb), -ENOENT);
	ck_assert_int_eq(stat_rel("db/..v0", &sb), -ENOENT);
	ck_assert_int_eq(stat_rel("db/..v01", &sb), -ENOENT);
	ck_assert_int_eq(stat_rel("db/..v1/nosuch", &sb), -ENOENT);
	ck_assert_int_eq(stat_rel("db/token", &sb), -ENOENT);
	ck_assert_int_eq(open_rel("db/password/x", O_RDONLY), -ENOTDIR);
}
END_TEST

START_TEST(test_fs_write_like_is_erofs)
{
	char path[PATH_MAX], other[PATH_MAX];

	ck_assert_int_eq(open_rel("db/password", O_WRONLY), -EROFS);
	ck_assert_int_eq(open_rel("db/password", O_RDWR), -EROFS);
	ck_assert_int_eq(open_rel("db/new", O_WRONLY | O_CREAT), -EROFS);
	path_of(path, sizeof(path), "db/password");
	path_of(other, sizeof(other), "db/renamed");
	ck_assert_int_eq(unlink(path), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(rename(path, other), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(chmod(path, 0666), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(truncate(path, 0), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(setxattr(path, "user.x", "1", 1, 0), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(mkdir(other, 0700), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(getxattr(path, "user.x", NULL, 0), -1);
	ck_assert_int_eq(errno, ENODATA);
	ck_assert_int_eq(listxattr(path, NULL, 0), 0);
	assert_content("db/password", "hunter2");
}
END_TEST

START_TEST(test_fs_statfs)
{
	struct statvfs sv;

	ck_assert_int_eq(statvfs(mnt, &sv), 0);
	ck_assert(sv.f_flag & ST_RDONLY);
	ck_assert(sv.f_flag & ST_NOSUID);
}
END_TEST

/* ---- access ---- */

START_TEST(test_fs_non_reader_gets_eacces)
{
	char log[4096];

	log_init("test_fs", LOG_LEVEL_DEBUG);
	cap_start();
	ck_assert_int_eq(open_rel("api/token", O_RDONLY), -EACCES);
	assert_content("db/password", "hunter2");
	cap_end(log, sizeof(log));
	ck_assert_msg(strstr(log, "event=open_denied secret=api file=token "
				  "uid=0 pid=") != NULL,
		      "log: %s", log);
	ck_assert_msg(strstr(log, "event=open secret=db file=password "
				  "version=1 uid=0 pid=") != NULL,
		      "log: %s", log);
	ck_assert_msg(strstr(log, "hunter2") == NULL, "secret in the log");
	ck_assert_int_eq(as_uid(UID_NOBODY, child_open, "db/password"), EACCES);
	ck_assert_int_eq(as_uid(UID_NOBODY, child_open, "api/token"), EACCES);
	ck_assert_int_eq(as_uid(UID_OTHER, child_read_token, "api/token"), 0);
	ck_assert_int_eq(as_uid(UID_OTHER, child_read_token, "api/..v1/token"),
			 0);
}
END_TEST

/* ---- rotation, revocation, expiry ---- */

START_TEST(test_fs_open_pins_its_version)
{
	char path[PATH_MAX], buf[64], names[256], target[16];
	int old_fd, new_fd;
	ssize_t n;

	path_of(path, sizeof(path), "db/password");
	old_fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(old_fd, 0);
	publish(SLOT_DB, 2, T0 + 2 * HOUR, "password", "correct-horse-battery",
		"username", "app2", NULL);
	/* Until the invalidation lands the name may still open version 1. */
	ck_assert_int_eq(fs_flush_invalidations(fs, 3000), 0);
	n = pread(old_fd, buf, sizeof(buf), 0);
	ck_assert_int_eq(n, 7);
	ck_assert(memcmp(buf, "hunter2", 7) == 0);
	new_fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(new_fd, 0);
	n = pread(new_fd, buf, sizeof(buf), 0);
	ck_assert_int_eq(n, 21);
	ck_assert(memcmp(buf, "correct-horse-battery", 21) == 0);
	ck_assert_msg(wait_size(new_fd, 21), "size not updated");
	/* The old handle still reads its own version. */
	n = pread(old_fd, buf, sizeof(buf), 0);
	ck_assert_int_eq(n, 7);
	close(old_fd);
	close(new_fd);
	path_of(path, sizeof(path), "db/..data");
	n = readlink(path, target, sizeof(target) - 1);
	ck_assert_int_eq(n, 4);
	target[n] = '\0';
	ck_assert_str_eq(target, "..v2");
	assert_content("db/..v1/password", "hunter2");
	assert_content("db/..v2/password", "correct-horse-battery");
	assert_content("db/..data/username", "app2");
	list_rel("db", names, sizeof(names));
	ck_assert_str_eq(names, "..data ..v1 ..v2 password username");
}
END_TEST

START_TEST(test_fs_rotation_drops_vanished_names)
{
	struct stat sb;
	char names[256];

	ck_assert_int_eq(stat_rel("db/username", &sb), 0);
	publish(SLOT_DB, 2, T0 + HOUR, "password", "pw2", NULL);
	/* The cached name may open version 1 (still valid) until the
	 * invalidation lands; never a mix. */
	ck_assert_int_eq(fs_flush_invalidations(fs, 3000), 0);
	ck_assert_msg(wait_gone("db/username"), "username still cached");
	ck_assert_int_eq(open_rel("db/username", O_RDONLY), -ENOENT);
	list_rel("db", names, sizeof(names));
	ck_assert_str_eq(names, "..data ..v1 ..v2 password");
	assert_content("db/..v1/username", "app");
}
END_TEST

START_TEST(test_fs_revoke_hides_and_fails_reads)
{
	char path[PATH_MAX], buf[64], names[256];
	struct stat sb;
	int fd, vfd;

	path_of(path, sizeof(path), "db/password");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	path_of(path, sizeof(path), "db/..v1/username");
	vfd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(vfd, 0);
	ck_assert_int_eq(pread(vfd, buf, sizeof(buf), 0), 3);
	store_kill_slot(st, SLOT_DB);
	/* What revoke waits for: the kernel has dropped vfd's pages. */
	ck_assert_int_eq(fs_flush_invalidations(fs, 3000), 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, EIO);
	/* Also a file of an immutable version, read once before. */
	ck_assert_int_eq(pread(vfd, buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, EIO);
	ck_assert_int_eq(open_rel("db/password", O_RDONLY), -ENOENT);
	ck_assert_int_eq(open_rel("db/..v1/password", O_RDONLY), -ENOENT);
	/* The directory stays, empty. */
	ck_assert_int_eq(stat_rel("db", &sb), 0);
	list_rel("db", names, sizeof(names));
	ck_assert_str_eq(names, "");
	ck_assert_msg(wait_gone("db/password"), "password still cached");
	close(fd);
	close(vfd);
	ck_assert_int_eq(open_rel("api/token", O_RDONLY), -EACCES);
}
END_TEST

START_TEST(test_fs_expiry_hides_the_file)
{
	char path[PATH_MAX], buf[64], names[256];
	int fd;

	path_of(path, sizeof(path), "db/password");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	atomic_store(&fake_now, T0 + HOUR);
	/* At once, before anything invalidates the kernel's caches. */
	ck_assert_int_eq(open_rel("db/password", O_RDONLY), -ENOENT);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, EIO);
	list_rel("db", names, sizeof(names));
	ck_assert_str_eq(names, "");
	ck_assert_uint_eq(store_expire(st, SLOT_DB), 1);
	ck_assert_msg(wait_gone("db/password"), "password still cached");
	close(fd);
	/* A new version brings it back. */
	publish(SLOT_DB, 2, T0 + 2 * HOUR, "password", "fresh", NULL);
	assert_content("db/password", "fresh");
}
END_TEST

START_TEST(test_fs_stop_is_idempotent)
{
	struct stat sb;

	fs_stop(fs);
	fs_stop(fs);
	fs_invalidate(fs, SLOT_DB);
	ck_assert_int_eq(fs_start(fs), -ENOTCONN);
	/* Unmounted: the directory is an ordinary empty one again. */
	ck_assert_int_eq(stat(mnt, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0755);
}
END_TEST

/* ---- mounting ---- */

START_TEST(test_fs_mount_rejects_bad_paths)
{
	struct errmsg err = {""};
	char path[PATH_MAX];
	int fd;

	path_of(path, sizeof(path), "absent");
	ck_assert_int_eq(fs_mount(fs, path, &err), -ENOENT);
	(void)snprintf(path, sizeof(path), "%s/file", base_dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(fs_mount(fs, path, &err), -ENOTDIR);
	ck_assert(strstr(err.text, "is not a directory") != NULL);
	ck_assert(strncmp(err.text, "mount.path: ", 12) == 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(fs_start(fs), -ENOTCONN);
}
END_TEST

/* Mounts /dev/fuse at mnt as a privileged helper would; returns the fd. */
static int kernel_mount(unsigned long flags)
{
	char opts[128];
	int fd;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	(void)snprintf(opts, sizeof(opts),
		       "fd=%d,rootmode=40000,user_id=0,"
		       "group_id=0,allow_other",
		       fd);
	ck_assert_msg(
	    mount("credbroker", mnt, "fuse.credbroker", flags, opts) == 0,
	    "mount: %s", strerror(errno));
	return fd;
}

START_TEST(test_fs_mount_detaches_stale_mount)
{
	struct errmsg err = {""};
	struct stat sb;

	/* A mount whose daemon is gone: its device closed. */
	close(kernel_mount(MS_NOSUID | MS_NODEV));
	ck_assert_int_eq(stat(mnt, &sb), -1);
	ck_assert_int_eq(errno, ENOTCONN);
	ck_assert_msg(fs_mount(fs, mnt, &err) == 0, "mount: %s", err.text);
	ck_assert_int_eq(fs_start(fs), 0);
	assert_content("db/password", "hunter2");
}
END_TEST

/* Our own handlers, not the kernel's MS_RDONLY check, refuse writes. */
START_TEST(test_fs_mount_dev_fd)
{
	struct errmsg err = {""};
	char path[PATH_MAX], other[PATH_MAX];
	int fd;

	fd = kernel_mount(MS_NOSUID | MS_NODEV | MS_NOEXEC);
	(void)snprintf(path, sizeof(path), "/dev/fd/%d", fd);
	ck_assert_msg(fs_mount(fs, path, &err) == 0, "mount: %s", err.text);
	ck_assert_int_eq(fs_start(fs), 0);
	assert_content("db/password", "hunter2");
	ck_assert_int_eq(open_rel("db/password", O_WRONLY), -EROFS);
	ck_assert_int_eq(open_rel("db/password", O_RDWR), -EROFS);
	ck_assert_int_eq(open_rel("db/new", O_WRONLY | O_CREAT), -EROFS);
	path_of(path, sizeof(path), "db/password");
	path_of(other, sizeof(other), "db/other");
	ck_assert_int_eq(unlink(path), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(rename(path, other), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(chmod(path, 0666), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(truncate(path, 0), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(setxattr(path, "user.x", "1", 1, 0), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(removexattr(path, "user.x"), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(mkdir(other, 0700), -1);
	ck_assert_int_eq(errno, EROFS);
	path_of(other, sizeof(other), "db/..v1");
	ck_assert_int_eq(rmdir(other), -1);
	ck_assert_int_eq(errno, EROFS);
	path_of(other, sizeof(other), "db/other");
	ck_assert_int_eq(symlink("x", other), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(link(path, other), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(access(path, W_OK), -1);
	ck_assert_int_eq(errno, EROFS);
	ck_assert_int_eq(access(path, R_OK), 0);
	path_of(path, sizeof(path), "api/token");
	ck_assert_int_eq(access(path, R_OK), -1);
	ck_assert_int_eq(errno, EACCES);
	assert_content("db/password", "hunter2");
}
END_TEST

/* Starts tests/integration/fuse_fd_helper.py; returns once it listens.
 * *out is its stdout, kept open until it exits (no SIGPIPE for it). */
static pid_t start_helper(const char *sock, int *out)
{
	char script[PATH_MAX], line[64];
	struct pollfd pfd;
	int pipefd[2];
	ssize_t n;
	pid_t pid;

	(void)snprintf(script, sizeof(script),
		       "%s/tests/integration/"
		       "fuse_fd_helper.py",
		       CB_SOURCE_DIR);
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *const argv[] = {CB_PYTHON, script, mnt, (char *)sock,
				      NULL};

		dup2(pipefd[1], 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	pfd.fd = pipefd[0];
	pfd.events = POLLIN;
	ck_assert_msg(poll(&pfd, 1, 10000) == 1, "helper did not start");
	n = read(pipefd[0], line, sizeof(line) - 1);
	*out = pipefd[0];
	ck_assert_int_gt(n, 0);
	line[n] = '\0';
	ck_assert_msg(strncmp(line, "ready", 5) == 0, "helper: %s", line);
	return pid;
}

START_TEST(test_fs_mount_from_socket)
{
	struct errmsg err = {""};
	char sock[PATH_MAX];
	struct statvfs sv;
	int status, out;
	pid_t pid;

	(void)snprintf(sock, sizeof(sock), "%s/helper-%d.sock", base_dir,
		       (int)getpid());
	pid = start_helper(sock, &out);
	ck_assert_msg(fs_mount_from_socket(fs, sock, &err) == 0, "mount: %s",
		      err.text);
	ck_assert_int_eq(fs_start(fs), 0);
	assert_content("db/password", "hunter2");
	ck_assert_int_eq(statvfs(mnt, &sv), 0);
	ck_assert(sv.f_flag & ST_RDONLY);
	fs_stop(fs);
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "helper status %d", status);
	close(out);
	(void)unlink(sock);
}
END_TEST

/* A peer that sends a pipe, not /dev/fuse. */
START_TEST(test_fs_socket_rejects_non_device)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct errmsg err = {""};
	int lfd, cfd, p[2];
	pid_t pid;

	(void)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/bad-%d.sock",
		       base_dir, (int)getpid());
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = "x", .iov_len = 1};
		struct msghdr msg = {.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf)};
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0 || pipe2(p, O_CLOEXEC) < 0)
			_exit(1);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &p[0], sizeof(int));
		_exit(sendmsg(cfd, &msg, 0) == 1 ? 0 : 1);
	}
	ck_assert_int_eq(fs_mount_from_socket(fs, sa.sun_path, &err), -EPROTO);
	ck_assert(strstr(err.text, "not a character device") != NULL);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	close(lfd);
	(void)unlink(sa.sun_path);
	ck_assert_int_eq(fs_mount_from_socket(fs, sa.sun_path, &err), -ENOENT);
}
END_TEST

/* ---- cache modes ---- */

static enum fs_cache_mode mount_mode = FS_CACHE_AUDITED;

static int access_count;

static void count_access(void *arg, const struct fs_access *ev)
{
	(void)arg;
	(void)ev;
	access_count++;
}

static void setup_mode(enum fs_cache_mode mode)
{
	struct errmsg err = {""};

	mount_mode = mode;
	make_store();
	fs_set_cache_mode(fs, mode);
	access_count = 0;
	fs_set_access_listener(fs, count_access, NULL);
	publish(SLOT_DB, 1, T0 + HOUR, "password", "hunter2", "username", "app",
		NULL);
	publish(SLOT_API, 1, T0 + HOUR, "token", "tok-1", NULL);
	ck_assert_msg(fs_mount(fs, mnt, &err) == 0, "mount: %s", err.text);
	ck_assert_int_eq(fs_start(fs), 0);
}

static void setup_none(void)
{
	setup_mode(FS_CACHE_NONE);
}

static void setup_audited(void)
{
	setup_mode(FS_CACHE_AUDITED);
}

static void setup_fast(void)
{
	setup_mode(FS_CACHE_FAST);
}

/* Kills slot's versions without telling the fs (no listener), so that what
 * a handle still reads shows what the kernel kept. */
static void kill_unnoticed(size_t slot)
{
	store_set_listener(st, NULL, NULL);
	store_kill_slot(st, slot);
	store_set_listener(st, fs_invalidate, fs);
}

/* One open per open() in audited mode, and the pages are the kernel's:
 * after an unnoticed kill the open handle still reads them, until the
 * invalidation drops them. */
START_TEST(test_fs_audited_caches_pages_until_invalidated)
{
	char path[PATH_MAX], buf[64];
	int fd;

	assert_content("db/password", "hunter2");
	assert_content("db/password", "hunter2");
	ck_assert_int_eq(access_count, 2);
	path_of(path, sizeof(path), "db/password");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 7);
	kill_unnoticed(SLOT_DB);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 7);
	fs_invalidate(fs, SLOT_DB);
	ck_assert_int_eq(fs_flush_invalidations(fs, 3000), 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, EIO);
	close(fd);
}
END_TEST

/* A rotation moves the top-level name to the new version's inode: the old
 * handle keeps its bytes, a new open gets the new ones, in full. */
START_TEST(test_fs_audited_rotation_changes_inode)
{
	char path[PATH_MAX], buf[64];
	struct stat before, after;
	int fd;

	ck_assert_int_eq(stat_rel("db/password", &before), 0);
	path_of(path, sizeof(path), "db/password");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 7);
	publish(SLOT_DB, 2, T0 + HOUR, "password", "correct-horse-battery",
		NULL);
	ck_assert_int_eq(fs_flush_invalidations(fs, 3000), 0);
	assert_content("db/password", "correct-horse-battery");
	ck_assert_int_eq(stat_rel("db/password", &after), 0);
	ck_assert_uint_ne(before.st_ino, after.st_ino);
	ck_assert_int_eq(after.st_size, 21);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 7);
	ck_assert(memcmp(buf, "hunter2", 7) == 0);
	close(fd);
}
END_TEST

/* A name the kernel still maps to a version pushed out of the listing
 * (its invalidation not yet delivered) opens the current one: ESTALE makes
 * the VFS look the name up again. */
START_TEST(test_fs_audited_stale_name_reopens_current)
{
	struct stat sb;
	char val[16];
	uint64_t seq;

	ck_assert_int_eq(stat_rel("db/password", &sb), 0);
	store_set_listener(st, NULL, NULL);
	for (seq = 2; seq <= 6; seq++) {
		(void)snprintf(val, sizeof(val), "pw-%" PRIu64, seq);
		publish(SLOT_DB, seq, T0 + HOUR, "password", val, NULL);
	}
	store_set_listener(st, fs_invalidate, fs);
	assert_content("db/password", "pw-6");
	ck_assert_int_eq(stat_rel("db/password", &sb), 0);
	ck_assert_int_eq(sb.st_size, 4);
	ck_assert_int_eq(open_rel("db/..v1/password", O_RDONLY), -ENOENT);
}
END_TEST

/* FS_CACHE_NONE: every read reaches the broker, so an unnoticed kill is
 * seen by the very next read. */
START_TEST(test_fs_none_reads_through)
{
	char path[PATH_MAX], buf[64];
	int fd;

	path_of(path, sizeof(path), "db/password");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 7);
	kill_unnoticed(SLOT_DB);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, EIO);
	close(fd);
}
END_TEST

/* FS_CACHE_FAST: opens never reach the broker (no access event), the
 * kernel checks the mode bits, and revocation still hides the files and
 * fails the reads of open handles. */
START_TEST(test_fs_fast_kernel_opens)
{
	char path[PATH_MAX], buf[64];
	int fd;

	assert_content("db/password", "hunter2");
	assert_content("db/..v1/username", "app");
	ck_assert_int_eq(access_count, 0);
	/* db: uid 0, mode 0440; api: UID_OTHER, 0400. */
	ck_assert_int_eq(as_uid(UID_NOBODY, child_open, "db/password"), EACCES);
	ck_assert_int_eq(as_uid(UID_NOBODY, child_open, "api/token"), EACCES);
	ck_assert_int_eq(as_uid(UID_OTHER, child_read_token, "api/token"), 0);
	ck_assert_int_eq(open_rel("db/password", O_WRONLY), -EROFS);
	path_of(path, sizeof(path), "db/password");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), 7);
	publish(SLOT_DB, 2, T0 + HOUR, "password", "pw-two", NULL);
	ck_assert_int_eq(fs_flush_invalidations(fs, 3000), 0);
	assert_content("db/password", "pw-two");
	store_kill_slot(st, SLOT_DB);
	ck_assert_int_eq(fs_flush_invalidations(fs, 3000), 0);
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, EIO);
	ck_assert_int_eq(open_rel("db/password", O_RDONLY), -ENOENT);
	close(fd);
}
END_TEST

/* A descriptor someone else mounted may lack default_permissions. */
START_TEST(test_fs_fast_refuses_dev_fd)
{
	struct errmsg err = {""};

	fs_set_cache_mode(fs, FS_CACHE_FAST);
	ck_assert_int_eq(fs_mount(fs, "/dev/fd/0", &err), -EINVAL);
	ck_assert_msg(strstr(err.text, "mount.cache") != NULL, "%s", err.text);
}
END_TEST

static void fs_add_mode_case(Suite *s, const char *name, void (*setup)(void),
			     const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *fs_suite(void)
{
	Suite *s = suite_create("fs");
	TCase *tc = tcase_create("mounted");
	TCase *tm = tcase_create("mounting");

	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, setup_mounted, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_fs_lists_secrets_and_files);
	tcase_add_test(tc, test_fs_attributes);
	tcase_add_test(tc, test_fs_reads_content);
	tcase_add_test(tc, test_fs_reads_at_offsets);
	tcase_add_test(tc, test_fs_unknown_is_enoent);
	tcase_add_test(tc, test_fs_write_like_is_erofs);
	tcase_add_test(tc, test_fs_statfs);
	tcase_add_test(tc, test_fs_non_reader_gets_eacces);
	tcase_add_test(tc, test_fs_open_pins_its_version);
	tcase_add_test(tc, test_fs_rotation_drops_vanished_names);
	tcase_add_test(tc, test_fs_revoke_hides_and_fails_reads);
	tcase_add_test(tc, test_fs_expiry_hides_the_file);
	tcase_add_test(tc, test_fs_stop_is_idempotent);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(tm, base_setup, base_teardown);
	tcase_add_checked_fixture(tm, setup_unmounted, teardown);
	tcase_set_timeout(tm, 30);
	tcase_add_test(tm, test_fs_mount_rejects_bad_paths);
	tcase_add_test(tm, test_fs_mount_detaches_stale_mount);
	tcase_add_test(tm, test_fs_mount_dev_fd);
	tcase_add_test(tm, test_fs_mount_from_socket);
	tcase_add_test(tm, test_fs_socket_rejects_non_device);
	tcase_add_test(tm, test_fs_fast_refuses_dev_fd);
	suite_add_tcase(s, tm);
	fs_add_mode_case(s, "audited", setup_audited,
			 test_fs_audited_caches_pages_until_invalidated);
	fs_add_mode_case(s, "audited_rotation", setup_audited,
			 test_fs_audited_rotation_changes_inode);
	fs_add_mode_case(s, "audited_stale_name", setup_audited,
			 test_fs_audited_stale_name_reopens_current);
	fs_add_mode_case(s, "none", setup_none, test_fs_none_reads_through);
	fs_add_mode_case(s, "fast", setup_fast, test_fs_fast_kernel_opens);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("SKIP: test_fs needs /dev/fuse (%s)\n", strerror(errno));
		return 77;
	}
	sr = srunner_create(fs_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
