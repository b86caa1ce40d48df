/* Every path the pod can touch is reached through a directory descriptor
 * opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) below the pods
 * directory, and used through /proc/self/fd/N, so a pod that swaps a
 * component for a symlink makes the call fail instead of redirecting a
 * root-owned mount, bind or chown. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "node.h"

#define CSI_NAME_MAX 253
#define CSI_FUSE_OPTS                                                          \
	"rootmode=40000,user_id=0,group_id=0,allow_other,"                     \
	"default_permissions"

struct csi_volume {
	bool used;
	char volume_id[CSI_NAME_MAX + 1];
	char parent_rel[PATH_MAX]; /* below pods_dir: the target's parent */
	char handoff_rel[PATH_MAX];
	struct csi_node *node;
	uid_t broker_uid;
	char payload[CSI_MAX_PAYLOAD];
	size_t payload_len;
	int fuse_fd;   /* until handed over or timed out; thread's */
	int listen_fd; /* thread's */
	int stop_fd;   /* wakes the thread for unpublish */
	pthread_t thread;
	bool thread_started;
};

struct csi_node {
	struct csi_node_config cfg;
	int pods_fd;
	pthread_mutex_t lock; /* protects vols[].used and ids */
	struct csi_volume *vols;
};

static int csi_openat2(int dirfd, const char *rel, int flags)
{
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		      RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
	fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

static bool csi_name_ok(const char *s, size_t len, const char *extra)
{
	size_t i;

	if (len == 0 || len > CSI_NAME_MAX || s[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i])))
			return false;
	return true;
}

/* target = PODS/<uid>/volumes/kubernetes.io~csi/<name>/mount: fills the
 * parent below PODS and the pod's uid. */
static int csi_parse_target(const struct csi_node *n, const char *target,
			    char *parent_rel, size_t size, char *uid,
			    size_t uid_size, struct errmsg *err)
{
	size_t plen = strlen(n->cfg.pods_dir), ulen, nlen;
	const char *rel, *p, *name;

	if (strncmp(target, n->cfg.pods_dir, plen) != 0 || target[plen] != '/')
		return errmsg_set(err, -EINVAL, "target_path is not below %s",
				  n->cfg.pods_dir);
	rel = target + plen + 1;
	p = strchr(rel, '/');
	ulen = p ? (size_t)(p - rel) : 0;
	if (p == NULL || !csi_name_ok(rel, ulen, "-") || ulen >= uid_size ||
	    strncmp(p, "/volumes/kubernetes.io~csi/", 27) != 0)
		return errmsg_set(err, -EINVAL,
				  "target_path is not a pod's CSI "
				  "volume path");
	name = p + 27;
	p = strchr(name, '/');
	nlen = p ? (size_t)(p - name) : 0;
	if (p == NULL || !csi_name_ok(name, nlen, "-_.") ||
	    strcmp(p, "/mount") != 0)
		return errmsg_set(err, -EINVAL,
				  "target_path does not end in "
				  "<volume>/mount");
	memcpy(uid, rel, ulen);
	uid[ulen] = '\0';
	if (snprintf(parent_rel, size, "%.*s", (int)(p - rel), rel) >=
	    (int)size)
		return errmsg_set(err, -ENAMETOOLONG, "target_path too long");
	return 0;
}

/* The target's "mount" directory, created when missing; -EISDIR when it is
 * already a mount of its own (a republish). */
static int csi_make_target(struct csi_node *n, const char *parent_rel, int *ret,
			   struct errmsg *err)
{
	struct stat parent, mnt;
	int pfd, fd, e, r = 0;

