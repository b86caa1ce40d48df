/* The hook spawner: its wire format refuses every malformed request and
 * reply; the process is confined (no capabilities, no_new_privs, no
 * inherited descriptor, its own signal set-up); hooks from several
 * threads run at once and each gets its own answer; and it ends cleanly,
 * killing its hooks, when stopped or when the daemon dies, while the
 * daemon's calls fail with a clear error, without hanging, when the
 * spawner dies.  The exec behaviour itself (environment, output, timeout,
 * process group) runs through the spawner in test_hooks. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "hooks.h"
#include "spawner.h"

static char dir[] = "/tmp/cb-spawner-XXXXXX";
static char out_path[256], pid_path[256];

static void setup(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/cb-spawner-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(out_path, sizeof(out_path), "%s/out", dir);
	(void)snprintf(pid_path, sizeof(pid_path), "%s/pid", dir);
}

static void teardown(void)
{
	spawner_stop();
	(void)unlink(out_path);
	(void)unlink(pid_path);
	ck_assert_int_eq(rmdir(dir), 0);
}

static void start(void)
{
	struct errmsg err;

	ck_assert_msg(spawner_start(&err) == 0, "%s", err.text);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void exec_hook(struct hook_config *h, const char *timeout, ...)
{
	json_t *obj = json_object(), *argv = json_array();
	struct errmsg err;
	const char *arg;
	va_list ap;

	va_start(ap, timeout);
	while ((arg = va_arg(ap, const char *)) != NULL)
		json_array_append_new(argv, json_string(arg));
	va_end(ap);
	json_object_set_new(obj, "type", json_string("exec"));
	json_object_set_new(obj, "argv", argv);
	json_object_set_new(obj, "timeout", json_string(timeout));
	ck_assert_int_eq(hook_config_parse(obj, "hooks.on_revoke[0]", h, &err),
			 0);
	json_decref(obj);
}

static json_t *event(void)
{
	return json_pack("{s:s, s:s, s:i}", "event", "revoke", "secret", "db",
			 "version", 3);
}

/* The whole file, or "" when it is missing. */
static char *slurp(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re");

	if (f == NULL || getdelim(&text, &len, '\0', f) == -1) {
		free(text);
		text = strdup("");
	}
	if (f != NULL)
		(void)fclose(f);
	return text;
}

/* Waits (at most 5 s) for the hook to write its pid to out_path. */
static pid_t wait_for_pid(const char *path)
{
	uint64_t until = now_usec() + 5000000;
	char *text;
	long v = 0;

	while (v <= 0 && now_usec() < until) {
		text = slurp(path);
		v = strchr(text, '\n') ? strtol(text, NULL, 10) : 0;
		free(text);
		if (v <= 0)
			usleep(10000);
	}
	ck_assert_int_gt(v, 0);
	return (pid_t)v;
}

/* ---- the wire format ---- */

static char *const good_argv[] = {"/bin/sh", "-c", "exit 0", NULL};
static char *const good_envp[] = {"PATH=/usr/bin:/bin",
				  "CREDBROKER_EVENT=revoke",
				  "CREDBROKER_REASON=a b\tc", NULL};

static char *good_request(size_t *len)
{
	struct errmsg err;
	char *msg = NULL;

	ck_assert_msg(spawner_request_encode(7, 5000000, good_argv, good_envp,
					     &msg, len, &err) == 0,
		      "%s", err.text);
	return msg;
}

START_TEST(test_spawner_request_round_trip)
{
	struct spawner_request req;
	struct errmsg err;
	size_t len, i;
	char *msg = good_request(&len);

	ck_assert_int_eq(spawner_request_decode(msg, len, &req, &err), 0);
	ck_assert_uint_eq(req.id, 7);
	ck_assert_uint_eq(req.timeout_usec, 5000000);
	ck_assert_uint_eq(req.argc, 3);
	ck_assert_uint_eq(req.envc, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_str_eq(req.argv[i], good_argv[i]);
		ck_assert_str_eq(req.envp[i], good_envp[i]);
	}
	ck_assert_ptr_null(req.argv[3]);
	ck_assert_ptr_null(req.envp[3]);
	free(msg);
}
END_TEST

/* A good request changed in one place: the header field at off set to
 * val (size bytes), or the message cut or extended by delta, or byte off
 * of the strings overwritten with c. */
