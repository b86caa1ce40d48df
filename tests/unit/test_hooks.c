/* Hooks: exec hooks see exactly the event's environment and none of ours,
 * have their output logged within caps, no descriptor leaks into them, and
 * a timeout kills their whole process group; http hooks deliver the event
 * to a real TLS server (tests/sim/https_fixture.py), retry what is worth
 * retrying and nothing else; and the parser names the path of every kind
 * of bad input.  The exec cases run twice: in this process, and through
 * the hook spawner (a child of each forked test, started in the checked
 * fixture, so it belongs to the test process that uses it). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "hooks.h"
#include "http.h"
#include "secret.h"
#include "spawner.h"

#define PATH_PREFIX "hooks.on_revoke[0]"

static int port, closed_port;
static char ca_path[600], other_ca_path[600];
static char dir[] = "/tmp/cb-hooks-XXXXXX";
static char out_path[256], log_path[256];
static int saved_stderr = -1;
static bool with_spawner; /* the exec cases go through the spawner */

static void fixture_env(void)
{
	const char *p = getenv("CB_TEST_HTTPS_PORT");

	ck_assert_msg(p != NULL, "run under tests/sim/https_fixture.py");
	port = (int)strtol(p, NULL, 10);
	closed_port = (int)strtol(getenv("CB_TEST_HTTPS_CLOSED"), NULL, 10);
	(void)snprintf(ca_path, sizeof(ca_path), "%s/ca.pem",
		       getenv("CB_TEST_PKI_DIR"));
	(void)snprintf(other_ca_path, sizeof(other_ca_path), "%s/other-ca.pem",
		       getenv("CB_TEST_PKI_DIR"));
}

static void setup(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/cb-hooks-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(out_path, sizeof(out_path), "%s/out", dir);
	(void)snprintf(log_path, sizeof(log_path), "%s/log", dir);
}

static void teardown(void)
{
	(void)unlink(out_path);
	(void)unlink(log_path);
	ck_assert_int_eq(rmdir(dir), 0);
}

static void setup_spawner(void)
{
	struct errmsg err;

	setup();
	ck_assert_msg(spawner_start(&err) == 0, "%s", err.text);
	ck_assert_int_gt(spawner_pid(), 0);
	with_spawner = true;
}

static void teardown_spawner(void)
{
	spawner_stop();
	ck_assert(!spawner_started());
	teardown();
}

/* A new spawner takes what this process has now (stderr, environment,
 * descriptors, signal mask): the daemon forks it once, at start-up, so a
 * case that changes one of them starts it again to see what a daemon
 * that had them at start-up would do. */
static void respawn(void)
{
	struct errmsg err;

	if (!with_spawner)
		return;
	spawner_stop();
	ck_assert_msg(spawner_start(&err) == 0, "%s", err.text);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The broker logs to stderr; the suite points it at a file meanwhile. */
static void capture_start(void)
{
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(2);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(dup2(fd, 2), 2);
	(void)close(fd);
	/* The spawner logs hook output on its own stderr. */
	respawn();
}

/* Restores stderr and returns what was logged (free it). */
static char *capture_end(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)fflush(stderr);
	ck_assert_int_eq(dup2(saved_stderr, 2), 2);
	(void)close(saved_stderr);
	respawn();
	f = fopen(log_path, "re");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ne(getdelim(&text, &len, '\0', f), -1);
	(void)fclose(f);
	return text;
}

static char *read_file(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re");

	ck_assert_ptr_nonnull(f);
	if (getdelim(&text, &len, '\0', f) == -1) {
		free(text);
		text = strdup("");
	}
	(void)fclose(f);
	return text;
}

/* An exec hook parsed from {"type":"exec","argv":[...],"timeout":...};
 * the varargs are argv, NULL-terminated. */
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
	ck_assert_int_eq(hook_config_parse(obj, PATH_PREFIX, h, &err), 0);
	json_decref(obj);
}

static void http_hook(struct hook_config *h, int p, const char *path,
		      const char *ca, unsigned retries)
{
	char url[256];
	json_t *obj;
	struct errmsg err;

	(void)snprintf(url, sizeof(url), "https://localhost:%d%s", p, path);
	obj =
	    json_pack("{s:s, s:s, s:s, s:s, s:i}", "type", "http", "url", url,
		      "ca_file", ca, "timeout", "2s", "retries", (int)retries);
	ck_assert_ptr_nonnull(obj);
	ck_assert_int_eq(hook_config_parse(obj, PATH_PREFIX, h, &err), 0);
	json_decref(obj);
}