	pfd = csi_openat2(n->pods_fd, parent_rel, O_PATH | O_DIRECTORY);
	if (pfd < 0)
		return errmsg_set(err, pfd, "target_path: %s: %s", parent_rel,
				  strerror(-pfd));
	e = mkdirat(pfd, "mount", 0750) < 0 ? errno : 0;
	/* ENOTCONN: a FUSE mount whose server is gone, still ours. */
	if (e == ENOTCONN)
		r = -EISDIR;
	else if (e != 0 && e != EEXIST)
		r = errmsg_set(err, -e, "target_path: mkdir: %s", strerror(e));
	fd = r == 0 ? openat(pfd, "mount",
			     O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
		    : -1;
	/* A FUSE mount whose server is gone (ENOTCONN) is still ours. */
	if (r == 0 && fd < 0 && errno == ENOTCONN)
		r = -EISDIR;
	else if (r == 0 && fd < 0)
		r = errmsg_set(err, -errno,
			       "target_path: mount is not a directory: %s",
			       strerror(errno));
	if (r == 0 && (fstat(pfd, &parent) < 0 || fstat(fd, &mnt) < 0))
		r = errno == ENOTCONN
			? -EISDIR
			: errmsg_set(err, -errno, "target_path: stat: %s",
				     strerror(errno));
	if (r == 0 && parent.st_dev != mnt.st_dev)
		r = -EISDIR;
	close(pfd);
	if (r < 0 && fd >= 0)
		close(fd);
	if (r == 0)
		*ret = fd;
	return r;
}

static int csi_mount_fuse(int target_fd, int *fuse_ret, struct errmsg *err)
{
	char path[64], opts[160];
	int fd;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errmsg_set(err, -errno, "cannot open /dev/fuse: %s",
				  strerror(errno));
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", target_fd);
	(void)snprintf(opts, sizeof(opts), "fd=%d," CSI_FUSE_OPTS, fd);
	if (mount("credbroker", path, "fuse.credbroker",
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0) {
		int e = errno;

		close(fd);
		return errmsg_set(err, -e, "mount: %s", strerror(e));
	}
	*fuse_ret = fd;
	return 0;
}

/* The hand-off socket in the broker's emptyDir, owned by its uid, 0600. */
static int csi_listen(struct csi_node *n, struct csi_volume *v,
		      struct errmsg *err)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct stat st;
	int dfd, fd = -1, r = 0;

	dfd = csi_openat2(n->pods_fd, v->handoff_rel, O_PATH | O_DIRECTORY);
	if (dfd < 0)
		return errmsg_set(err, dfd, "hand-off volume %s: %s",
				  v->handoff_rel, strerror(-dfd));
	if (fstatat(dfd, CSI_HANDOFF_SOCKET, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode))
		(void)unlinkat(dfd, CSI_HANDOFF_SOCKET, 0);
	(void)snprintf(addr.sun_path, sizeof(addr.sun_path),
		       "/proc/self/fd/%d/" CSI_HANDOFF_SOCKET, dfd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(fd, 4) < 0)
		r = errmsg_set(err, -errno, "hand-off socket: %s",
			       strerror(errno));
	/* NOFOLLOW: a symlink swapped in since bind is refused, not
	 * followed by a root-owned chown. */
	if (r == 0 &&
	    (fchownat(dfd, CSI_HANDOFF_SOCKET, v->broker_uid, (gid_t)-1,
		      AT_SYMLINK_NOFOLLOW) < 0 ||
	     fchmodat(dfd, CSI_HANDOFF_SOCKET, 0600, AT_SYMLINK_NOFOLLOW) < 0))
		r = errmsg_set(err, -errno, "hand-off socket: chown: %s",
			       strerror(errno));
	close(dfd);
	if (r < 0 && fd >= 0)
		close(fd);
	if (r == 0)
		v->listen_fd = fd;
	return r;
}

static void csi_remove_socket(struct csi_node *n, const struct csi_volume *v)
{
	struct stat st;
	int dfd;

	dfd = csi_openat2(n->pods_fd, v->handoff_rel, O_PATH | O_DIRECTORY);
	if (dfd < 0)
		return;
	if (fstatat(dfd, CSI_HANDOFF_SOCKET, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode))
		(void)unlinkat(dfd, CSI_HANDOFF_SOCKET, 0);
	close(dfd);
}

static int csi_send_fd(int conn, const struct csi_volume *v)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = (void *)v->payload,
			    .iov_len = v->payload_len ? v->payload_len : 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *c;

	memset(ctl.buf, 0, sizeof(ctl.buf));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &v->fuse_fd, sizeof(int));
	return sendmsg(conn, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* One connection: the descriptor goes only to the broker's uid. */
static bool csi_try_handoff(struct csi_volume *v)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int conn, r;

	conn = accept4(v->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return false;
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    cred.uid != v->broker_uid) {
		log_warnx("event=handoff_refused volume=%s uid=%u pid=%d",
			  v->volume_id, (unsigned)cred.uid, (int)cred.pid);
		close(conn);
		return false;
	}
	r = csi_send_fd(conn, v);
	close(conn);
	if (r < 0)
		log_warnx("event=handoff_failed volume=%s errno=%d",
			  v->volume_id, -r);
	else
		log_info("event=handed_off volume=%s pid=%d", v->volume_id,
			 (int)cred.pid);
	return r == 0;
}

static uint64_t csi_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for the broker, bounded: with nobody to serve it, the descriptor
 * is closed, so the app's opens fail (ENOTCONN) instead of hanging. */