static const struct {
	const char *what;
	size_t off, size;
	uint64_t val;
	int delta;
	const char *err;
} bad_requests[] = {
    {"magic", 0, 4, 0x12345678, 0, "bad magic"},
    {"reserved", 12, 4, 1, 0, "bad magic"},
    {"argc 0", 4, 4, 0, 0, "argc 0"},
    {"argc past the cap", 4, 4, HOOK_MAX_ARGS + 1, 0, "argc 33"},
    {"argc more than sent", 4, 4, 4, 0, "string 6 is cut off"},
    {"envc 0", 8, 4, 0, 0, "envc 0"},
    {"envc past the cap", 8, 4, HOOK_MAX_FIELDS + 2, 0, "envc 66"},
    {"envc fewer than sent", 8, 4, 2, 0, "bytes after the last string"},
    {"id 0", 16, 8, 0, 0, "id 0"},
    {"timeout too short", 24, 8, HOOK_MIN_TIMEOUT_USEC - 1, 0, "timeout"},
    {"timeout too long", 24, 8, HOOK_MAX_TIMEOUT_USEC + 1, 0, "timeout"},
    {"header cut", 0, 0, 0, -(int)(SPAWNER_MAX_REQUEST), "bytes, not"},
    {"last NUL missing", 0, 0, 0, -1, "string 5 is cut off"},
    {"a byte after the last NUL", 0, 0, 0, 1, "1 bytes after"},
};

START_TEST(test_spawner_request_decode_refuses)
{
	struct spawner_request req;
	struct errmsg err;
	size_t len, n;
	char *msg = good_request(&len), *bad;
	uint32_t v32;

	n = bad_requests[_i].delta < 0 && (size_t)-bad_requests[_i].delta >= len
		? SPAWNER_HEADER_LEN - 1
		: len + (size_t)(ssize_t)bad_requests[_i].delta;
	bad = calloc(1, len + 1);
	memcpy(bad, msg, len);
	v32 = (uint32_t)bad_requests[_i].val;
	if (bad_requests[_i].size == 4)
		memcpy(bad + bad_requests[_i].off, &v32, 4);
	else if (bad_requests[_i].size == 8)
		memcpy(bad + bad_requests[_i].off, &bad_requests[_i].val, 8);
	memset(&req, 0x5a, sizeof(req));
	ck_assert_int_eq(spawner_request_decode(bad, n, &req, &err), -EBADMSG);
	ck_assert_msg(strstr(err.text, bad_requests[_i].err) != NULL, "%s: %s",
		      bad_requests[_i].what, err.text);
	/* Nothing written on failure. */
	ck_assert_uint_eq(req.id, 0x5a5a5a5a5a5a5a5aULL);
	free(bad);
	free(msg);
}
END_TEST

/* Strings the encoder would refuse, put on the wire by hand: the decoder
 * refuses them just as well. */
static size_t raw_request(char *buf, uint32_t argc, uint32_t envc,
			  const char *strings, size_t slen)
{
	uint32_t head[4] = {SPAWNER_REQUEST_MAGIC, argc, envc, 0};
	uint64_t id = 9, timeout = 1000000;

	memcpy(buf, head, sizeof(head));
	memcpy(buf + 16, &id, 8);
	memcpy(buf + 24, &timeout, 8);
	memcpy(buf + SPAWNER_HEADER_LEN, strings, slen);
	return SPAWNER_HEADER_LEN + slen;
}

#define RAW(s) s, sizeof(s)

START_TEST(test_spawner_request_decode_refuses_strings)
{
	static const struct {
		uint32_t argc, envc;
		const char *strings;
		size_t len;
		const char *err;
	} bad[] = {
	    {1, 1, RAW("bin/sh\0PATH=/bin"), "argv[0] is not an absolute"},
	    {1, 1, RAW("/bin/sh\0HOME=/root"), "envp[0] is not PATH"},
	    {1, 2, RAW("/bin/sh\0PATH=/bin\0LD_PRELOAD=/x.so"),
	     "envp[1] is not CREDBROKER_"},
	    {1, 2, RAW("/bin/sh\0PATH=/bin\0CREDBROKER_=x"),
	     "envp[1] is not CREDBROKER_"},
	    {1, 2, RAW("/bin/sh\0PATH=/bin\0CREDBROKER_a=x"),
	     "envp[1] is not CREDBROKER_"},
	    {1, 2, RAW("/bin/sh\0PATH=/bin\0CREDBROKER_A"), "envp[1] has no"},
	    {1, 3, RAW("/bin/sh\0PATH=/bin\0CREDBROKER_A=1\0CREDBROKER_A=2"),
	     "envp[2] repeats a name"},
	    {1, 2, RAW("/bin/sh\0PATH=/bin\0PATH=/tmp"),
	     "envp[1] is not CREDBROKER_"},
	};
	struct spawner_request req;
	struct errmsg err;
	char buf[256];
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = raw_request(buf, bad[i].argc, bad[i].envc, bad[i].strings,
				bad[i].len);
		ck_assert_int_eq(spawner_request_decode(buf, n, &req, &err),
				 -EBADMSG);
		ck_assert_msg(strstr(err.text, bad[i].err) != NULL,
			      "case %zu: %s", i, err.text);
	}
	/* The same shape, valid, decodes. */
	n = raw_request(buf, 1, 2, RAW("/bin/sh\0PATH=/bin\0CREDBROKER_A_1=x"));
	ck_assert_int_eq(spawner_request_decode(buf, n, &req, &err), 0);
}
END_TEST

