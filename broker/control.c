/* The control socket, in the manner of ssh-agent: the socket is created
 * under a tight umask, every peer's uid is checked with SO_PEERCRED, and a
 * message has a hard size cap.  A thread per connection (bounded) keeps one
 * slow or hostile client from blocking a responder's revoke; when silent
 * clients hold every slot, the one silent longest makes room. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "unixsock.h"

struct control {
	int listen_fd;
	int stop_fd; /* eventfd: wakes the accept loop */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t allowed_count;
	uid_t *allowed;
	control_handler handler;
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock; /* protects the fields below */
	pthread_cond_t idle;
	unsigned clients;  /* threads, evicted ones included */
	unsigned evicting; /* evicted, not yet gone */
	struct control_client *oldest, *newest; /* every client, by age */
};

struct control_client {
	struct control *ctl;
	int fd; /* open while on the list: eviction shuts it down */
	struct control_peer peer;
	/* Protected by ctl->lock. */
	struct control_client *older, *newer;
	int64_t accepted_ms;
	bool running; /* its request was read: a command runs, never evicted */
	bool evicted; /* its socket was shut down to make room */
};

static int control_addr(const char *path, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	memcpy(addr->sun_path, path, strlen(path) + 1);
	return 0;
}

static int64_t control_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (control_now_ms() time), at least 0. */
static int control_left_ms(int64_t deadline)
{
	int64_t now = control_now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Waits for events on fd until deadline: 0, -ETIMEDOUT or -errno. */
static int control_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int r;

	do
		r = poll(&pfd, 1, control_left_ms(deadline));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Reads up to the first newline; returns the length, -EMSGSIZE past the
 * cap, -ETIMEDOUT, -EPROTO on a connection closed before a newline.  The
 * timeout bounds the whole line, not each read: a client that trickles a
 * byte at a time must not hold its slot for days. */
static ssize_t control_read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	int64_t deadline = control_now_ms() + timeout_ms;
	size_t len = 0;
	ssize_t n;
	int r;

	while (len < cap) {
		r = control_wait(fd, POLLIN, deadline);
		if (r < 0)
			return r;
		n = read(fd, buf + len, cap - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPROTO;
		if (memchr(buf + len, '\n', (size_t)n) != NULL)
			return (ssize_t)((char *)memchr(buf + len, '\n',
							(size_t)n) -
					 buf);
		len += (size_t)n;
	}
	return -EMSGSIZE;
}

/* The timeout bounds the whole reply, as for reading. */
static int control_write_all(int fd, const char *buf, size_t len,
			     int timeout_ms)
{
	int64_t deadline = control_now_ms() + timeout_ms;
	ssize_t n;
	int r;

	while (len > 0) {
		r = control_wait(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One JSON line.  json_dumpb writes into a buffer of ours, so nothing
 * depends on which allocator jansson was given. */
static int control_send_json(int fd, json_t *obj, int timeout_ms)
{
	size_t len = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	char *text;
	int r;

	/* The reader's cap counts the newline too. */
	if (len == 0 || len >= CONTROL_MAX_REPLY)
		return -EMSGSIZE;
	text = malloc(len + 1);
	if (text == NULL)
		return -ENOMEM;
	(void)json_dumpb(obj, text, len, JSON_COMPACT);
	text[len] = '\n';
	r = control_write_all(fd, text, len + 1, timeout_ms);
	free(text);
	return r;
}

/* The command name of a process, made safe to print inside quotes. */
static void control_peer_comm(pid_t pid, char *comm, size_t size)
{
	char path[64];
	ssize_t n;
	int fd, i;

	(void)snprintf(comm, size, "?");
	(void)snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, comm, size - 1);
	close(fd);
	if (n <= 0)
		return;
	comm[n] = '\0';
	for (i = 0; i < n; i++)
		if (comm[i] == '\n')
			comm[i] = '\0';
		else if (comm[i] < 0x20 || comm[i] == '"' || comm[i] == '\\' ||
			 comm[i] >= 0x7f)
			comm[i] = '?';
}

static bool control_allowed(const struct control *c, uid_t uid)
{
	size_t i;

	/* Root, and the broker's own uid: in a pod, "kubectl exec -c
	 * credbroker" runs as the broker's user. */
	if (uid == 0 || uid == geteuid())
		return true;
	for (i = 0; i < c->allowed_count; i++)
		if (c->allowed[i] == uid)
			return true;
	return false;
}

/* True when a responder uid other than root and our own must connect. */
static bool control_others_allowed(const struct control *c)
{
	size_t i;

	for (i = 0; i < c->allowed_count; i++)
		if (c->allowed[i] != 0 && c->allowed[i] != geteuid())
			return true;
	return false;
}

/* The kernel's POSIX ACL extended attribute (linux/posix_acl_xattr.h):
 * a version word, then entries sorted by tag and, for users, by uid. */
#define ACL_XATTR_VERSION 2
#define ACL_TAG_USER_OBJ 0x01
#define ACL_TAG_USER 0x02
#define ACL_TAG_GROUP_OBJ 0x04
#define ACL_TAG_MASK 0x10
#define ACL_TAG_OTHER 0x20
#define ACL_PERM_RW 6
#define ACL_NO_ID 0xffffffffu

static size_t control_acl_entry(unsigned char *p, uint16_t tag, uint16_t perm,
				uint32_t id)
{
	uint16_t t = htole16(tag), m = htole16(perm);
	uint32_t i = htole32(id);

	memcpy(p, &t, 2);
	memcpy(p + 2, &m, 2);
	memcpy(p + 4, &i, 4);
	return 8;
}

static int control_cmp_uid(const void *a, const void *b)
{
	uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;

	return x < y ? -1 : x > y;
}

/* rw for the owner and each listed responder (root and the owner need no
 * entry), nothing for the group or anyone else. */
static int control_grant_responders(const struct control *c, struct errmsg *err)
{
	unsigned char acl[4 + 8 * (CONTROL_MAX_ALLOWED + 4)];
	uid_t uids[CONTROL_MAX_ALLOWED];
	uint32_t version = htole32(ACL_XATTR_VERSION);
	size_t i, n = 0, len = 4;

	for (i = 0; i < c->allowed_count; i++)
		if (c->allowed[i] != 0 && c->allowed[i] != geteuid())
			uids[n++] = c->allowed[i];
	qsort(uids, n, sizeof(uids[0]), control_cmp_uid);
	memcpy(acl, &version, 4);
	len += control_acl_entry(acl + len, ACL_TAG_USER_OBJ, ACL_PERM_RW,
				 ACL_NO_ID);
	for (i = 0; i < n; i++)
		if (i == 0 || uids[i] != uids[i - 1])
			len += control_acl_entry(acl + len, ACL_TAG_USER,
						 ACL_PERM_RW, uids[i]);
	len += control_acl_entry(acl + len, ACL_TAG_GROUP_OBJ, 0, ACL_NO_ID);
	len +=
	    control_acl_entry(acl + len, ACL_TAG_MASK, ACL_PERM_RW, ACL_NO_ID);
	len += control_acl_entry(acl + len, ACL_TAG_OTHER, 0, ACL_NO_ID);
	if (setxattr(c->path, "system.posix_acl_access", acl, len, 0) < 0)
		return errmsg_set(err, -errno,
				  "control.socket: cannot admit "
				  "control.responders to %s (POSIX ACL: %s); "
				  "put the socket on a filesystem with ACLs",
				  c->path, strerror(errno));
	return 0;
}

static json_t *control_refusal(const char *text)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", text);
}

static json_t *control_dispatch(const char *buf, ssize_t len,
				const struct control_peer *peer,
				control_handler handler, void *arg)
{
	json_error_t jerr;
	json_t *req, *reply;

	if (len < 0)
		return control_refusal(len == -EMSGSIZE
					   ? "request too large"
					   : "no complete request line");
	req = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(req)) {
		json_decref(req);
		return control_refusal("request is not a JSON object");
	}
	reply = handler(arg, peer, req);
	json_decref(req);
	return reply != NULL ? reply : control_refusal("out of memory");
}

json_t *control_serve(int fd, const struct control_peer *peer,
		      control_handler handler, void *arg, int timeout_ms)
{
	json_t *reply;
	ssize_t len;
	char *buf;

	buf = malloc(CONTROL_MAX_MSG);
	if (buf == NULL)
		return control_refusal("out of memory");
	len = control_read_line(fd, buf, CONTROL_MAX_MSG, timeout_ms);
	reply = control_dispatch(buf, len, peer, handler, arg);
	free(buf);
	return reply;
}

static void control_unlink(struct control *c, struct control_client *cl)
{
	if (cl->older != NULL)
		cl->older->newer = cl->newer;
	else
		c->oldest = cl->newer;
	if (cl->newer != NULL)
		cl->newer->older = cl->older;
	else
		c->newest = cl->older;
	cl->older = cl->newer = NULL;
}

/* Runs the command unless the client was evicted while its request came
 * in: a command either runs with its socket intact or not at all. */
static json_t *control_client_handle(void *arg, const struct control_peer *peer,
				     const json_t *request)
{
	struct control_client *cl = arg;
	struct control *c = cl->ctl;
	bool evicted;

	pthread_mutex_lock(&c->lock);
	evicted = cl->evicted;
	cl->running = !evicted;
	pthread_mutex_unlock(&c->lock);
	if (evicted)
		return control_refusal("busy: every slot was taken");
	return c->handler(c->arg, peer, request);
}

static void *control_client_thread(void *arg)
{
	struct control_client *cl = arg;
	struct control *c = cl->ctl;
	json_t *reply;

	reply = control_serve(cl->fd, &cl->peer, control_client_handle, cl,
			      CONTROL_READ_TIMEOUT_MS);
	/* The command has run: a reply too large still answers the CLI. */
	if (reply != NULL &&
	    control_send_json(cl->fd, reply, CONTROL_READ_TIMEOUT_MS) ==
		-EMSGSIZE) {
		json_decref(reply);
		reply = control_refusal("reply too large for the control "
					"socket; the command ran, see the "
					"audit log");
		if (reply != NULL)
			(void)control_send_json(cl->fd, reply,
						CONTROL_READ_TIMEOUT_MS);
	}
	json_decref(reply);
	/* Off the list before the descriptor closes: an eviction never
	 * shuts down a number the kernel gave to someone else. */
	pthread_mutex_lock(&c->lock);
	control_unlink(c, cl);
	if (cl->evicted)
		c->evicting--;
	c->clients--;
	pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	close(cl->fd);
	free(cl);
	return NULL;
}

static void control_refuse_peer(struct control_client *cl)
{
	json_t *reply = control_refusal("permission denied");

	log_warnx("event=control_denied uid=%u pid=%d comm=\"%s\"",
		  (unsigned)cl->peer.uid, (int)cl->peer.pid, cl->peer.comm);
	json_decref(cl->ctl->handler(cl->ctl->arg, &cl->peer, NULL));
	if (reply != NULL)
		(void)control_send_json(cl->fd, reply, 100);
	json_decref(reply);
	close(cl->fd);
	free(cl);
}

/* Whether a new client may have a slot, making one when all are taken:
 * the client that has been sending nothing (or not a whole request) for
 * longest is cut off, so silent clients cannot keep a responder's revoke
 * out for CONTROL_READ_TIMEOUT_MS.  A client whose command runs keeps its
 * slot; when every slot runs one, the new client is refused.  Evicted
 * threads leave at once (their read ends); until they do they count
 * against a hard cap of twice the slots.  Called with c->lock held. */
static bool control_make_room(struct control *c)
{
	struct control_client *cl;

	if (c->clients - c->evicting < CONTROL_MAX_CLIENTS)
		return true;
	if (c->clients >= 2 * CONTROL_MAX_CLIENTS)
		return false;
	for (cl = c->oldest; cl != NULL; cl = cl->newer)
		if (!cl->running && !cl->evicted)
			break;
	if (cl == NULL)
		return false;
	cl->evicted = true;
	c->evicting++;
	(void)shutdown(cl->fd, SHUT_RDWR);
	log_warnx("event=control_evicted uid=%u pid=%d comm=\"%s\" "
		  "silent_ms=%lld reason=\"every client slot taken\"",
		  (unsigned)cl->peer.uid, (int)cl->peer.pid, cl->peer.comm,
		  (long long)(control_now_ms() - cl->accepted_ms));
	return true;
}

static void control_accept_one(struct control *c)
{
	struct control_client *cl;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	pthread_t thread;
	int fd;

	fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		free(cl);
		close(fd);
		return;
	}
	cl->ctl = c;
	cl->fd = fd;
	cl->peer.uid = cred.uid;
	cl->peer.pid = cred.pid;
	control_peer_comm(cred.pid, cl->peer.comm, sizeof(cl->peer.comm));
	/* Refused peers are answered and closed here, before they can take
	 * one of the client slots a responder may need. */
	if (!control_allowed(c, cred.uid)) {
		control_refuse_peer(cl);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (!control_make_room(c)) {
		pthread_mutex_unlock(&c->lock);
		log_warnx("event=control_busy uid=%u", (unsigned)cred.uid);
		close(fd);
		free(cl);
		return;
	}
	c->clients++;
	cl->accepted_ms = control_now_ms();
	cl->older = c->newest;
	if (c->newest != NULL)
		c->newest->newer = cl;
	else
		c->oldest = cl;
	c->newest = cl;
	pthread_mutex_unlock(&c->lock);
	if (pthread_create(&thread, NULL, control_client_thread, cl) != 0) {
		pthread_mutex_lock(&c->lock);
		control_unlink(c, cl);
		c->clients--;
		pthread_mutex_unlock(&c->lock);
		close(fd);
		free(cl);
		return;
	}
	pthread_detach(thread);
}

static void *control_accept_thread(void *arg)
{
	struct control *c = arg;
	struct pollfd pfd[2] = {
	    {.fd = c->listen_fd, .events = POLLIN},
	    {.fd = c->stop_fd, .events = POLLIN},
	};

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents & POLLIN)
			control_accept_one(c);
	}
	return NULL;
}

