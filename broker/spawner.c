/* The hook spawner (see spawner.h): the wire format, the spawner process,
 * and the daemon's end. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "spawner.h"

#define SPAWNER_FD 3		   /* the spawner's end of the socket */
#define SPAWNER_REPLY_WAIT_MS 5000 /* a reply the daemon does not take */
#define SPAWNER_WHY_LEN 192
#define SPAWNER_START_WAIT_USEC (5ULL * 1000000)
/* The id of the reply that says the spawner is confined and serving (or
 * why it is not); requests count up from 1, so never use it. */
#define SPAWNER_READY_ID UINT64_MAX

struct spawner_head {
	uint32_t magic, argc, envc, zero;
	uint64_t id, timeout_usec;
};

struct spawner_reply_head {
	uint32_t magic;
	int32_t result;
	uint64_t id;
};

_Static_assert(sizeof(struct spawner_head) == SPAWNER_HEADER_LEN,
	       "request header");
_Static_assert(sizeof(struct spawner_reply_head) == SPAWNER_REPLY_HEADER_LEN,
	       "reply header");

static uint64_t spawner_now(void)
{
	return clock_mono(clock_system());
}

static int spawner_ms_until(uint64_t deadline)
{
	uint64_t now = spawner_now();

	return now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
}

/* ---- the wire format ---- */

/* What is wrong with envp[i], or NULL: "PATH=..." first, then
 * CREDBROKER_[A-Z0-9_]{1,HOOK_MAX_KEY}=value, each name once, values at
 * most HOOK_MAX_VALUE bytes: the shape hook_env_build makes and nothing
 * else (no LD_PRELOAD, no second PATH). */