START_TEST(test_spawner_request_decode_refuses_long_strings)
{
	struct spawner_request req;
	struct errmsg err;
	size_t n = SPAWNER_HEADER_LEN;
	char *buf = calloc(1, SPAWNER_MAX_REQUEST + 1);
	uint32_t head[4] = {SPAWNER_REQUEST_MAGIC, 1, 1, 0};
	uint64_t id = 9, timeout = 1000000;

	memcpy(buf, head, sizeof(head));
	memcpy(buf + 16, &id, 8);
	memcpy(buf + 24, &timeout, 8);
	/* An argument of HOOK_MAX_ARG_LEN bytes without its NUL. */
	buf[n] = '/';
	memset(buf + n + 1, 'a', HOOK_MAX_ARG_LEN - 1);
	n += HOOK_MAX_ARG_LEN + 1;
	memcpy(buf + n, "PATH=/bin", 10);
	n += 10;
	ck_assert_int_eq(spawner_request_decode(buf, n, &req, &err), -EBADMSG);
	ck_assert_str_eq(err.text, "request: string 0 is too long");
	/* Past the cap on the whole message. */
	ck_assert_int_eq(
	    spawner_request_decode(buf, SPAWNER_MAX_REQUEST + 1, &req, &err),
	    -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.text, "bytes, not"));
	free(buf);
}
END_TEST

START_TEST(test_spawner_request_encode_refuses)
{
	char *too_many[HOOK_MAX_ARGS + 2],
	    *envp_dup[] = {"PATH=/bin", "CREDBROKER_A=1", "CREDBROKER_A=2",
			   NULL};
	char *relative[] = {"bin/sh", NULL}, *none[] = {NULL};
	char *long_arg[] = {"/bin/echo", NULL, NULL};
	struct errmsg err;
	char *msg = NULL;
	size_t len = 0, i;

	for (i = 0; i <= HOOK_MAX_ARGS; i++)
		too_many[i] = "/bin/true";
	too_many[HOOK_MAX_ARGS + 1] = NULL;
	ck_assert_int_eq(spawner_request_encode(1, 1000000, too_many, good_envp,
						&msg, &len, &err),
			 -EINVAL);
	ck_assert_str_eq(err.text, "more than 32 argv");
	ck_assert_int_eq(spawner_request_encode(1, 1000000, none, good_envp,
						&msg, &len, &err),
			 -EINVAL);
	ck_assert_int_eq(spawner_request_encode(1, 1000000, relative, good_envp,
						&msg, &len, &err),
			 -EINVAL);
	ck_assert_int_eq(spawner_request_encode(1, 1000000, good_argv, envp_dup,
						&msg, &len, &err),
			 -EINVAL);
	ck_assert_str_eq(err.text, "envp[2] repeats a name");
	ck_assert_int_eq(spawner_request_encode(0, 1000000, good_argv,
						good_envp, &msg, &len, &err),
			 -EINVAL);
	ck_assert_int_eq(spawner_request_encode(1, 99999, good_argv, good_envp,
						&msg, &len, &err),
			 -EINVAL);
	long_arg[1] = calloc(1, HOOK_MAX_ARG_LEN + 1);
	memset(long_arg[1], 'x', HOOK_MAX_ARG_LEN);
	ck_assert_int_eq(spawner_request_encode(1, 1000000, long_arg, good_envp,
						&msg, &len, &err),
			 -EMSGSIZE);
	free(long_arg[1]);
	/* Nothing written on failure. */
	ck_assert_ptr_null(msg);
	ck_assert_uint_eq(len, 0);
}
END_TEST