static json_t *revoke_event(void)
{
	json_t *e = json_pack("{s:s, s:s, s:i, s:s, s:b, s:{s:s}}", "event",
			      "revoke", "secret", "db", "version", 3, "reason",
			      "responder \"alice\"\tsaid so", "forced", 1,
			      "labels", "team", "pay");

	ck_assert_ptr_nonnull(e);
	return e;
}

/* ---- exec ---- */

/* The lines an exec hook's output was logged as, in order. */
static size_t logged_lines(const char *log, const char *hook, char **out,
			   size_t max)
{
	char prefix[256];
	const char *p = log, *start, *end;
	size_t n = 0;

	(void)snprintf(prefix, sizeof(prefix),
		       "event=hook_output hook=%s line=\"", hook);
	while ((start = strstr(p, prefix)) != NULL && n < max) {
		start += strlen(prefix);
		end = strstr(start, "\"\n");
		ck_assert_ptr_nonnull(end);
		out[n++] = strndup(start, (size_t)(end - start));
		p = end;
	}
	return n;
}

START_TEST(test_hooks_exec_environment_is_the_event)
{
	static const char *const want[] = {
	    "PATH=/usr/bin:/bin",
	    "CREDBROKER_EVENT=revoke",
	    "CREDBROKER_SECRET=db",
	    "CREDBROKER_VERSION=3",
	    "CREDBROKER_REASON=responder \\\"alice\\\"\\x09said so",
	    "CREDBROKER_FORCED=true",
	    "CREDBROKER_LABELS={\\\"team\\\":\\\"pay\\\"}",
	};
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();
	char *log, *lines[16], *raw;
	size_t i, n;

	ck_assert_int_eq(setenv("CB_TEST_LEAK", "x", 1), 0);
	/* No shell: dash would add PWD. */
	exec_hook(&h, "5s", "/usr/bin/env", NULL);
	capture_start();
	ck_assert_int_eq(hook_run(&h, e, &err), 0);
	log = capture_end();
	n = logged_lines(log, "/usr/bin/env", lines, 16);
	ck_assert_uint_eq(n, 7);
	for (i = 0; i < n; i++) {
		ck_assert_str_eq(lines[i], want[i]);
		free(lines[i]);
	}
	ck_assert_ptr_null(strstr(log, "CB_TEST_LEAK"));
	free(log);
	hook_config_free(&h);

	/* The value itself, unescaped. */
	exec_hook(&h, "5s", "/bin/sh", "-c",
		  "printf '%s|%s' \"$CREDBROKER_REASON\" \"$CB_TEST_LEAK\" "
		  "> \"$0\"",
		  out_path, NULL);
	ck_assert_int_eq(hook_run(&h, e, &err), 0);
	raw = read_file(out_path);
	ck_assert_str_eq(raw, "responder \"alice\"\tsaid so|");
	free(raw);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_exec_output_capped)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();
	char *log, *lines[8], want[256];
	uint64_t start;
	size_t n;

	/* 23 bytes of lines, then 1 MiB without a newline. */
	exec_hook(&h, "20s", "/bin/sh", "-c",
		  "printf 'hello\\n\\033[31mred \"q\"\\n'; echo err >&2; "
		  "head -c 1048576 /dev/zero | tr '\\0' a",
		  NULL);
	capture_start();
	start = now_usec();
	ck_assert_int_eq(hook_run(&h, e, &err), 0);
	ck_assert_uint_lt(now_usec() - start, 10000000);
	log = capture_end();
	n = logged_lines(log, "/bin/sh", lines, 8);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(lines[0], "hello");
	ck_assert_str_eq(lines[1], "\\x1b[31mred \\\"q\\\"");
	ck_assert_str_eq(lines[2], "err");
	memset(want, 'a', HOOK_MAX_LINE);
	memcpy(want + HOOK_MAX_LINE, "...", 4);
	ck_assert_str_eq(lines[3], want);
	while (n > 0)
		free(lines[--n]);
	(void)snprintf(want, sizeof(want),
		       "event=hook_output_dropped hook=/bin/sh bytes=%d\n",
		       23 + 1048576 - HOOK_MAX_OUTPUT);
	ck_assert_ptr_nonnull(strstr(log, want));
	free(log);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_exec_exit_status_and_signal)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();

	exec_hook(&h, "5s", "/bin/sh", "-c", "exit 3", NULL);
	ck_assert_int_eq(hook_run(&h, e, &err), -EIO);
	ck_assert_str_eq(err.text, "hook /bin/sh: exited with status 3");
	hook_config_free(&h);

	exec_hook(&h, "5s", "/bin/sh", "-c", "kill -TERM $$", NULL);
	ck_assert_int_eq(hook_run(&h, e, &err), -EIO);
	ck_assert_str_eq(err.text, "hook /bin/sh: killed by signal 15");
	hook_config_free(&h);

	exec_hook(&h, "5s", "/nonexistent/hook", NULL);
	ck_assert_int_eq(hook_run(&h, e, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.text, "cannot run"));
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_exec_signals_reset)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();
	char *log, *lines[4];
	sigset_t set;
	size_t n;

	/* What the daemon does: termination signals blocked, SIGPIPE
	 * ignored.  The hook must start with neither. */
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	ck_assert_int_eq(sigprocmask(SIG_BLOCK, &set, NULL), 0);
	ck_assert(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
	exec_hook(&h, "5s", "/bin/grep", "-E", "^Sig(Blk|Ign)",
		  "/proc/self/status", NULL);
	capture_start();
	ck_assert_int_eq(hook_run(&h, e, &err), 0);
	log = capture_end();
	n = logged_lines(log, "/bin/grep", lines, 4);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(lines[0], "SigBlk:\\x090000000000000000");
	/* Standard signals only: glibc's posix_spawn leaves its two internal
	 * real-time signals (32, 33) ignored; sigaddset cannot name them,
	 * and glibc sets its handlers for them when it needs them. */
	ck_assert_int_eq(strncmp(lines[1], "SigIgn:\\x09", 11), 0);
	ck_assert_uint_eq(strtoull(lines[1] + 11, NULL, 16) & 0x7fffffffULL, 0);
	free(lines[0]);
	free(lines[1]);
	free(log);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

/* Reads the pids the script wrote, one a line. */
static size_t read_pids(pid_t *pids, size_t max)
{
	char *text = read_file(out_path), *p = text, *end;
	size_t n = 0;
	long v;

	while (n < max && *p != '\0') {
		errno = 0;
		v = strtol(p, &end, 10);
		ck_assert(errno == 0 && end != p && v > 0);
		pids[n++] = (pid_t)v;
		p = end + (*end == '\n');
	}
	free(text);
	return n;
}

/* Orphans of the hook come back to this process (a subreaper), so it can
 * see how each of them ended: all must have been SIGKILLed.  The spawner
 * is a child too, alive: stopped (and reaped) first. */
static void reap_all_killed(void)
{
	pid_t pid;
	int st;

	if (with_spawner)
		spawner_stop();

	while ((pid = waitpid(-1, &st, 0)) > 0) {
		ck_assert(WIFSIGNALED(st));
		ck_assert_int_eq(WTERMSIG(st), SIGKILL);
	}
	ck_assert_int_eq(errno, ECHILD);
}

/* pid came back to this subreaper and was SIGKILLed, or its parent, dying
 * of the same SIGKILL, reaped it first; either way it is gone. */
static void gone_or_killed(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) == pid) {
		ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		return;
	}
	ck_assert_int_eq(errno, ECHILD);
	ck_assert_int_eq(kill(pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
}

START_TEST(test_hooks_exec_timeout_kills_group)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();
	uint64_t start;
	pid_t pids[2];

	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	exec_hook(&h, "300ms", "/bin/sh", "-c",
		  "echo $$ > \"$0\"; sleep 30 & echo $! >> \"$0\"; sleep 30",
		  out_path, NULL);
	start = now_usec();
	ck_assert_int_eq(hook_run(&h, e, &err), -ETIMEDOUT);
	ck_assert_uint_lt(now_usec() - start, 1000000);
	ck_assert_uint_ge(now_usec() - start, 300000);
	ck_assert_str_eq(err.text, "hook /bin/sh: timed out after 300 ms");
	ck_assert_uint_eq(read_pids(pids, 2), 2);
	/* The leader is reaped; the grandchild was killed. */
	ck_assert_int_eq(kill(pids[0], 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	gone_or_killed(pids[1]);
	reap_all_killed();
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_exec_leftovers_killed_at_exit)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();
	uint64_t start;
	pid_t pid;
	int st;

	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	/* The background sleep holds the output pipe open. */
	exec_hook(&h, "10s", "/bin/sh", "-c",
		  "sleep 30 & echo $! > \"$0\"; exit 0", out_path, NULL);
	start = now_usec();
	ck_assert_int_eq(hook_run(&h, e, &err), 0);
	ck_assert_uint_lt(now_usec() - start, 2000000);
	ck_assert_uint_eq(read_pids(&pid, 1), 1);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	reap_all_killed();
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_exec_no_descriptor_leaks)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();
	char script[256];
	int fd, pfd[2];

	fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, on purpose */
	ck_assert_int_ge(fd, 3);
	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_eq(dup2(fd, 100), 100);
	/* A spawner started now inherits them, and must close them. */
	respawn();
	/* The shell has 0, 1, 2 and none of these; stdin is /dev/null. */
	(void)snprintf(
	    script, sizeof(script),
	    "for n in %d %d %d 100; do "
	    "[ -e /proc/$$/fd/$n ] && exit 9; done; "
	    "[ \"$(readlink /proc/$$/fd/0)\" = /dev/null ] || exit 8; "
	    "exit 0",
	    fd, pfd[0], pfd[1]);
	exec_hook(&h, "5s", "/bin/sh", "-c", script, NULL);
	ck_assert_msg(hook_run(&h, e, &err) == 0, "%s", err.text);
	hook_config_free(&h);
	(void)close(fd);
	(void)close(100);
	(void)close(pfd[0]);
	(void)close(pfd[1]);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_exec_bad_events)
{
	struct hook_config h;
	struct errmsg err;
	char big[HOOK_MAX_VALUE + 2], key[16];
	json_t *e;
	int i;

	exec_hook(&h, "5s", "/bin/true", NULL);
	e = json_array();
	ck_assert_int_eq(hook_run(&h, e, &err), -EINVAL);
	json_decref(e);
	e = json_pack("{s:s}", "a-b", "x");
	ck_assert_int_eq(hook_run(&h, e, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.text, "\"a-b\""));
	json_decref(e);
	e = json_pack("{s:s, s:s}", "reason", "x", "REASON", "y");
	ck_assert_int_eq(hook_run(&h, e, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.text, "collide"));
	json_decref(e);
	e = json_pack("{s:s%}", "reason", "a\0b", (size_t)3);
	ck_assert_int_eq(hook_run(&h, e, &err), -EINVAL);
	json_decref(e);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	e = json_pack("{s:s}", "reason", big);
	ck_assert_int_eq(hook_run(&h, e, &err), -EMSGSIZE);
	json_decref(e);
	e = json_object();
	for (i = 0; i <= HOOK_MAX_FIELDS; i++) {
		(void)snprintf(key, sizeof(key), "k%d", i);
		json_object_set_new(e, key, json_integer(i));
	}
	ck_assert_int_eq(hook_run(&h, e, &err), -EMSGSIZE);
	json_decref(e);
	hook_config_free(&h);
}
END_TEST

