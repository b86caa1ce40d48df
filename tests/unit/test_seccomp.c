#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <check.h>

#include "errmsg.h"
#include "secret.h"
#include "seccomp.h"

/* What a child needs that it may not create once filtered: made by the
 * test process before the fork. */
struct fixture {
	char dir[64];
	int tcp_listener; /* 127.0.0.1, listening */
	struct sockaddr_in tcp_addr;
	int udp[2]; /* two bound 127.0.0.1 datagram sockets */
	struct sockaddr_in udp_addr[2];
};

/* Inside a child: ck_assert would report through the test process's
 * pipe, so a failed check writes its line and exits 1. */
#define CHILD_CHECK(c)                                                         \
	do {                                                                   \
		if (!(c))                                                      \
			child_fail(__LINE__, #c);                              \
	} while (0)

static void child_fail(int line, const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "test_seccomp: line %d: %s: %s\n",
			 line, what, strerror(errno));
	ssize_t w = write(2, msg, n > 0 ? (size_t)n : 0);

	(void)w;
	_exit(1);
}

static void child_install(void)
{
	struct errmsg err = {{0}};
	int r = seccomp_install(&err);

	if (r < 0) {
		errno = -r;
		child_fail(__LINE__, err.text);
	}
}

/* Runs fn in a child process (the filter must not reach the test
 * runner) and returns its wait status.  The child leaves with _exit
 * unless fn exits itself. */
static int run_child(void (*fn)(const struct fixture *),
		     const struct fixture *fx)
{
	int status = 0;
	pid_t pid;

	/* Nothing buffered twice when a child exits through exit(). */
	(void)fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fn(fx);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

static void assert_exit_0(int status)
{
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: status 0x%x (signal %d)", status,
		      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void assert_sigsys(int status)
{
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
		      "child: status 0x%x, not killed by SIGSYS", status);
}

static void bind_loopback(int fd, struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);

	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
}

static void fixture_setup(struct fixture *fx)
{
	int i;

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_seccomp.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fx->dir));
	fx->tcp_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fx->tcp_listener, 0);
	bind_loopback(fx->tcp_listener, &fx->tcp_addr);
	ck_assert_int_eq(listen(fx->tcp_listener, 4), 0);
	for (i = 0; i < 2; i++) {
		fx->udp[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fx->udp[i], 0);
		bind_loopback(fx->udp[i], &fx->udp_addr[i]);
	}
}

static void fixture_teardown(struct fixture *fx)
{
	char path[128];

	/* What a child that died half-way left. */
	snprintf(path, sizeof(path), "%s/a", fx->dir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/b", fx->dir);
	(void)unlink(path);
	ck_assert_int_eq(rmdir(fx->dir), 0);
	close(fx->tcp_listener);
	close(fx->udp[0]);
	close(fx->udp[1]);
}

/* ---- allowed work ---- */

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	got_usr1 = sig;
}

static void *worker(void *arg)
{
	struct timespec ts = {0, 1000000};
	unsigned char rnd[16];
	void *big = malloc(4 << 20); /* past the mmap threshold */

	CHILD_CHECK(big != NULL);
	memset(big, 1, 4 << 20);
	free(big);
	CHILD_CHECK(getrandom(rnd, sizeof(rnd), 0) == sizeof(rnd));
	CHILD_CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0);
	return arg;
}

/* The filter reads back as mode 2 with at least one filter. */
static void check_status(const char *path)
{
	char line[256];
	bool mode = false, filters = false;
	FILE *f = fopen(path, "re");

	CHILD_CHECK(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strcmp(line, "Seccomp:\t2\n") == 0)
			mode = true;
		if (strncmp(line, "Seccomp_filters:\t", 17) == 0)
			filters = strtol(line + 17, NULL, 10) >= 1;
	}
	fclose(f);
	CHILD_CHECK(mode);
	CHILD_CHECK(filters);
}