START_TEST(test_spawner_reply_round_trip_and_sanitised)
{
	struct spawner_reply rep;
	struct errmsg err;
	char buf[SPAWNER_MAX_REPLY], big[ERRMSG_MAX + 50];
	size_t n;

	n = spawner_reply_encode(3, -EIO, "hook /bin/sh: exited with status 3",
				 buf);
	ck_assert_int_eq(spawner_reply_decode(buf, n, &rep, &err), 0);
	ck_assert_uint_eq(rep.id, 3);
	ck_assert_int_eq(rep.result, -EIO);
	ck_assert_str_eq(rep.text, "hook /bin/sh: exited with status 3");
	/* Success carries no text; failure always some; no control byte
	 * reaches the daemon's log; too long is cut; out of range is EIO. */
	n = spawner_reply_encode(4, 0, "ignored", buf);
	ck_assert_int_eq(spawner_reply_decode(buf, n, &rep, &err), 0);
	ck_assert_str_eq(rep.text, "");
	n = spawner_reply_encode(4, -ENOENT, "", buf);
	ck_assert_int_eq(spawner_reply_decode(buf, n, &rep, &err), 0);
	ck_assert_str_eq(rep.text, "hook failed");
	n = spawner_reply_encode(4, -EIO, "a\nlevel=warn\x1b\xff", buf);
	ck_assert_int_eq(spawner_reply_decode(buf, n, &rep, &err), 0);
	ck_assert_str_eq(rep.text, "a?level=warn??");
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = spawner_reply_encode(4, -EIO, big, buf);
	ck_assert_uint_eq(n, SPAWNER_MAX_REPLY);
	ck_assert_int_eq(spawner_reply_decode(buf, n, &rep, &err), 0);
	ck_assert_uint_eq(strlen(rep.text), ERRMSG_MAX - 1);
	n = spawner_reply_encode(4, 5, "x", buf);
	ck_assert_int_eq(spawner_reply_decode(buf, n, &rep, &err), 0);
	ck_assert_int_eq(rep.result, -EIO);
}
END_TEST

static size_t raw_reply(char *buf, uint32_t magic, int32_t result, uint64_t id,
			const char *text, size_t tlen)
{
	memcpy(buf, &magic, 4);
	memcpy(buf + 4, &result, 4);
	memcpy(buf + 8, &id, 8);
	memcpy(buf + SPAWNER_REPLY_HEADER_LEN, text, tlen);
	return SPAWNER_REPLY_HEADER_LEN + tlen;
}

START_TEST(test_spawner_reply_decode_refuses)
{
	static const struct {
		uint32_t magic;
		int32_t result;
		uint64_t id;
		const char *text;
		size_t len;
		const char *err;
	} bad[] = {
	    {0x1234, -5, 1, RAW("x"), "bad magic"},
	    {SPAWNER_REPLY_MAGIC, -5, 0, RAW("x"), "id 0"},
	    {SPAWNER_REPLY_MAGIC, 1, 1, RAW(""), "result 1"},
	    {SPAWNER_REPLY_MAGIC, -4096, 1, RAW("x"), "result -4096"},
	    {SPAWNER_REPLY_MAGIC, -5, 1, "abc", 3, "not NUL-terminated"},
	    {SPAWNER_REPLY_MAGIC, -5, 1, RAW("a\0b"), "not NUL-terminated"},
	    {SPAWNER_REPLY_MAGIC, -5, 1, RAW("a\nb"), "byte 1 is not"},
	    {SPAWNER_REPLY_MAGIC, -5, 1, RAW("a\x80"), "byte 1 is not"},
	    {SPAWNER_REPLY_MAGIC, 0, 1, RAW("x"), "result 0 with a text"},
	    {SPAWNER_REPLY_MAGIC, -5, 1, RAW(""), "result -5 with no text"},
	    {SPAWNER_REPLY_MAGIC, -5, 1, "", 0, "reply of 16 bytes"},
	};
	struct spawner_reply rep;
	struct errmsg err;
	char buf[SPAWNER_MAX_REPLY + 64];
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = raw_reply(buf, bad[i].magic, bad[i].result, bad[i].id,
			      bad[i].text, bad[i].len);
		rep.id = 42;
		ck_assert_int_eq(spawner_reply_decode(buf, n, &rep, &err),
				 -EBADMSG);
		ck_assert_msg(strstr(err.text, bad[i].err) != NULL,
			      "case %zu: %s", i, err.text);
		ck_assert_uint_eq(rep.id, 42);
	}
	ck_assert_int_eq(spawner_reply_decode(buf, 8, &rep, &err), -EBADMSG);
	memset(buf + SPAWNER_REPLY_HEADER_LEN, 'x', ERRMSG_MAX);
	n = raw_reply(buf, SPAWNER_REPLY_MAGIC, -5, 1, "", 0) + ERRMSG_MAX + 1;
	buf[n - 1] = '\0';
	ck_assert_int_eq(spawner_reply_decode(buf, n, &rep, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.text, "reply of"));
}
END_TEST