/* ---- http ---- */

/* GET path from the fixture, as JSON. */
static json_t *fixture_get(const char *path)
{
	struct http_transport *t = NULL;
	struct http_config c;
	struct http_request req;
	struct http_response resp;
	struct errmsg err;
	char url[256];
	size_t len;
	const char *p;
	json_t *j;

	memset(&c, 0, sizeof(c));
	c.connect_timeout_usec = 2000000;
	c.total_timeout_usec = 5000000;
	c.tls.ca_file = ca_path;
	ck_assert_int_eq(http_curl_new(&c, &t, &err), 0);
	(void)snprintf(url, sizeof(url), "https://localhost:%d%s", port, path);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	memset(&resp, 0, sizeof(resp));
	ck_assert_int_eq(t->ops->perform(t, &req, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 200);
	p = secret_expose(resp.body, &len);
	j = json_loadb(p, len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	secret_free(resp.body);
	t->ops->destroy(t);
	return j;
}

static json_int_t hits(const char *path)
{
	json_t *j = fixture_get("/hits");
	json_int_t n = json_integer_value(json_object_get(j, path));

	json_decref(j);
	return n;
}

START_TEST(test_hooks_http_posts_event)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event(), *recs, *rec, *body;

	http_hook(&h, port, "/record", ca_path, 3);
	ck_assert_msg(hook_run(&h, e, &err) == 0, "%s", err.text);
	recs = fixture_get("/records");
	ck_assert_uint_eq(json_array_size(recs), 1);
	rec = json_array_get(recs, 0);
	ck_assert_str_eq(json_string_value(json_object_get(rec, "method")),
			 "POST");
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(rec, "headers"), "content-type")),
			 "application/json");
	body = json_loads(json_string_value(json_object_get(rec, "body")), 0,
			  NULL);
	ck_assert_ptr_nonnull(body);
	ck_assert(json_equal(body, e));
	json_decref(body);
	json_decref(recs);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_http_retries_5xx)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();
	uint64_t start, took;

	/* Two 503s, then 204: backoffs of [0.25, 0.5] s and [0.5, 1] s. */
	http_hook(&h, port, "/flaky/2", ca_path, 3);
	start = now_usec();
	ck_assert_msg(hook_run(&h, e, &err) == 0, "%s", err.text);
	took = now_usec() - start;
	ck_assert_uint_ge(took, 750000);
	ck_assert_uint_lt(took, 4000000);
	ck_assert_int_eq(hits("/flaky/2"), 3);
	hook_config_free(&h);

	/* Retries spent: the last status is the error. */
	http_hook(&h, port, "/flaky/5", ca_path, 1);
	ck_assert_int_eq(hook_run(&h, e, &err), -EIO);
	ck_assert_str_eq(err.text, "hook http: status 503 (after 2 attempts)");
	ck_assert_int_eq(hits("/flaky/5"), 2);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_http_client_error_not_retried)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();

	http_hook(&h, port, "/status/400", ca_path, 3);
	ck_assert_int_eq(hook_run(&h, e, &err), -EIO);
	ck_assert_str_eq(err.text, "hook http: status 400");
	ck_assert_int_eq(hits("/status/400"), 1);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_http_wrong_ca_refused)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();
	uint64_t start;

	http_hook(&h, port, "/flaky/0", other_ca_path, 3);
	start = now_usec();
	ck_assert_int_eq(hook_run(&h, e, &err), -EPERM);
	/* Not retried: one attempt, well within the first backoff. */
	ck_assert_ptr_null(strstr(err.text, "attempts"));
	ck_assert_uint_lt(now_usec() - start, 2000000);
	ck_assert_ptr_nonnull(strstr(err.text, "TLS verification failed"));
	ck_assert_ptr_null(strstr(err.text, "/flaky"));
	ck_assert_int_eq(hits("/flaky/0"), 0);
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