static void do_threads(void)
{
	struct sigaction sa;
	static int cookie;
	pthread_t t;
	void *ret = NULL;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	CHILD_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	CHILD_CHECK(pthread_create(&t, NULL, worker, &cookie) == 0);
	CHILD_CHECK(pthread_join(t, &ret) == 0);
	CHILD_CHECK(ret == &cookie);
	/* The FUSE loop is interrupted so (tgkill). */
	CHILD_CHECK(pthread_kill(pthread_self(), SIGUSR1) == 0);
	CHILD_CHECK(got_usr1 == SIGUSR1);
}

static void do_socketpair(void)
{
	char out[] = "ping", in[8] = "";
	struct iovec iov = {out, sizeof(out)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct iovec back = {in, sizeof(in)};
	struct msghdr rh = {.msg_iov = &back, .msg_iovlen = 1};
	int sv[2];

	CHILD_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) ==
		    0);
	CHILD_CHECK(sendmsg(sv[0], &mh, MSG_NOSIGNAL) == sizeof(out));
	CHILD_CHECK(recvmsg(sv[1], &rh, 0) == sizeof(out));
	CHILD_CHECK(strcmp(in, "ping") == 0);
	close(sv[0]);
	close(sv[1]);
}

/* Like the audit log and the rendered files: write, sync, rename over. */
static void do_files(const char *dir)
{
	char a[128], b[128], buf[16] = "";
	struct stat st;
	int fd;

	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	fd = open(a, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(write(fd, "hello\n", 6) == 6);
	CHILD_CHECK(fsync(fd) == 0);
	CHILD_CHECK(fdatasync(fd) == 0);
	CHILD_CHECK(fstat(fd, &st) == 0 && st.st_size == 6);
	close(fd);
	CHILD_CHECK(rename(a, b) == 0);
	fd = open(b, O_RDONLY | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(read(fd, buf, sizeof(buf)) == 6);
	CHILD_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	close(fd);
	CHILD_CHECK(memcmp(buf, "hello\n", 6) == 0);
	CHILD_CHECK(stat(b, &st) == 0);
	CHILD_CHECK(unlink(b) == 0);
}

static void do_memory(void)
{
	size_t len = 4096;
	struct secret *s = NULL;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHILD_CHECK(p != MAP_FAILED);
	CHILD_CHECK(madvise(p, len, MADV_DONTDUMP) == 0);
	/* Best effort in the broker too (RLIMIT_MEMLOCK). */
	if (mlock(p, len) == 0)
		CHILD_CHECK(munlock(p, len) == 0);
	p[0] = 1;
	CHILD_CHECK(munmap(p, len) == 0);
	/* The broker's own secret pages. */
	CHILD_CHECK(secret_from("hunter2", 7, &s) == 0);
	secret_free(s);
}

/* libcurl and libpq over TCP, with the options they set. */
static void do_tcp(const struct fixture *fx)
{
	int one = 1, err = -1;
	socklen_t len = sizeof(err);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);

	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0);
	CHILD_CHECK(
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) == 0);
	CHILD_CHECK(connect(fd, (const struct sockaddr *)&fx->tcp_addr,
			    sizeof(fx->tcp_addr)) == 0);
	CHILD_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
	CHILD_CHECK(err == 0);
	CHILD_CHECK(send(fd, "x", 1, MSG_NOSIGNAL) == 1);
	close(fd);
}

/* What glibc's resolver does with its UDP socket: sendmmsg, poll,
 * FIONREAD, recvfrom. */
static void do_udp(const struct fixture *fx)
{
	char q[] = "query", in[16];
	struct iovec iov = {q, sizeof(q)};
	struct mmsghdr mm;
	struct pollfd p = {.fd = fx->udp[0], .events = POLLIN};
	int avail = 0, one = 1;

	memset(&mm, 0, sizeof(mm));
	mm.msg_hdr.msg_iov = &iov;
	mm.msg_hdr.msg_iovlen = 1;
	CHILD_CHECK(setsockopt(fx->udp[1], IPPROTO_IP, IP_RECVERR, &one,
			       sizeof(one)) == 0);
	CHILD_CHECK(connect(fx->udp[1],
			    (const struct sockaddr *)&fx->udp_addr[0],
			    sizeof(fx->udp_addr[0])) == 0);
	CHILD_CHECK(sendmmsg(fx->udp[1], &mm, 1, MSG_NOSIGNAL) == 1);
	CHILD_CHECK(poll(&p, 1, 5000) == 1);
	CHILD_CHECK(ioctl(fx->udp[0], FIONREAD, &avail) == 0);
	CHILD_CHECK(avail == (int)sizeof(q));
	CHILD_CHECK(recvfrom(fx->udp[0], in, sizeof(in), 0, NULL, NULL) ==
		    (ssize_t)sizeof(q));
}