static const char *spawner_bad_var(char *const *envp, size_t i)
{
	const char *s = envp[i], *eq = strchr(s, '=');
	size_t pre = strlen(HOOK_ENV_PREFIX), nlen, j;

	if (eq == NULL)
		return "has no '='";
	nlen = (size_t)(eq - s);
	if (strlen(eq + 1) > HOOK_MAX_VALUE)
		return "has a value that is too long";
	if (i == 0)
		return nlen == 4 && memcmp(s, "PATH", 4) == 0 ? NULL
							      : "is not PATH";
	if (nlen <= pre || nlen > pre + HOOK_MAX_KEY ||
	    memcmp(s, HOOK_ENV_PREFIX, pre) != 0 ||
	    strspn(s + pre, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
		nlen - pre)
		return "is not " HOOK_ENV_PREFIX "[A-Z0-9_]+";
	for (j = 1; j < i; j++)
		if (strncmp(envp[j], s, nlen + 1) == 0)
			return "repeats a name";
	return NULL;
}

/* Counts v (NULL-terminated, 1..max strings shorter than len each) and
 * adds their bytes, NULs included, to *bytes. */
static int spawner_count(char *const *v, size_t max, size_t len,
			 const char *what, size_t *count, size_t *bytes,
			 struct errmsg *err)
{
	size_t n, l;

	for (n = 0; v[n] != NULL; n++) {
		if (n == max)
			return errmsg_set(err, -EINVAL, "more than %zu %s", max,
					  what);
		l = strlen(v[n]);
		if (l >= len)
			return errmsg_set(err, -EMSGSIZE,
					  "%s[%zu] is longer than %zu bytes",
					  what, n, len - 1);
		*bytes += l + 1;
	}
	if (n == 0)
		return errmsg_set(err, -EINVAL, "no %s", what);
	*count = n;
	return 0;
}

static int spawner_check_request(uint64_t id, uint64_t timeout_usec,
				 char *const *argv, char *const *envp,
				 size_t *argc, size_t *envc, size_t *bytes,
				 struct errmsg *err)
{
	const char *bad;
	size_t i;
	int r;

	if (id == 0 || timeout_usec < HOOK_MIN_TIMEOUT_USEC ||
	    timeout_usec > HOOK_MAX_TIMEOUT_USEC)
		return errmsg_set(err, -EINVAL, "id 0 or timeout out of range");
	r = spawner_count(argv, HOOK_MAX_ARGS, HOOK_MAX_ARG_LEN, "argv", argc,
			  bytes, err);
	if (r == 0)
		r = spawner_count(envp, HOOK_MAX_FIELDS + 1, SPAWNER_MAX_VAR,
				  "envp", envc, bytes, err);
	if (r < 0)
		return r;
	if (argv[0][0] != '/')
		return errmsg_set(err, -EINVAL,
				  "argv[0] is not an absolute path");
	for (i = 0; i < *envc; i++) {
		bad = spawner_bad_var(envp, i);
		if (bad != NULL)
			return errmsg_set(err, -EINVAL, "envp[%zu] %s", i, bad);
	}
	return 0;
}

int spawner_request_encode(uint64_t id, uint64_t timeout_usec,
			   char *const *argv, char *const *envp, char **ret,
			   size_t *len, struct errmsg *err)
{
	struct spawner_head h;
	size_t argc = 0, envc = 0, bytes = sizeof(h), i, l;
	char *msg, *p;
	int r;

	r = spawner_check_request(id, timeout_usec, argv, envp, &argc, &envc,
				  &bytes, err);
	if (r < 0)
		return r;
	msg = malloc(bytes);
	if (msg == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	memset(&h, 0, sizeof(h));
	h.magic = SPAWNER_REQUEST_MAGIC;
	h.argc = (uint32_t)argc;
	h.envc = (uint32_t)envc;
	h.id = id;
	h.timeout_usec = timeout_usec;
	memcpy(msg, &h, sizeof(h));
	p = msg + sizeof(h);
	for (i = 0; i < argc + envc; i++) {
		const char *s = i < argc ? argv[i] : envp[i - argc];

		l = strlen(s) + 1;
		memcpy(p, s, l);
		p += l;
	}
	*ret = msg;
	*len = bytes;
	return 0;
}

static int spawner_request_head(const char *msg, size_t len,
				struct spawner_head *h, struct errmsg *err)
{
	if (len < sizeof(*h) || len > SPAWNER_MAX_REQUEST)
		return errmsg_set(err, -EBADMSG,
				  "request of %zu bytes, not %zu to %zu", len,
				  sizeof(*h), (size_t)SPAWNER_MAX_REQUEST);
	memcpy(h, msg, sizeof(*h));
	if (h->magic != SPAWNER_REQUEST_MAGIC || h->zero != 0)
		return errmsg_set(err, -EBADMSG, "request: bad magic");
	if (h->id == 0)
		return errmsg_set(err, -EBADMSG, "request: id 0");
	if (h->argc < 1 || h->argc > HOOK_MAX_ARGS)
		return errmsg_set(err, -EBADMSG, "request: argc %u", h->argc);
	if (h->envc < 1 || h->envc > HOOK_MAX_FIELDS + 1)
		return errmsg_set(err, -EBADMSG, "request: envc %u", h->envc);
	if (h->timeout_usec < HOOK_MIN_TIMEOUT_USEC ||
	    h->timeout_usec > HOOK_MAX_TIMEOUT_USEC)
		return errmsg_set(err, -EBADMSG, "request: timeout %llu us",
				  (unsigned long long)h->timeout_usec);
	return 0;
}

int spawner_request_decode(char *msg, size_t len, struct spawner_request *ret,
			   struct errmsg *err)
{
	struct spawner_request req;
	struct spawner_head h;
	char *p, *end, *nul;
	const char *bad;
	size_t i, max, room;
	int r;

	r = spawner_request_head(msg, len, &h, err);
	if (r < 0)
		return r;
	memset(&req, 0, sizeof(req));
	req.id = h.id;
	req.timeout_usec = h.timeout_usec;
	req.argc = h.argc;
	req.envc = h.envc;
	p = msg + sizeof(h);
	end = msg + len;
	for (i = 0; i < req.argc + req.envc; i++) {
		max = i < req.argc ? HOOK_MAX_ARG_LEN : SPAWNER_MAX_VAR;
		room = (size_t)(end - p) < max ? (size_t)(end - p) : max;
		nul = memchr(p, '\0', room);
		if (nul == NULL)
			return errmsg_set(err, -EBADMSG,
					  "request: string %zu is %s", i,
					  room < max ? "cut off" : "too long");
		if (i < req.argc)
			req.argv[i] = p;
		else
			req.envp[i - req.argc] = p;
		p = nul + 1;
	}
	if (p != end)
		return errmsg_set(err, -EBADMSG,
				  "request: %zu bytes after the last string",
				  (size_t)(end - p));
	if (req.argv[0][0] != '/')
		return errmsg_set(err, -EBADMSG,
				  "request: argv[0] is not an absolute path");
	for (i = 0; i < req.envc; i++) {
		bad = spawner_bad_var(req.envp, i);
		if (bad != NULL)
			return errmsg_set(err, -EBADMSG,
					  "request: envp[%zu] %s", i, bad);
	}
	*ret = req;
	return 0;
}

size_t spawner_reply_encode(uint64_t id, int result, const char *text,
			    char *buf)
{
	struct spawner_reply_head h = {SPAWNER_REPLY_MAGIC, result, id};
	char *t = buf + sizeof(h);
	size_t i, n;

	if (result > 0 || result < -4095)
		h.result = result = -EIO;
	if (result == 0 || text == NULL)
		text = "";
	if (result < 0 && text[0] == '\0')
		text = "hook failed";
	n = strnlen(text, ERRMSG_MAX - 1);
	for (i = 0; i < n; i++)
		t[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
	t[n] = '\0';
	memcpy(buf, &h, sizeof(h));
	return sizeof(h) + n + 1;
}

int spawner_reply_decode(const char *msg, size_t len, struct spawner_reply *ret,
			 struct errmsg *err)
{
	struct spawner_reply_head h;
	const char *t = msg + sizeof(h);
	size_t n, i;

	if (len <= sizeof(h) || len > SPAWNER_MAX_REPLY)
		return errmsg_set(err, -EBADMSG, "reply of %zu bytes", len);
	memcpy(&h, msg, sizeof(h));
	if (h.magic != SPAWNER_REPLY_MAGIC)
		return errmsg_set(err, -EBADMSG, "reply: bad magic");
	if (h.id == 0)
		return errmsg_set(err, -EBADMSG, "reply: id 0");
	if (h.result > 0 || h.result < -4095)
		return errmsg_set(err, -EBADMSG, "reply: result %d", h.result);
	n = len - sizeof(h) - 1;
	if (t[n] != '\0' || strlen(t) != n)
		return errmsg_set(err, -EBADMSG,
				  "reply: text not NUL-terminated, or with "
				  "bytes after it");
	for (i = 0; i < n; i++)
		if (t[i] < 0x20 || t[i] >= 0x7f)
			return errmsg_set(err, -EBADMSG,
					  "reply: text byte %zu is not "
					  "printable",
					  i);
	if ((h.result == 0) != (n == 0))
		return errmsg_set(err, -EBADMSG,
				  "reply: result %d with %s text", h.result,
				  n == 0 ? "no" : "a");
	ret->id = h.id;
	ret->result = h.result;
	memcpy(ret->text, t, n + 1);
	return 0;
}

/* ---- the spawner process ---- */

/* The spawner's state; only in the spawner. */
struct spawner_server {
	int sock;
	int cancel[2]; /* cancel[1] is closed when the daemon is gone */
	pthread_mutex_t lock;
	pthread_cond_t idle; /* jobs dropped to 0 */
	unsigned jobs;	     /* runs in progress; protected by lock */
};

/* One request, run on a thread of its own. */
struct spawner_job {
	struct spawner_server *srv;
	struct spawner_request req; /* points into msg */
	char *msg;
};

/* Sends one reply, waiting a while when the socket is full; gives up when
 * the daemon is gone or does not read (its caller timed out). */
static void spawner_send_reply(int sock, uint64_t id, int result,
			       const char *text)
{
	struct pollfd p = {sock, POLLOUT, 0};
	uint64_t deadline = spawner_now() + SPAWNER_REPLY_WAIT_MS * 1000ULL;
	char buf[SPAWNER_MAX_REPLY];
	size_t len = spawner_reply_encode(id, result, text, buf);

	while (send(sock, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		if (errno == EAGAIN && spawner_ms_until(deadline) > 0)
			(void)poll(&p, 1, spawner_ms_until(deadline));
		else if (errno != EINTR)
			return;
	}
}

static void *spawner_job_main(void *arg)
{
	struct spawner_job *job = arg;
	struct spawner_server *s = job->srv;
	struct errmsg err = {{0}};
	int r;

	r = hook_exec_argv(job->req.argv, job->req.envp, job->req.timeout_usec,
			   s->cancel[0], &err);
	spawner_send_reply(s->sock, job->req.id, r, err.text);
	free(job->msg);
	free(job);
	pthread_mutex_lock(&s->lock);
	if (--s->jobs == 0)
		pthread_cond_signal(&s->idle);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* The id to answer a refused request with: 0 (no answer) unless the
 * header is whole. */
static uint64_t spawner_peek_id(const char *buf, size_t n)
{
	struct spawner_head h;

	if (n < sizeof(h))
		return 0;
	memcpy(&h, buf, sizeof(h));
	return h.magic == SPAWNER_REQUEST_MAGIC ? h.id : 0;
}

static int spawner_launch(struct spawner_server *s, struct spawner_job *job,
			  struct errmsg *err)
{
	pthread_attr_t attr;
	pthread_t thread;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	if (s->jobs >= SPAWNER_MAX_JOBS)
		r = errmsg_set(err, -EBUSY,
			       "hook spawner: %d hooks are running already",
			       SPAWNER_MAX_JOBS);
	else
		s->jobs++;
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	job->srv = s;
	(void)pthread_attr_init(&attr);
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&thread, &attr, spawner_job_main, job);
	(void)pthread_attr_destroy(&attr);
	if (r == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	s->jobs--;
	pthread_mutex_unlock(&s->lock);
	return errmsg_set(err, r, "hook spawner: cannot start a thread: %s",
			  strerror(-r));
}

/* Takes one message of n bytes (more than the buffer held when cut). */
static void spawner_take(struct spawner_server *s, const char *buf, size_t n,
			 bool cut)
{
	uint64_t id = spawner_peek_id(buf, n);
	struct spawner_job *job = calloc(1, sizeof(*job));
	struct errmsg err = {{0}};
	int r;

	if (job == NULL || (!cut && (job->msg = malloc(n)) == NULL)) {
		r = errmsg_set(&err, -ENOMEM, "hook spawner: out of memory");
	} else if (cut) {
		r = errmsg_set(&err, -EBADMSG,
			       "hook spawner refused the request: more than "
			       "%zu bytes",
			       (size_t)SPAWNER_MAX_REQUEST);
	} else {
		memcpy(job->msg, buf, n);
		r = spawner_request_decode(job->msg, n, &job->req, &err);
		if (r < 0)
			(void)errmsg_prefix(&err, r,
					    "hook spawner refused the request");
		else
			r = spawner_launch(s, job, &err);
		if (r == 0)
			return;
	}
	log_warnx("event=hook_request_refused id=%llu errno=%d error=\"%s\"",
		  (unsigned long long)id, -r, err.text);
	if (id != 0)
		spawner_send_reply(s->sock, id, r, err.text);
	if (job != NULL)
		free(job->msg);
	free(job);
}

/* Serves requests until the socket reads EOF or fails, or a SIGTERM comes
 * once the daemon (parent) is gone. */
static void spawner_serve(struct spawner_server *s, int sig_fd, pid_t parent)
{
	struct signalfd_siginfo si;
	struct pollfd pfd[2];
	struct msghdr mh;
	struct iovec iov;
	char *buf = malloc(SPAWNER_MAX_REQUEST);
	ssize_t n;

	while (buf != NULL) {
		pfd[0] = (struct pollfd){s->sock, POLLIN, 0};
		pfd[1] = (struct pollfd){sig_fd, POLLIN, 0};
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (sig_fd >= 0 && pfd[1].revents != 0 &&
		    read(sig_fd, &si, sizeof(si)) > 0 && getppid() != parent)
			break;
		if (pfd[0].revents == 0)
			continue;
		iov = (struct iovec){buf, SPAWNER_MAX_REQUEST};
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		n = recvmsg(s->sock, &mh, MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		spawner_take(s, buf, (size_t)n,
			     (mh.msg_flags & MSG_TRUNC) != 0);
	}
	free(buf);
}

/* Default dispositions but for SIGPIPE, SIGINT and SIGHUP (ignored), and
 * only SIGTERM blocked, for the signalfd.  Hooks start from defaults and
 * an empty mask anyway (posix_spawn); SIGCHLD must not be ignored, since
 * each run reaps its hook by pid. */
static void spawner_signals(sigset_t *term)
{
	struct sigaction sa;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigemptyset(term);
	(void)sigaddset(term, SIGTERM);
	(void)sigprocmask(SIG_SETMASK, term, NULL);
}

/* Every capability gone, from every set, and no way to gain one: what the
 * daemon gives up, it must not get back by asking for a program to run. */
static int spawner_drop_privileges(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	int cap;

	/* The bounding set needs CAP_SETPCAP to shrink; without it, with
	 * no_new_privs, execve grants nothing anyway. */
	for (cap = 0; cap < 64; cap++)
		(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

static void spawner_child(int sock, pid_t parent) __attribute__((noreturn));

static void spawner_child(int sock, pid_t parent)
{
	struct spawner_server s;
	char why[SPAWNER_WHY_LEN];
	sigset_t term;
	int sig_fd, r;

	spawner_signals(&term);
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() != parent) /* it died before the line above */
		_exit(0);
	(void)prctl(PR_SET_NAME, "cb-spawner", 0, 0, 0);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (sock != SPAWNER_FD && dup2(sock, SPAWNER_FD) < 0)
		_exit(1);
	if (sock < SPAWNER_FD)
		(void)close(sock);
	(void)fcntl(SPAWNER_FD, F_SETFD, FD_CLOEXEC);
	(void)close_range(SPAWNER_FD + 1, ~0U, 0);
	r = spawner_drop_privileges();
	if (r < 0) {
		(void)snprintf(why, sizeof(why),
			       "hook spawner: cannot drop privileges: %s",
			       strerror(-r));
		spawner_send_reply(SPAWNER_FD, SPAWNER_READY_ID, r, why);
		_exit(1);
	}
	memset(&s, 0, sizeof(s));
	s.sock = SPAWNER_FD;
	if (pipe2(s.cancel, O_CLOEXEC) < 0 ||
	    pthread_mutex_init(&s.lock, NULL) != 0 ||
	    pthread_cond_init(&s.idle, NULL) != 0) {
		spawner_send_reply(SPAWNER_FD, SPAWNER_READY_ID, -ENOMEM,
				   "hook spawner: cannot set up");
		_exit(1);
	}
	sig_fd = signalfd(-1, &term, SFD_CLOEXEC);
	spawner_send_reply(SPAWNER_FD, SPAWNER_READY_ID, 0, "");
	spawner_serve(&s, sig_fd, parent);
	/* The daemon is gone: every run ends (its group killed and reaped)
	 * before the spawner does. */
	(void)close(s.cancel[1]);
	pthread_mutex_lock(&s.lock);
	while (s.jobs > 0)
		pthread_cond_wait(&s.idle, &s.lock);
	pthread_mutex_unlock(&s.lock);
	/* _exit: the copy of the daemon's stdio buffers and atexit handlers
	 * are not this process's to run. */
	_exit(0);
}

/* ---- the daemon's end ---- */

/* A caller waiting for its reply; on its stack, in spawner.waiting. */
struct spawner_wait {
	uint64_t id;
	bool done;
	struct spawner_reply reply;
	struct spawner_wait *next;
};

/* The one spawner of this process (spawner_start's API has no handle:
 * hook_run finds it here).  Every field is protected by lock. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a reply filed, the reader left, broken */
	int fd;		     /* -1: not started */
	pid_t pid;
	bool reading;		   /* a caller reads replies for everyone */
	int broken;		   /* 0, or -errno every call now fails with */
	char why[SPAWNER_WHY_LEN]; /* what broke it */
	unsigned users;		   /* callers inside spawner_exec */
	uint64_t next_id;
	struct spawner_wait *waiting;
} spawner = {.lock = PTHREAD_MUTEX_INITIALIZER,
	     .cond = PTHREAD_COND_INITIALIZER,
	     .fd = -1};
static pthread_once_t spawner_once = PTHREAD_ONCE_INIT;

/* Deadlines are monotonic, so is the condition's clock. */
static void spawner_init_cond(void)
{
	pthread_condattr_t attr;

	if (pthread_condattr_init(&attr) != 0)
		return;
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0) {
		(void)pthread_cond_destroy(&spawner.cond);
		(void)pthread_cond_init(&spawner.cond, &attr);
	}
	(void)pthread_condattr_destroy(&attr);
}

static void spawner_break_locked(int r, const char *why)
{
	if (spawner.broken != 0)
		return;
	spawner.broken = r;
	(void)snprintf(spawner.why, sizeof(spawner.why), "%s", why);
	pthread_cond_broadcast(&spawner.cond);
}

/* Registers w for a reply and returns the socket, or fails when the
 * spawner is stopped or broken. */
static int spawner_join(struct spawner_wait *w, int *fd, const char *name,
			struct errmsg *err)
{
	int r = 0;

	pthread_mutex_lock(&spawner.lock);
	if (spawner.fd < 0)
		r = errmsg_set(err, -EPIPE, "hook %s: hook spawner stopped",
			       name);
	else if (spawner.broken != 0)
		r = errmsg_set(err, spawner.broken, "hook %s: %s", name,
			       spawner.why);
	if (r == 0) {
		w->id = ++spawner.next_id;
		w->next = spawner.waiting;
		spawner.waiting = w;
		spawner.users++;
		*fd = spawner.fd;
	}
	pthread_mutex_unlock(&spawner.lock);
	return r;
}

static void spawner_leave(struct spawner_wait *w)
{
	struct spawner_wait **p;

	pthread_mutex_lock(&spawner.lock);
	for (p = &spawner.waiting; *p != NULL; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	spawner.users--;
	pthread_cond_broadcast(&spawner.cond);
	pthread_mutex_unlock(&spawner.lock);
}

/* Sends the whole request as one message.  A full socket is waited for
 * up to the deadline; EPIPE or ECONNRESET (MSG_NOSIGNAL: no SIGPIPE) mean
 * the spawner is gone. */
static int spawner_send(int fd, const char *msg, size_t len, uint64_t deadline,
			const char *name, struct errmsg *err)
{
	struct pollfd p = {fd, POLLOUT, 0};
	int r;

	while (send(fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EMSGSIZE || errno == ENOBUFS)
			return errmsg_set(err, -EMSGSIZE,
					  "hook %s: a request of %zu bytes is "
					  "more than the hook spawner's socket "
					  "takes",
					  name, len);
		if (errno != EAGAIN) {
			pthread_mutex_lock(&spawner.lock);
			spawner_break_locked(-EPIPE, "hook spawner is gone");
			r = errmsg_set(err, spawner.broken, "hook %s: %s", name,
				       spawner.why);
			pthread_mutex_unlock(&spawner.lock);
			return r;
		}
		if (spawner_ms_until(deadline) == 0)
			return errmsg_set(err, -ETIMEDOUT,
					  "hook %s: the hook spawner takes no "
					  "request",
					  name);
		(void)poll(&p, 1, spawner_ms_until(deadline));
	}
	return 0;
}

/* Reads one reply.  Returns 1 with *rep, 0 when none came by the
 * deadline, or -EPIPE / -EBADMSG with why (the spawner is broken). */
static int spawner_read(int fd, uint64_t deadline, struct spawner_reply *rep,
			char *why, size_t size)
{
	struct pollfd p = {fd, POLLIN, 0};
	char buf[SPAWNER_MAX_REPLY];
	struct errmsg e = {{0}};
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh;
	ssize_t n;

	if (poll(&p, 1, spawner_ms_until(deadline)) <= 0)
		return 0;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	n = recvmsg(fd, &mh, MSG_TRUNC | MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		(void)snprintf(why, size, "hook spawner is gone");
		return -EPIPE;
	}
	/* A cut message has n past the buffer: the length check refuses
	 * it before anything past the buffer is read. */
	if (spawner_reply_decode(buf, (size_t)n, rep, &e) < 0) {
		(void)snprintf(why, size,
			       "hook spawner sent a malformed "
			       "reply (%.120s)",
			       e.text);
		return -EBADMSG;
	}
	return 1;
}

/* Hands rep to the caller waiting for it; a reply nobody waits for (its
 * caller timed out) is dropped. */
static void spawner_file_locked(const struct spawner_reply *rep)
{
	struct spawner_wait *w;

	for (w = spawner.waiting; w != NULL; w = w->next)
		if (w->id == rep->id && !w->done) {
			w->reply = *rep;
			w->done = true;
			return;
		}
}

static void spawner_wait_locked(uint64_t deadline)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline / USEC_PER_SEC);
	ts.tv_nsec = (long)(deadline % USEC_PER_SEC) * 1000;
	(void)pthread_cond_timedwait(&spawner.cond, &spawner.lock, &ts);
}

/* Waits for w's reply: one caller at a time reads the socket and files
 * what it reads; the others sleep until theirs is filed. */
static int spawner_await(struct spawner_wait *w, int fd, uint64_t deadline,
			 const char *name, struct errmsg *err)
{
	char why[SPAWNER_WHY_LEN];
	struct spawner_reply rep;
	int r;

	pthread_mutex_lock(&spawner.lock);
	while (!w->done && spawner.broken == 0 &&
	       spawner_ms_until(deadline) > 0) {
		if (spawner.reading) {
			spawner_wait_locked(deadline);
			continue;
		}
		spawner.reading = true;
		pthread_mutex_unlock(&spawner.lock);
		r = spawner_read(fd, deadline, &rep, why, sizeof(why));
		pthread_mutex_lock(&spawner.lock);
		spawner.reading = false;
		if (r > 0)
			spawner_file_locked(&rep);
		else if (r < 0)
			spawner_break_locked(r, why);
		pthread_cond_broadcast(&spawner.cond);
	}
	if (w->done)
		r = w->reply.result == 0
			? 0
			: errmsg_set(err, w->reply.result, "%s", w->reply.text);
	else if (spawner.broken != 0)
		r = errmsg_set(err, spawner.broken, "hook %s: %s", name,
			       spawner.why);
	else
		r = errmsg_set(err, -ETIMEDOUT,
			       "hook %s: no answer from the hook spawner",
			       name);
	pthread_mutex_unlock(&spawner.lock);
	return r;
}

int spawner_exec(const char *name, char *const *argv, char *const *envp,
		 uint64_t timeout_usec, struct errmsg *err)
{
	uint64_t deadline = spawner_now() + timeout_usec + SPAWNER_GRACE_USEC;
	struct spawner_wait w;
	char *msg = NULL;
	size_t len = 0;
	int fd = -1, r;

	memset(&w, 0, sizeof(w));
	r = spawner_join(&w, &fd, name, err);
	if (r < 0)
		return r;
	r = spawner_request_encode(w.id, timeout_usec, argv, envp, &msg, &len,
				   err);
	if (r < 0)
		(void)errmsg_prefix(err, r, "hook %s", name);
	if (r == 0)
		r = spawner_send(fd, msg, len, deadline, name, err);
	if (r == 0)
		r = spawner_await(&w, fd, deadline, name, err);
	spawner_leave(&w);
	free(msg);
	return r;
}

bool spawner_started(void)
{
	bool started;

	pthread_mutex_lock(&spawner.lock);
	started = spawner.fd >= 0;
	pthread_mutex_unlock(&spawner.lock);
	return started;
}

int spawner_pid(void)
{
	int pid;

	pthread_mutex_lock(&spawner.lock);
	pid = spawner.fd >= 0 ? (int)spawner.pid : 0;
	pthread_mutex_unlock(&spawner.lock);
	return pid;
}

/* Waits for the spawner's first message: confined and serving, or why
 * not.  On failure it is reaped. */
static int spawner_ready(int fd, pid_t pid, struct errmsg *err)
{
	uint64_t deadline = spawner_now() + SPAWNER_START_WAIT_USEC;
	char why[SPAWNER_WHY_LEN];
	struct spawner_reply rep;
	int r;

	do
		r = spawner_read(fd, deadline, &rep, why, sizeof(why));
	while (r == 0 && spawner_ms_until(deadline) > 0);
	if (r > 0 && rep.id == SPAWNER_READY_ID && rep.result == 0)
		return 0;
	if (r > 0 && rep.id == SPAWNER_READY_ID)
		r = errmsg_set(err, rep.result, "%s", rep.text);
	else if (r > 0)
		r = errmsg_set(err, -EBADMSG, "hook spawner: did not start");
	else if (r == 0)
		r = errmsg_set(err, -ETIMEDOUT,
			       "hook spawner: not ready within %llu ms",
			       SPAWNER_START_WAIT_USEC / 1000);
	else
		r = errmsg_set(err, r, "hook spawner: did not start: %s", why);
	(void)kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return r;
}

int spawner_start(struct errmsg *err)
{
	/* Room for the largest request in one message (the kernel caps it
	 * at net.core.wmem_max; what does not fit fails with -EMSGSIZE). */
	int sv[2], size = (int)SPAWNER_MAX_REQUEST, r;
	pid_t parent = getpid(), pid;

	(void)pthread_once(&spawner_once, spawner_init_cond);
	if (spawner_started())
		return errmsg_set(err, -EALREADY,
				  "hook spawner: already running");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return errmsg_set(err, -errno, "hook spawner: socketpair: %s",
				  strerror(errno));
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	pid = fork();
	if (pid < 0) {
		r = -errno;
		(void)close(sv[0]);
		(void)close(sv[1]);
		return errmsg_set(err, r, "hook spawner: fork: %s",
				  strerror(-r));
	}
	if (pid == 0) {
		(void)close(sv[0]);
		spawner_child(sv[1], parent);
	}
	(void)close(sv[1]);
	r = spawner_ready(sv[0], pid, err);
	if (r < 0) {
		(void)close(sv[0]);
		return r;
	}
	pthread_mutex_lock(&spawner.lock);
	spawner.fd = sv[0];
	spawner.pid = pid;
	spawner.broken = 0;
	spawner.why[0] = '\0';
	spawner.reading = false;
	pthread_mutex_unlock(&spawner.lock);
	return 0;
}

void spawner_stop(void)
{
	pid_t pid;
	int fd;

	pthread_mutex_lock(&spawner.lock);
	if (spawner.fd < 0) {
		pthread_mutex_unlock(&spawner.lock);
		return;
	}
	/* New calls fail from now.  Calls still waiting are woken by a
	 * shutdown (EOF for them and for the spawner); without any, the close
	 * below is the EOF, and close is all the daemon's seccomp filter has
	 * to allow. */
	spawner_break_locked(-EPIPE, "hook spawner stopped");
	if (spawner.users > 0)
		(void)shutdown(spawner.fd, SHUT_RDWR);
	while (spawner.users > 0)
		pthread_cond_wait(&spawner.cond, &spawner.lock);
	fd = spawner.fd;
	pid = spawner.pid;
	spawner.fd = -1;
	spawner.pid = 0;
	pthread_mutex_unlock(&spawner.lock);
	(void)close(fd);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}