START_TEST(test_hooks_http_closed_port)
{
	struct hook_config h;
	struct errmsg err;
	json_t *e = revoke_event();

	http_hook(&h, closed_port, "/record", ca_path, 1);
	ck_assert_int_eq(hook_run(&h, e, &err), -ECONNREFUSED);
	ck_assert_ptr_nonnull(strstr(err.text, "hook http: "));
	ck_assert_ptr_nonnull(strstr(err.text, "(after 2 attempts)"));
	ck_assert_ptr_null(strstr(err.text, "/record"));
	hook_config_free(&h);
	json_decref(e);
}
END_TEST

/* ---- configuration ---- */

static int parse(const char *text, struct hook_config *h, struct errmsg *err)
{
	/* JSON_ALLOW_NUL: the parser must refuse what jansson would keep. */
	json_t *obj = json_loads(text, JSON_ALLOW_NUL, NULL);
	int r;

	ck_assert_ptr_nonnull(obj);
	r = hook_config_parse(obj, PATH_PREFIX, h, err);
	json_decref(obj);
	return r;
}

/* A child that waits for a signal under a name of its own.  Returns once
 * the name shows, so its handlers are reset too: Check's own SIGTERM
 * handler, inherited, would signal this test's whole process group. */
static pid_t signal_target(const char *name)
{
	char path[64], comm[32], want[32];
	uint64_t until = now_usec() + 5000000;
	pid_t pid = fork();
	ssize_t n = 0;
	int fd;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		sigset_t none;

		/* Check's own SIGTERM handler would take the test down. */
		signal(SIGTERM, SIG_DFL);
		signal(SIGUSR1, SIG_DFL);
		/* Without fork mode an earlier case may have left them
		 * blocked in this process. */
		(void)sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)prctl(PR_SET_NAME, name, 0, 0, 0);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		for (;;)
			pause();
	}
	(void)snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	(void)snprintf(want, sizeof(want), "%s\n", name);
	while (now_usec() < until) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd < 0 ? -1 : read(fd, comm, sizeof(comm) - 1);
		if (fd >= 0)
			(void)close(fd);
		comm[n > 0 ? n : 0] = '\0';
		if (strcmp(comm, want) == 0)
			break;
		usleep(5000);
	}
	ck_assert_str_eq(comm, want);
	return pid;
}