static void *csi_handoff_thread(void *arg)
{
	struct csi_volume *v = arg;
	uint64_t end = csi_now_ms() + v->node->cfg.handoff_timeout_usec / 1000;
	struct pollfd pfd[2] = {{v->listen_fd, POLLIN, 0},
				{v->stop_fd, POLLIN, 0}};
	bool done = false;
	uint64_t now;
	int r;

	while (!done && (now = csi_now_ms()) < end) {
		r = poll(pfd, 2, (int)(end - now));
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && pfd[1].revents)
			break;
		if (r > 0 && pfd[0].revents)
			done = csi_try_handoff(v);
	}
	if (!done)
		log_warnx("event=handoff_abandoned volume=%s reason=\"%s\"",
			  v->volume_id,
			  csi_now_ms() >= end ? "no broker connected in time"
					      : "unpublished");
	close(v->fuse_fd);
	v->fuse_fd = -1;
	close(v->listen_fd);
	v->listen_fd = -1;
	csi_remove_socket(v->node, v);
	return NULL;
}

int csi_node_new(const struct csi_node_config *cfg, struct csi_node **ret,
		 struct errmsg *err)
{
	struct csi_node *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	n->cfg = *cfg;
	if (n->cfg.handoff_timeout_usec == 0)
		n->cfg.handoff_timeout_usec = CSI_DEFAULT_HANDOFF_USEC;
	n->vols = calloc(CSI_MAX_VOLUMES, sizeof(*n->vols));
	n->pods_fd = open(cfg->pods_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (n->vols == NULL || n->pods_fd < 0) {
		int e = n->vols == NULL ? ENOMEM : errno;

		free(n->vols);
		free(n);
		return errmsg_set(err, -e, "pods directory %s: %s",
				  cfg->pods_dir, strerror(e));
	}
	pthread_mutex_init(&n->lock, NULL);
	*ret = n;
	return 0;
}

/* The table entry of volume_id, or a free one (claimed) when create. */
static struct csi_volume *csi_find(struct csi_node *n, const char *volume_id,
				   bool create)
{
	struct csi_volume *free_slot = NULL;
	size_t i;

	for (i = 0; i < CSI_MAX_VOLUMES; i++) {
		if (!n->vols[i].used) {
			free_slot = free_slot ? free_slot : &n->vols[i];
			continue;
		}
		if (strcmp(n->vols[i].volume_id, volume_id) == 0)
			return &n->vols[i];
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = true;
	free_slot->node = n;
	free_slot->fuse_fd = free_slot->listen_fd = free_slot->stop_fd = -1;
	(void)snprintf(free_slot->volume_id, sizeof(free_slot->volume_id), "%s",
		       volume_id);
	return free_slot;
}

static int csi_check_publish(const struct csi_publish *p, struct errmsg *err)
{
	if (p->volume_id == NULL ||
	    !csi_name_ok(p->volume_id, strlen(p->volume_id), "-_."))
		return errmsg_set(err, -EINVAL,
				  "volume_id: 1 to %d of "
				  "[A-Za-z0-9._-]",
				  CSI_NAME_MAX);
	if (p->handoff_volume == NULL ||
	    !csi_name_ok(p->handoff_volume, strlen(p->handoff_volume), "-"))
		return errmsg_set(err, -EINVAL,
				  "volume attribute "
				  "handoffVolume: a volume name");
	if (p->payload_len > CSI_MAX_PAYLOAD)
		return errmsg_set(err, -EMSGSIZE, "hand-off payload too large");
	return p->target_path == NULL
		   ? errmsg_set(err, -EINVAL, "target_path: required")
		   : 0;
}

static int csi_teardown(struct csi_node *n, struct csi_volume *v,
			const char *target_path);

/* Mounts, opens the socket and starts the wait; v is ours (claimed). */
static int csi_publish_volume(struct csi_node *n, struct csi_volume *v,
			      const struct csi_publish *p, struct errmsg *err)
{
	char uid[CSI_NAME_MAX + 1];
	int target_fd = -1, r;

	r = csi_parse_target(n, p->target_path, v->parent_rel,
			     sizeof(v->parent_rel), uid, sizeof(uid), err);
	if (r == 0 &&
	    snprintf(v->handoff_rel, sizeof(v->handoff_rel),
		     "%s/volumes/kubernetes.io~empty-dir/%s", uid,
		     p->handoff_volume) >= (int)sizeof(v->handoff_rel))
		r = errmsg_set(err, -ENAMETOOLONG, "hand-off path too long");
	v->broker_uid = p->broker_uid;
	memcpy(v->payload, p->payload, p->payload_len);
	v->payload_len = p->payload_len;
	if (r == 0)
		r = csi_make_target(n, v->parent_rel, &target_fd, err);
	if (r == -EISDIR)
		return 0; /* mounted before (a plugin restart): never again */
	if (r == 0)
		r = csi_mount_fuse(target_fd, &v->fuse_fd, err);
	if (target_fd >= 0)
		close(target_fd);
	if (r == 0)
		r = csi_listen(n, v, err);
	if (r == 0) {
		v->stop_fd = eventfd(0, EFD_CLOEXEC);
		r = v->stop_fd < 0 ? -errno
				   : -pthread_create(&v->thread, NULL,
						     csi_handoff_thread, v);
		v->thread_started = r == 0;
	}
	return r;
}

int csi_node_publish(struct csi_node *n, const struct csi_publish *p,
		     struct errmsg *err)
{
	struct csi_volume *v;
	int r;

	r = csi_check_publish(p, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&n->lock);
	if (csi_find(n, p->volume_id, false) != NULL) {
		pthread_mutex_unlock(&n->lock);
		return 0; /* published: idempotent */
	}
	v = csi_find(n, p->volume_id, true);
	if (v == NULL) {
		pthread_mutex_unlock(&n->lock);
		return errmsg_set(err, -ENOSPC, "more than %d volumes",
				  CSI_MAX_VOLUMES);
	}
	r = csi_publish_volume(n, v, p, err);
	if (r < 0) {
		csi_teardown(n, v, p->target_path);
		v->used = false;
	}
	pthread_mutex_unlock(&n->lock);
	if (r == 0)
		log_info("event=published volume=%s", p->volume_id);
	return r;
}

/* An eventfd write cannot fail short of a bad descriptor. */
static void csi_wake(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) != sizeof(one))
		log_warnx("event=csi_wake_failed errno=%d", errno);
}