/* ---- the process ---- */

/* Field name of /proc/pid/status, e.g. "CapEff", as a number (hex). */
static unsigned long long status_hex(pid_t pid, const char *name)
{
	char path[64], *text, *p, key[32];
	unsigned long long v;

	(void)snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	(void)snprintf(key, sizeof(key), "\n%s:\t", name);
	text = slurp(path);
	p = strstr(text, key);
	ck_assert_msg(p != NULL, "%s: no %s", path, name);
	v = strtoull(p + strlen(key), NULL, 16);
	free(text);
	return v;
}

/* Whether this process has capability cap (effective). */
static bool have_cap(int cap)
{
	return (status_hex(getpid(), "CapEff") >> cap & 1) != 0;
}

START_TEST(test_spawner_lifecycle)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = event();
	char path[64], *comm;
	pid_t pid;

	ck_assert(!spawner_started());
	ck_assert_int_eq(spawner_pid(), 0);
	spawner_stop(); /* not running: nothing to do */
	start();
	pid = spawner_pid();
	ck_assert_int_gt(pid, 0);
	ck_assert(spawner_started());
	(void)snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	comm = slurp(path);
	ck_assert_str_eq(comm, "cb-spawner\n");
	free(comm);
	ck_assert_int_eq(spawner_start(&err), -EALREADY);
	ck_assert_int_eq(spawner_pid(), pid);
	exec_hook(&h, "5s", "/bin/sh", "-c", "exit 4", NULL);
	ck_assert_int_eq(hook_run(&h, e, &err), -EIO);
	ck_assert_str_eq(err.text, "hook /bin/sh: exited with status 4");
	spawner_stop();
	spawner_stop();
	ck_assert(!spawner_started());
	ck_assert_int_eq(spawner_pid(), 0);
	/* Reaped: the pid is no child any more. */
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	/* Local again, and startable again. */
	ck_assert_int_eq(hook_run(&h, e, &err), -EIO);
	start();
	ck_assert_int_ne(spawner_pid(), pid);
	ck_assert_int_eq(hook_run(&h, e, &err), -EIO);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_spawner_process_confined)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = event();
	char path[64], *text;
	sigset_t set;
	pid_t pid;
	int fd;

	/* What the daemon has when it forks it: a descriptor without
	 * O_CLOEXEC, termination signals blocked, SIGPIPE ignored. */
	fd = open("/dev/null", O_RDONLY);
	ck_assert_int_eq(dup2(fd, 100), 100);
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGUSR1);
	ck_assert_int_eq(sigprocmask(SIG_BLOCK, &set, NULL), 0);
	ck_assert(signal(SIGUSR2, SIG_IGN) != SIG_ERR);
	start();
	pid = spawner_pid();
	ck_assert_uint_eq(status_hex(pid, "CapEff"), 0);
	ck_assert_uint_eq(status_hex(pid, "CapPrm"), 0);
	ck_assert_uint_eq(status_hex(pid, "CapInh"), 0);
	ck_assert_uint_eq(status_hex(pid, "CapAmb"), 0);
	if (have_cap(8)) /* CAP_SETPCAP: it could shrink its bounding set */
		ck_assert_uint_eq(status_hex(pid, "CapBnd"), 0);
	ck_assert_uint_eq(status_hex(pid, "NoNewPrivs"), 1);
	/* Only SIGTERM blocked (for its signalfd); SIGHUP, SIGINT, SIGPIPE
	 * ignored; nothing else ignored and no handler. */
	ck_assert_uint_eq(status_hex(pid, "SigBlk") & 0x7fffffffULL,
			  1ULL << (SIGTERM - 1));
	ck_assert_uint_eq(status_hex(pid, "SigIgn") & 0x7fffffffULL,
			  (1ULL << (SIGHUP - 1)) | (1ULL << (SIGINT - 1)) |
			      (1ULL << (SIGPIPE - 1)));
	ck_assert_uint_eq(status_hex(pid, "SigCgt") & 0x7fffffffULL, 0);
	/* Not dumpable: only CAP_SYS_PTRACE may look at its fds. */
	(void)snprintf(path, sizeof(path), "/proc/%d/fd/100", (int)pid);
	ck_assert_int_ne(access(path, F_OK), 0);
	if (have_cap(19)) {
		ck_assert_int_eq(errno, ENOENT);
		(void)snprintf(path, sizeof(path), "/proc/%d/fd/3", (int)pid);
		ck_assert_int_eq(access(path, F_OK), 0);
	}
	/* A hook started there has no capability either. */
	exec_hook(&h, "5s", "/bin/sh", "-c",
		  "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status "
		  "> \"$0\"",
		  out_path, NULL);
	ck_assert_msg(hook_run(&h, e, &err) == 0, "%s", err.text);
	text = slurp(out_path);
	ck_assert_str_eq(text, "CapPrm:\t0000000000000000\n"
			       "CapEff:\t0000000000000000\n"
			       "NoNewPrivs:\t1\n");
	free(text);
	hook_config_free(&h);
	(void)close(fd);
	(void)close(100);
	json_decref(e);
}
END_TEST