/* The default /run/credbroker does not exist on a fresh host: create the
 * last directory level (0755: the socket's own mode guards it). */
static int control_make_parent(const char *path, struct errmsg *err)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	(void)snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return errmsg_set(err, -errno,
				  "control.socket: cannot create "
				  "%s: %s",
				  dir, strerror(errno));
	return 0;
}

static int control_listen(struct control *c, struct errmsg *err)
{
	int r;

	r = control_make_parent(c->path, err);
	if (r < 0)
		return r;
	c->listen_fd = unixsock_listen(c->path, 16, "control.socket", err);
	if (c->listen_fd < 0)
		return c->listen_fd;
	/* 0600 keeps everyone but root and our own uid out; listed
	 * responders of other uids get an ACL entry each, so the kernel
	 * refuses every other uid before SO_PEERCRED is even asked. */
	if (control_others_allowed(c))
		return control_grant_responders(c, err);
	return 0;
}

int control_start(const char *path, const uid_t *allowed, size_t allowed_count,
		  control_handler handler, void *arg, struct control **ret,
		  struct errmsg *err)
{
	struct control *c;
	int r = -ENOMEM;

	if (allowed_count > CONTROL_MAX_ALLOWED)
		return errmsg_set(err, -EINVAL,
				  "control.responders: more than "
				  "%d",
				  CONTROL_MAX_ALLOWED);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	c->listen_fd = -1;
	c->stop_fd = -1;
	c->allowed = calloc(allowed_count ? allowed_count : 1, sizeof(uid_t));
	if (c->allowed == NULL)
		goto fail;
	if (allowed_count > 0)
		memcpy(c->allowed, allowed, allowed_count * sizeof(uid_t));
	c->allowed_count = allowed_count;
	c->handler = handler;
	c->arg = arg;
	(void)snprintf(c->path, sizeof(c->path), "%s", path);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	r = control_listen(c, err);
	if (r < 0)
		goto fail;
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0 ||
	    pthread_create(&c->thread, NULL, control_accept_thread, c) != 0) {
		r = errmsg_set(err, -EAGAIN, "control: cannot start thread");
		unlink(c->path);
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	free(c->allowed);
	free(c);
	return r;
}