/* Unmounts the target (lazily when busy) and removes its directory. */
static int csi_unmount(struct csi_node *n, const char *parent_rel)
{
	char path[64];
	int pfd, r = 0;

	pfd = csi_openat2(n->pods_fd, parent_rel, O_PATH | O_DIRECTORY);
	if (pfd < 0)
		return pfd == -ENOENT ? 0 : pfd;
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d/mount", pfd);
	if (umount2(path, UMOUNT_NOFOLLOW) < 0 && errno == EBUSY &&
	    umount2(path, UMOUNT_NOFOLLOW | MNT_DETACH) < 0)
		r = -errno;
	if (r == 0 && unlinkat(pfd, "mount", AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		r = -errno;
	close(pfd);
	return r;
}

/* Ends the hand-off (if any), closes what publish opened, unmounts.  v may
 * be NULL (a target the plugin forgot across a restart). */
static int csi_teardown(struct csi_node *n, struct csi_volume *v,
			const char *target_path)
{
	char parent_rel[PATH_MAX], uid[CSI_NAME_MAX + 1];
	struct errmsg err;
	int r;

	if (v != NULL && v->thread_started) {
		csi_wake(v->stop_fd);
		pthread_join(v->thread, NULL);
		v->thread_started = false;
	}
	if (v != NULL) {
		if (v->fuse_fd >= 0)
			close(v->fuse_fd);
		if (v->listen_fd >= 0)
			close(v->listen_fd);
		if (v->stop_fd >= 0)
			close(v->stop_fd);
		v->fuse_fd = v->listen_fd = v->stop_fd = -1;
		if (v->handoff_rel[0] != '\0')
			csi_remove_socket(n, v);
	}
	r = csi_parse_target(n, target_path, parent_rel, sizeof(parent_rel),
			     uid, sizeof(uid), &err);
	return r < 0 ? r : csi_unmount(n, parent_rel);
}

int csi_node_unpublish(struct csi_node *n, const char *volume_id,
		       const char *target_path, struct errmsg *err)
{
	struct csi_volume *v;
	int r;

	if (volume_id == NULL || target_path == NULL)
		return errmsg_set(err, -EINVAL,
				  "volume_id and target_path: required");
	pthread_mutex_lock(&n->lock);
	v = csi_find(n, volume_id, false);
	r = csi_teardown(n, v, target_path);
	if (v != NULL)
		v->used = false;
	pthread_mutex_unlock(&n->lock);
	if (r < 0)
		return errmsg_set(err, r, "unpublish %s: %s", volume_id,
				  strerror(-r));
	log_info("event=unpublished volume=%s", volume_id);
	return 0;
}

void csi_node_free(struct csi_node *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < CSI_MAX_VOLUMES; i++) {
		if (!n->vols[i].used || !n->vols[i].thread_started)
			continue;
		csi_wake(n->vols[i].stop_fd);
		pthread_join(n->vols[i].thread, NULL);
		close(n->vols[i].stop_fd);
	}
	close(n->pods_fd);
	pthread_mutex_destroy(&n->lock);
	free(n->vols);
	free(n);
}