struct run {
	pthread_t thread;
	struct hook_config h;
	json_t *event;
	int r;
	struct errmsg err;
	uint64_t took;
};

static void *run_main(void *arg)
{
	struct run *run = arg;
	uint64_t start_usec = now_usec();

	run->r = hook_run(&run->h, run->event, &run->err);
	run->took = now_usec() - start_usec;
	return NULL;
}

static void run_start(struct run *run)
{
	run->event = event();
	ck_assert_int_eq(pthread_create(&run->thread, NULL, run_main, run), 0);
}

static void run_join(struct run *run)
{
	ck_assert_int_eq(pthread_join(run->thread, NULL), 0);
	hook_config_free(&run->h);
	json_decref(run->event);
}

START_TEST(test_spawner_concurrent_hooks_matched_by_id)
{
	struct run runs[4];
	char want[64], secs[8], code[8];
	int i;

	start();
	/* Each hook waits until all four have started (one after the other,
	 * the first would time out), then hook i sleeps 0.8 - 0.2 i s and
	 * exits i: the replies come in the reverse order of the requests. */
	for (i = 0; i < 4; i++) {
		(void)snprintf(secs, sizeof(secs), "%.1f", 0.8 - 0.2 * i);
		(void)snprintf(code, sizeof(code), "%d", i);
		exec_hook(&runs[i].h, "20s", "/bin/sh", "-c",
			  "echo >> \"$0\"; "
			  "while [ \"$(wc -l < \"$0\")\" -lt 4 ]; do "
			  "sleep 0.05; done; sleep \"$1\"; exit \"$2\"",
			  out_path, secs, code, NULL);
		run_start(&runs[i]);
	}
	for (i = 0; i < 4; i++)
		run_join(&runs[i]);
	ck_assert_msg(runs[0].r == 0, "%s", runs[0].err.text);
	for (i = 1; i < 4; i++) {
		ck_assert_int_eq(runs[i].r, -EIO);
		(void)snprintf(want, sizeof(want),
			       "hook /bin/sh: exited with status %d", i);
		ck_assert_str_eq(runs[i].err.text, want);
	}
}
END_TEST