/* getaddrinfo with AI_ADDRCONFIG asks netlink which families are
 * configured, and sorts through UDP sockets; the answer does not
 * matter here, getting one without dying does. */
static void do_resolve(void)
{
	struct addrinfo hints, *res = NULL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	if (getaddrinfo("localhost", "443", &hints, &res) == 0)
		freeaddrinfo(res);
}

static void child_allowed_work(const struct fixture *fx)
{
	struct timespec ts = {0, 1000000};
	unsigned char rnd[32];

	child_install();
	check_status("/proc/self/status");
	do_threads();
	do_socketpair();
	do_files(fx->dir);
	do_memory();
	do_tcp(fx);
	do_udp(fx);
	do_resolve();
	CHILD_CHECK(getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) == sizeof(rnd));
	CHILD_CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0);
	CHILD_CHECK(getpid() > 0 && geteuid() == getuid());
}

START_TEST(test_seccomp_allows_the_daemons_work)
{
	struct fixture fx;
	int status;

	fixture_setup(&fx);
	status = run_child(child_allowed_work, &fx);
	fixture_teardown(&fx);
	assert_exit_0(status);
}
END_TEST

/* clone3 answers ENOSYS (glibc then uses clone, which the filter can
 * check); nothing dies. */
static void child_clone3_enosys(const struct fixture *fx)
{
	long r;

	child_install();
	errno = 0;
	r = syscall(SYS_clone3, NULL, 0);
	CHILD_CHECK(r == -1 && errno == ENOSYS);
}

START_TEST(test_seccomp_clone3_is_enosys)
{
	assert_exit_0(run_child(child_clone3_enosys, NULL));
}
END_TEST

/* ---- disallowed calls: each kills the child with SIGSYS ---- */

static void child_mount(const struct fixture *fx)
{
	child_install();
	/* Harmless even if it got through: no such mount point. */
	(void)mount("none", "/nonexistent/test_seccomp", "tmpfs", 0, NULL);
}

static void child_ptrace(const struct fixture *fx)
{
	child_install();
	(void)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
}

static void child_personality(const struct fixture *fx)
{
	child_install();
	(void)personality(0xffffffff);
}

static void child_packet_socket(const struct fixture *fx)
{
	child_install();
	(void)socket(AF_PACKET, SOCK_RAW, 0);
}

static void child_unshare(const struct fixture *fx)
{
	child_install();
	(void)unshare(CLONE_NEWUSER);
}

static void child_execve(const struct fixture *fx)
{
	char *const argv[] = {"true", NULL};

	child_install();
	(void)execve("/bin/true", argv, argv + 1);
}

/* A new process, not a thread (clone without CLONE_THREAD). */
static void child_fork(const struct fixture *fx)
{
	pid_t pid;

	child_install();
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		(void)waitpid(pid, NULL, 0);
}

/* None after start-up (a sanitizer build allows LeakSanitizer's few). */
static void child_prctl(const struct fixture *fx)
{
	child_install();
	(void)prctl(PR_SET_NAME, "renamed", 0, 0, 0);
}

/* A process group (this child leads none: ESRCH if it got through). */
static void child_kill_group(const struct fixture *fx)
{
	child_install();
	(void)kill(-getpid(), SIGUSR1);
}

/* A signal no hook may send: had it passed, SIGKILL, not SIGSYS. */
static void child_kill_signal(const struct fixture *fx)
{
	child_install();
	(void)kill(getpid(), SIGKILL);
}