static int killed_by(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

START_TEST(test_hooks_signal_by_name_and_pid_file)
{
	char pid_file[] = "/tmp/cb-hook-pid-XXXXXX", text[32];
	json_t *event = json_pack("{s:s}", "event", "rotate");
	struct hook_config h;
	struct errmsg err;
	pid_t pid;
	int fd;

	pid = signal_target("cb-hook-target");
	ck_assert_int_eq(parse("{\"type\":\"signal\",\"signal\":\"USR1\","
			       "\"process\":\"cb-hook-target\"}",
			       &h, &err),
			 0);
	ck_assert_msg(hook_run(&h, event, &err) == 0, "%s", err.text);
	ck_assert_int_eq(killed_by(pid), SIGUSR1);
	/* Nobody of that name any more. */
	ck_assert_int_eq(hook_run(&h, event, &err), -ESRCH);
	ck_assert_ptr_nonnull(strstr(err.text, "no process named"));
	hook_config_free(&h);
	pid = signal_target("cb-hook-pidf");
	fd = mkstemp(pid_file);
	ck_assert_int_ge(fd, 0);
	(void)snprintf(text, sizeof(text), "%d\n", (int)pid);
	ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	(void)snprintf(text, sizeof(text), "%s", pid_file);
	{
		char cfg[256];

		(void)snprintf(cfg, sizeof(cfg),
			       "{\"type\":\"signal\",\"signal\":\"TERM\","
			       "\"pid_file\":\"%s\"}",
			       pid_file);
		ck_assert_int_eq(parse(cfg, &h, &err), 0);
	}
	ck_assert_msg(hook_run(&h, event, &err) == 0, "%s", err.text);
	ck_assert_int_eq(killed_by(pid), SIGTERM);
	ck_assert_int_eq(unlink(pid_file), 0);
	ck_assert_int_lt(hook_run(&h, event, &err), 0);
	hook_config_free(&h);
	json_decref(event);
}
END_TEST

START_TEST(test_hooks_config_signal_errors)
{
	static const char *const bad[][2] = {
	    {"{\"type\":\"signal\",\"signal\":\"KILL\",\"process\":\"x\"}",
	     ".signal: \"HUP\""},
	    {"{\"type\":\"signal\",\"signal\":\"HUP\"}", "exactly one of"},
	    {"{\"type\":\"signal\",\"signal\":\"HUP\",\"process\":\"x\","
	     "\"pid_file\":\"/p\"}",
	     "exactly one of"},
	    {"{\"type\":\"signal\",\"signal\":\"HUP\",\"pid_file\":\"rel\"}",
	     ".pid_file: must be an absolute path"},
	    {"{\"type\":\"signal\",\"signal\":\"HUP\",\"process\":"
	     "\"a-name-longer-than-15\"}",
	     ".process: a process name"},
	    {"{\"type\":\"signal\",\"signal\":\"HUP\",\"process\":\"x\","
	     "\"argv\":[\"/bin/true\"]}",
	     ".argv: unknown key"},
	};
	struct hook_config h;
	struct errmsg err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(parse(bad[i][0], &h, &err), -EINVAL);
		ck_assert_msg(strstr(err.text, bad[i][1]) != NULL,
			      "case %zu: %s", i, err.text);
	}
}
END_TEST