START_TEST(test_spawner_busy_past_max_jobs)
{
	struct run runs[SPAWNER_MAX_JOBS];
	struct hook_config h;
	struct errmsg err;
	json_t *e = event();
	uint64_t start_usec;
	char *text;
	int i;

	start();
	/* Each runs until pid_path exists. */
	for (i = 0; i < SPAWNER_MAX_JOBS; i++) {
		exec_hook(&runs[i].h, "30s", "/bin/sh", "-c",
			  "echo >> \"$0\"; "
			  "while [ ! -e \"$1\" ]; do sleep 0.05; done",
			  out_path, pid_path, NULL);
		run_start(&runs[i]);
	}
	/* Every one of them is running. */
	start_usec = now_usec();
	do {
		usleep(20000);
		text = slurp(out_path);
		i = (int)strlen(text);
		free(text);
	} while (i < SPAWNER_MAX_JOBS && now_usec() - start_usec < 20000000);
	ck_assert_int_eq(i, SPAWNER_MAX_JOBS);
	exec_hook(&h, "5s", "/bin/true", NULL);
	ck_assert_int_eq(hook_run(&h, e, &err), -EBUSY);
	ck_assert_str_eq(err.text, "hook spawner: 32 hooks are running "
				   "already");
	i = open(pid_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(i, 0);
	(void)close(i);
	for (i = 0; i < SPAWNER_MAX_JOBS; i++) {
		run_join(&runs[i]);
		ck_assert_msg(runs[i].r == 0, "%s", runs[i].err.text);
	}
	/* Room again. */
	ck_assert_msg(hook_run(&h, e, &err) == 0, "%s", err.text);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_spawner_killed_mid_run)
{
	struct hook_config h;
	struct errmsg err;
	struct run run;
	json_t *e = event();
	uint64_t start_usec;
	pid_t hook, spawner;
	int st;

	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	start();
	spawner = spawner_pid();
	exec_hook(&run.h, "20s", "/bin/sh", "-c",
		  "echo $$ > \"$0\"; exec sleep 30", out_path, NULL);
	run_start(&run);
	hook = wait_for_pid(out_path);
	ck_assert_int_eq(kill(spawner, SIGKILL), 0);
	start_usec = now_usec();
	run_join(&run);
	/* Soon, not at the hook's 20 s timeout (loose: loaded machines). */
	ck_assert_uint_lt(now_usec() - start_usec, 8000000);
	ck_assert_int_eq(run.r, -EPIPE);
	ck_assert_str_eq(run.err.text, "hook /bin/sh: hook spawner is gone");
	/* Later hooks fail at once, and do not run here instead (the daemon
	 * is sandboxed by then). */
	exec_hook(&h, "5s", "/bin/sh", "-c", "echo ran > \"$0\"", pid_path,
		  NULL);
	ck_assert_int_eq(hook_run(&h, e, &err), -EPIPE);
	ck_assert_str_eq(err.text, "hook /bin/sh: hook spawner is gone");
	ck_assert_int_ne(access(pid_path, F_OK), 0);
	ck_assert(spawner_started());
	spawner_stop(); /* reaps it, does not hang */
	ck_assert_int_eq(waitpid(spawner, NULL, WNOHANG), -1);
	/* A SIGKILLed spawner leaves its hook to its own end; it came back
	 * to this subreaper. */
	ck_assert_int_eq(kill(hook, SIGKILL), 0);
	ck_assert_int_eq(waitpid(hook, &st, 0), hook);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_spawner_stop_kills_running_hooks)
{
	struct run run;
	uint64_t start_usec;
	pid_t hook;

	start();
	exec_hook(&run.h, "20s", "/bin/sh", "-c",
		  "echo $$ > \"$0\"; exec sleep 30", out_path, NULL);
	run_start(&run);
	hook = wait_for_pid(out_path);
	start_usec = now_usec();
	spawner_stop();
	run_join(&run);
	ck_assert_uint_lt(now_usec() - start_usec, 8000000);
	ck_assert_int_eq(run.r, -EPIPE);
	ck_assert_str_eq(run.err.text, "hook /bin/sh: hook spawner stopped");
	/* Killed and reaped by the spawner before it exited. */
	ck_assert_int_eq(kill(hook, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
}
END_TEST

static pid_t read_pid(const char *path)
{
	char *text = slurp(path);
	long v = strtol(text, NULL, 10);

	free(text);
	ck_assert_int_gt(v, 0);
	return (pid_t)v;
}

/* The daemon dies in the middle of a hook: the spawner kills the hook's
 * group and exits 0, whether it sees EOF (_i 0) or, because another
 * process holds the daemon's end open, only the SIGTERM of
 * PR_SET_PDEATHSIG (_i 1). */
START_TEST(test_spawner_daemon_death_kills_hooks)
{
	uint64_t start_usec;
	pid_t daemon, spawner, hook, holder = 0, w;
	int st;

	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	daemon = fork();
	ck_assert_int_ge(daemon, 0);
	if (daemon == 0) {
		struct hook_config h;
		struct errmsg err;
		char text[64];
		json_t *e = event();
		int fd;

		if (spawner_start(&err) < 0)
			_exit(1);
		if (_i == 1 && (holder = fork()) == 0) {
			for (;;)
				pause();
		}
		(void)snprintf(text, sizeof(text), "%d %d\n", spawner_pid(),
			       (int)holder);
		fd = open(pid_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, text, strlen(text)) < 0)
			_exit(1);
		(void)close(fd);
		exec_hook(&h, "20s", "/bin/sh", "-c",
			  "echo $$ > \"$0\"; exec sleep 30", out_path, NULL);
		/* Dies (SIGKILL: no clean-up of any kind) mid-run, once the
		 * hook has started. */
		if (fork() == 0) {
			(void)wait_for_pid(out_path);
			(void)kill(getppid(), SIGKILL);
			_exit(0);
		}
		_exit(hook_run(&h, e, &err) == 0 ? 2 : 3); /* not reached */
	}
	ck_assert_int_eq(waitpid(daemon, &st, 0), daemon);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	start_usec = now_usec();
	{
		char *text = slurp(pid_path), *end;

		spawner = (pid_t)strtol(text, &end, 10);
		holder = (pid_t)strtol(end, NULL, 10);
		free(text);
	}
	hook = read_pid(out_path);
	ck_assert_int_gt(spawner, 0);
	/* The spawner came back to this subreaper: it exits 0 soon (well
	 * before the hook's 20 s). */
	while ((w = waitpid(spawner, &st, WNOHANG)) == 0 &&
	       now_usec() - start_usec < 10000000)
		usleep(10000);
	ck_assert_int_eq(w, spawner);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(kill(hook, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	if (holder > 0) {
		ck_assert_int_eq(kill(holder, SIGKILL), 0);
		ck_assert_int_eq(waitpid(holder, NULL, 0), holder);
	}
}
END_TEST

/* The largest request the hook limits allow fits in one message. */
START_TEST(test_spawner_largest_request)
{
	json_t *obj = json_object(), *argv = json_array(), *e = json_object();
	char *big = malloc(HOOK_MAX_VALUE + 1), key[HOOK_MAX_KEY + 1];
	struct hook_config h;
	struct errmsg err;
	int i;

	memset(big, 'v', HOOK_MAX_VALUE);
	big[HOOK_MAX_VALUE] = '\0';
	json_array_append_new(argv, json_string("/bin/true"));
	for (i = 1; i < HOOK_MAX_ARGS; i++)
		json_array_append_new(argv,
				      json_stringn(big, HOOK_MAX_ARG_LEN - 1));
	json_object_set_new(obj, "type", json_string("exec"));
	json_object_set_new(obj, "argv", argv);
	ck_assert_int_eq(hook_config_parse(obj, "h", &h, &err), 0);
	/* Keys of HOOK_MAX_KEY bytes: "00kkk...", "01kkk...", ... */
	memset(key, 'k', HOOK_MAX_KEY);
	key[HOOK_MAX_KEY] = '\0';
	for (i = 0; i < HOOK_MAX_FIELDS; i++) {
		key[0] = (char)('0' + i / 10);
		key[1] = (char)('0' + i % 10);
		json_object_set_new(e, key, json_string(big));
	}
	start();
	ck_assert_msg(hook_run(&h, e, &err) == 0, "%s", err.text);
	hook_config_free(&h);
	json_decref(obj);
	json_decref(e);
	free(big);
}
END_TEST

static Suite *spawner_suite(void)
{
	Suite *s = suite_create("spawner");
	TCase *wire = tcase_create("wire"), *proc = tcase_create("process");

	tcase_add_test(wire, test_spawner_request_round_trip);
	tcase_add_loop_test(wire, test_spawner_request_decode_refuses, 0,
			    sizeof(bad_requests) / sizeof(bad_requests[0]));
	tcase_add_test(wire, test_spawner_request_decode_refuses_strings);
	tcase_add_test(wire, test_spawner_request_decode_refuses_long_strings);
	tcase_add_test(wire, test_spawner_request_encode_refuses);
	tcase_add_test(wire, test_spawner_reply_round_trip_and_sanitised);
	tcase_add_test(wire, test_spawner_reply_decode_refuses);
	suite_add_tcase(s, wire);
	tcase_add_checked_fixture(proc, setup, teardown);
	tcase_add_test(proc, test_spawner_lifecycle);
	tcase_add_test(proc, test_spawner_process_confined);
	tcase_add_test(proc, test_spawner_concurrent_hooks_matched_by_id);
	tcase_add_test(proc, test_spawner_busy_past_max_jobs);
	tcase_add_test(proc, test_spawner_killed_mid_run);
	tcase_add_test(proc, test_spawner_stop_kills_running_hooks);
	tcase_add_loop_test(proc, test_spawner_daemon_death_kills_hooks, 0, 2);
	tcase_add_test(proc, test_spawner_largest_request);
	suite_add_tcase(s, proc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spawner_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