void control_stop(struct control *c)
{
	uint64_t one = 1;

	if (c == NULL)
		return;
	if (write(c->stop_fd, &one, sizeof(one)) < 0)
		log_warn("event=control_stop_signal_failed");
	pthread_join(c->thread, NULL);
	close(c->listen_fd);
	unlink(c->path);
	pthread_mutex_lock(&c->lock);
	while (c->clients > 0)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	close(c->stop_fd);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->idle);
	free(c->allowed);
	free(c);
}

static int control_connect(const char *path, struct errmsg *err)
{
	struct sockaddr_un addr;
	int fd, r;

	r = control_addr(path, &addr);
	if (r < 0)
		return errmsg_set(err, r, "socket path too long: %s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errmsg_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = -errno;
		close(fd);
		return errmsg_set(err, r, "cannot reach the broker at %s: %s",
				  path, strerror(-r));
	}
	return fd;
}

int control_call(const char *path, const json_t *request, int timeout_ms,
		 json_t **reply, struct errmsg *err)
{
	json_error_t jerr;
	json_t *obj;
	ssize_t len;
	char *buf;
	int fd, r;

	fd = control_connect(path, err);
	if (fd < 0)
		return fd;
	buf = malloc(CONTROL_MAX_REPLY);
	if (buf == NULL) {
		r = errmsg_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* A refusal (e.g. "permission denied") may be sent and the
	 * connection closed before our request is written: the send then
	 * fails with EPIPE, but the refusal is still there to read. */
	r = control_send_json(fd, (json_t *)request, timeout_ms);
	if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
		r = errmsg_set(err, r, "cannot send to %s: %s", path,
			       strerror(-r));
		goto out;
	}
	len = control_read_line(fd, buf, CONTROL_MAX_REPLY, timeout_ms);
	if (len < 0 && r < 0) {
		r = errmsg_set(err, r, "cannot send to %s: %s", path,
			       strerror(-r));
		goto out;
	}
	if (len < 0) {
		r = errmsg_set(err, len == -ETIMEDOUT ? -ETIMEDOUT : -EPROTO,
			       "no reply from the broker at %s: %s", path,
			       strerror((int)-len));
		goto out;
	}
	obj = json_loadb(buf, (size_t)len, 0, &jerr);
	if (!json_is_object(obj)) {
		json_decref(obj);
		r = errmsg_set(err, -EPROTO, "malformed reply from %s", path);
		goto out;
	}
	*reply = obj;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}