static void child_ioctl(const struct fixture *fx)
{
	int one = 1;

	child_install();
	(void)ioctl(fx->udp[0], FIONBIO, &one);
}

static void child_sockopt(const struct fixture *fx)
{
	int one = 1;

	child_install();
	(void)setsockopt(fx->udp[0], SOL_SOCKET, SO_REUSEADDR, &one,
			 sizeof(one));
}

static void child_setuid(const struct fixture *fx)
{
	int r;

	child_install();
	r = setuid(getuid());
	(void)r;
}

static void child_setrlimit(const struct fixture *fx)
{
	struct rlimit rl;

	child_install();
	/* Reading is allowed, setting is not. */
	CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

static void (*const disallowed[])(const struct fixture *) = {
    child_mount,      child_ptrace,	 child_personality, child_packet_socket,
    child_unshare,    child_execve,	 child_fork,	    child_prctl,
    child_kill_group, child_kill_signal, child_ioctl,	    child_sockopt,
    child_setuid,     child_setrlimit,
};

START_TEST(test_seccomp_kills_on_disallowed_call)
{
	struct fixture fx;
	int status;

	fixture_setup(&fx);
	status = run_child(disallowed[_i], &fx);
	fixture_teardown(&fx);
	assert_sigsys(status);
}
END_TEST

/* ---- TSYNC: a thread that existed before the install is filtered ---- */

struct tsync {
	int ready[2]; /* the thread: it runs, its path is set */
	int go[2];    /* the main thread: the filter is in */
	char status_path[64];
};

static void *tsync_thread(void *arg)
{
	struct tsync *t = arg;
	char c;

	snprintf(t->status_path, sizeof(t->status_path),
		 "/proc/self/task/%d/status", (int)gettid());
	CHILD_CHECK(write(t->ready[1], "r", 1) == 1);
	CHILD_CHECK(read(t->go[0], &c, 1) == 1 && c == 'f');
	/* Filtered too, though it never asked. */
	(void)personality(0xffffffff);
	return NULL;
}

static void child_tsync(const struct fixture *fx)
{
	struct tsync t;
	pthread_t th;
	char c;

	CHILD_CHECK(pipe2(t.ready, O_CLOEXEC) == 0);
	CHILD_CHECK(pipe2(t.go, O_CLOEXEC) == 0);
	CHILD_CHECK(pthread_create(&th, NULL, tsync_thread, &t) == 0);
	CHILD_CHECK(read(t.ready[0], &c, 1) == 1 && c == 'r');
	child_install();
	check_status(t.status_path);
	CHILD_CHECK(write(t.go[1], "f", 1) == 1);
	(void)pthread_join(th, NULL);
	/* Reached only if the thread's call got through. */
	_exit(3);
}

START_TEST(test_seccomp_applies_to_existing_threads)
{
	assert_sigsys(run_child(child_tsync, NULL));
}
END_TEST

/* ---- a normal exit: atexit handlers run filtered ---- */

/* With threads made after the install; in a sanitizer build this is where
 * LeakSanitizer stops the world (its tracer, ptrace) under the filter. */
static void child_exit(const struct fixture *fx)
{
	pthread_t t;
	void *ret = NULL;

	child_install();
	CHILD_CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
	CHILD_CHECK(pthread_join(t, &ret) == 0);
	exit(0);
}

START_TEST(test_seccomp_exit_is_allowed)
{
	assert_exit_0(run_child(child_exit, NULL));
}
END_TEST

static Suite *seccomp_suite(void)
{
	Suite *s = suite_create("seccomp");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_seccomp_allows_the_daemons_work);
	tcase_add_test(tc, test_seccomp_clone3_is_enosys);
	tcase_add_loop_test(tc, test_seccomp_kills_on_disallowed_call, 0,
			    sizeof(disallowed) / sizeof(disallowed[0]));
	tcase_add_test(tc, test_seccomp_applies_to_existing_threads);
	tcase_add_test(tc, test_seccomp_exit_is_allowed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(seccomp_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