START_TEST(test_hooks_config_exec)
{
	struct hook_config h;
	struct errmsg err;

	ck_assert_int_eq(
	    parse("{\"type\":\"exec\",\"argv\":[\"/usr/bin/logger\","
		  "\"-t\",\"credbroker\"],\"timeout\":\"5s\"}",
		  &h, &err),
	    0);
	ck_assert_int_eq(h.type, HOOK_EXEC);
	ck_assert_str_eq(h.argv[0], "/usr/bin/logger");
	ck_assert_str_eq(h.argv[1], "-t");
	ck_assert_str_eq(h.argv[2], "credbroker");
	ck_assert_ptr_null(h.argv[3]);
	ck_assert_uint_eq(h.timeout_usec, 5000000);
	hook_config_free(&h);
	ck_assert_ptr_null(h.argv[0]);
	hook_config_free(NULL);
	/* Reusable after free; defaults apply. */
	ck_assert_int_eq(
	    parse("{\"type\":\"exec\",\"argv\":[\"/bin/true\"]}", &h, &err), 0);
	ck_assert_uint_eq(h.timeout_usec, HOOK_DEFAULT_TIMEOUT_USEC);
	ck_assert_str_eq(h.argv[0], "/bin/true");
	ck_assert_ptr_null(h.argv[1]);
	hook_config_free(&h);
}
END_TEST

START_TEST(test_hooks_config_http)
{
	struct hook_config h;
	struct errmsg err;

	ck_assert_int_eq(
	    parse("{\"type\":\"http\",\"url\":\"https://siem.example/hook\","
		  "\"ca_file\":\"/etc/ca.pem\",\"timeout\":\"500ms\","
		  "\"retries\":10}",
		  &h, &err),
	    0);
	ck_assert_int_eq(h.type, HOOK_HTTP);
	ck_assert_str_eq(h.url, "https://siem.example/hook");
	ck_assert_str_eq(h.ca_file, "/etc/ca.pem");
	ck_assert_uint_eq(h.timeout_usec, 500000);
	ck_assert_uint_eq(h.retries, 10);
	ck_assert_ptr_null(h.argv[0]);
	hook_config_free(&h);
	ck_assert_int_eq(
	    parse("{\"type\":\"http\",\"url\":\"https://siem.example/\"}", &h,
		  &err),
	    0);
	ck_assert_str_eq(h.ca_file, "");
	ck_assert_uint_eq(h.retries, HOOK_DEFAULT_RETRIES);
	ck_assert_uint_eq(h.timeout_usec, HOOK_DEFAULT_TIMEOUT_USEC);
	hook_config_free(&h);
}
END_TEST

static const struct {
	const char *json;
	const char *err;
} bad_configs[] = {
    {"[]", PATH_PREFIX ": expected an object"},
    {"{\"argv\":[\"/bin/true\"]}",
     PATH_PREFIX ".type: required, \"exec\", \"http\" or \"signal\""},
    {"{\"type\":\"ftp\",\"url\":\"ftp://x/\"}",
     PATH_PREFIX ".type: required, \"exec\", \"http\" or \"signal\""},
    {"{\"type\":\"exec\",\"argv\":[\"/bin/true\"],\"colour\":1}",
     PATH_PREFIX ".colour: unknown key"},
    {"{\"type\":\"exec\",\"argv\":[\"/bin/true\"],\"url\":\"https://x/\"}",
     PATH_PREFIX ".url: unknown key"},
    {"{\"type\":\"http\",\"url\":\"https://x/\",\"argv\":[\"/bin/true\"]}",
     PATH_PREFIX ".argv: unknown key"},
    {"{\"type\":\"exec\",\"argv\":[\"bin/true\"]}",
     PATH_PREFIX ".argv[0]: must be an absolute path"},
    {"{\"type\":\"exec\",\"argv\":[]}", PATH_PREFIX ".argv: must not be empty"},
    {"{\"type\":\"exec\"}", PATH_PREFIX ".argv: required, an array of strings"},
    {"{\"type\":\"exec\",\"argv\":\"/bin/true\"}",
     PATH_PREFIX ".argv: required, an array of strings"},
    {"{\"type\":\"exec\",\"argv\":[\"/bin/echo\",3]}",
     PATH_PREFIX ".argv[1]: expected a string"},
    {"{\"type\":\"exec\",\"argv\":[\"/bin/echo\",\"a\\u0000b\"]}",
     PATH_PREFIX ".argv[1]: contains a NUL byte"},
    {"{\"type\":\"http\",\"url\":\"http://siem.example/\"}",
     PATH_PREFIX ".url: must be an https:// URL"},
    {"{\"type\":\"http\",\"url\":\"https://\"}",
     PATH_PREFIX ".url: must be an https:// URL"},
    {"{\"type\":\"http\",\"url\":\"https://a b/\"}",
     PATH_PREFIX ".url: contains a space or a control character"},
    {"{\"type\":\"http\"}", PATH_PREFIX ".url: required"},
    {"{\"type\":\"http\",\"url\":\"https://x/\",\"ca_file\":\"ca.pem\"}",
     PATH_PREFIX ".ca_file: must be an absolute path"},
    {"{\"type\":\"exec\",\"argv\":[\"/bin/true\"],\"timeout\":\"5 s\"}",
     PATH_PREFIX ".timeout: expected a duration like \"5s\""},
    {"{\"type\":\"exec\",\"argv\":[\"/bin/true\"],\"timeout\":5}",
     PATH_PREFIX ".timeout: expected a duration like \"5s\""},
    {"{\"type\":\"exec\",\"argv\":[\"/bin/true\"],\"timeout\":\"50ms\"}",
     PATH_PREFIX ".timeout: must be from 100ms to 10m"},
    {"{\"type\":\"http\",\"url\":\"https://x/\",\"timeout\":\"11m\"}",
     PATH_PREFIX ".timeout: must be from 100ms to 10m"},
    {"{\"type\":\"http\",\"url\":\"https://x/\",\"retries\":11}",
     PATH_PREFIX ".retries: expected an integer from 0 to 10"},
    {"{\"type\":\"http\",\"url\":\"https://x/\",\"retries\":-1}",
     PATH_PREFIX ".retries: expected an integer from 0 to 10"},
    {"{\"type\":\"http\",\"url\":\"https://x/\",\"retries\":\"3\"}",
     PATH_PREFIX ".retries: expected an integer from 0 to 10"},
};

START_TEST(test_hooks_config_bad_names_path)
{
	struct hook_config h;
	struct errmsg err;

	memset(&h, 0, sizeof(h));
	h.timeout_usec = 42;
	ck_assert_int_eq(parse(bad_configs[_i].json, &h, &err), -EINVAL);
	ck_assert_str_eq(err.text, bad_configs[_i].err);
	/* Nothing written on failure. */
	ck_assert_uint_eq(h.timeout_usec, 42);
	ck_assert_ptr_null(h.argv[0]);
}
END_TEST

START_TEST(test_hooks_config_too_many_args)
{
	struct hook_config h;
	struct errmsg err;
	json_t *obj = json_pack("{s:s}", "type", "exec"), *argv = json_array();
	int i;

	json_array_append_new(argv, json_string("/bin/echo"));
	for (i = 0; i < HOOK_MAX_ARGS; i++)
		json_array_append_new(argv, json_string("x"));
	json_object_set_new(obj, "argv", argv);
	ck_assert_int_eq(hook_config_parse(obj, PATH_PREFIX, &h, &err),
			 -EINVAL);
	ck_assert_str_eq(err.text, PATH_PREFIX ".argv: more than 32 strings");
	/* Exactly HOOK_MAX_ARGS is fine. */
	json_array_remove(argv, 0);
	json_array_set_new(argv, 0, json_string("/bin/echo"));
	ck_assert_int_eq(hook_config_parse(obj, PATH_PREFIX, &h, &err), 0);
	ck_assert_ptr_nonnull(h.argv[HOOK_MAX_ARGS - 1]);
	ck_assert_ptr_null(h.argv[HOOK_MAX_ARGS]);
	hook_config_free(&h);
	json_decref(obj);
}
END_TEST

static Suite *hooks_suite(void)
{
	Suite *s = suite_create("hooks");
	TCase *ex = tcase_create("exec"), *http = tcase_create("http");
	TCase *cfg = tcase_create("config");
	TCase *sp = tcase_create("exec_via_spawner");

	tcase_add_checked_fixture(ex, setup, teardown);
	tcase_add_test(ex, test_hooks_exec_environment_is_the_event);
	tcase_add_test(ex, test_hooks_exec_output_capped);
	tcase_add_test(ex, test_hooks_exec_exit_status_and_signal);
	tcase_add_test(ex, test_hooks_exec_signals_reset);
	tcase_add_test(ex, test_hooks_exec_timeout_kills_group);
	tcase_add_test(ex, test_hooks_exec_leftovers_killed_at_exit);
	tcase_add_test(ex, test_hooks_exec_no_descriptor_leaks);
	tcase_add_test(ex, test_hooks_exec_bad_events);
	suite_add_tcase(s, ex);
	tcase_add_checked_fixture(sp, setup_spawner, teardown_spawner);
	tcase_add_test(sp, test_hooks_exec_environment_is_the_event);
	tcase_add_test(sp, test_hooks_exec_output_capped);
	tcase_add_test(sp, test_hooks_exec_exit_status_and_signal);
	tcase_add_test(sp, test_hooks_exec_signals_reset);
	tcase_add_test(sp, test_hooks_exec_timeout_kills_group);
	tcase_add_test(sp, test_hooks_exec_leftovers_killed_at_exit);
	tcase_add_test(sp, test_hooks_exec_no_descriptor_leaks);
	tcase_add_test(sp, test_hooks_exec_bad_events);
	suite_add_tcase(s, sp);
	tcase_add_unchecked_fixture(http, fixture_env, NULL);
	tcase_add_test(http, test_hooks_http_posts_event);
	tcase_add_test(http, test_hooks_http_retries_5xx);
	tcase_add_test(http, test_hooks_http_client_error_not_retried);
	tcase_add_test(http, test_hooks_http_wrong_ca_refused);
	tcase_add_test(http, test_hooks_http_closed_port);
	suite_add_tcase(s, http);
	tcase_add_test(cfg, test_hooks_config_exec);
	tcase_add_test(cfg, test_hooks_config_signal_errors);
	tcase_add_test(ex, test_hooks_signal_by_name_and_pid_file);
	tcase_add_test(cfg, test_hooks_config_http);
	tcase_add_loop_test(cfg, test_hooks_config_bad_names_path, 0,
			    sizeof(bad_configs) / sizeof(bad_configs[0]));
	tcase_add_test(cfg, test_hooks_config_too_many_args);
	suite_add_tcase(s, cfg);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hooks_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
