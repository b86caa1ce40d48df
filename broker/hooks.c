/* Revocation and rotation hooks (see hooks.h).
 *
 * exec hooks are started with posix_spawn: it is safe in a threaded
 * process (nothing runs between fork and exec but what its file actions
 * and attributes say), it reports exec failures as its return value, and
 * it can reset the signal mask the daemon's threads block and the SIGPIPE
 * the daemon ignores.  The child leads its own process group so a timeout
 * (or the leader's exit) can kill everything it started with one kill().
 * The leader is watched with waitid(WNOWAIT) so the group is killed while
 * the leader is still a zombie: its pid, and so the group id, cannot have
 * been reused yet.
 *
 * With the spawner running (spawner.h) the same runner, hook_exec_argv,
 * runs there: hook_exec here only builds the environment and hands argv,
 * environment and timeout over.  Nothing secret goes with them: the
 * environment is made of the event's fields, and events carry names,
 * versions, lease ids and reasons, never a secret value (hooks.h).
 *
 * http hooks make a transport per run: hooks are rare, and a short-lived
 * handle keeps nothing between events. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "hooks.h"
#include "http.h"
#include "log.h"
#include "secret.h"
#include "spawner.h"

#define HOOK_PATH_LEN 256  /* a JSON path in a message */
#define HOOK_SHOWN_LEN 128 /* argv[0] or a key quoted in a message */
#define HOOK_ENV_PATH "PATH=/usr/bin:/bin"
#define HOOK_TICK_MS 20		  /* polling for exit without a pidfd */
#define HOOK_DRAIN_USEC 200000ULL /* output read after the leader exits */
#define HOOK_BACKOFF_FIRST_USEC 500000ULL
#define HOOK_BACKOFF_MAX_USEC (5ULL * 1000000)

static uint64_t hook_now(void)
{
	return clock_mono(clock_system());
}

/* Copies len bytes of s for a message or a log line: quotes and
 * backslashes escaped, bytes outside printable ASCII as \xNN, so hook
 * output cannot forge a log field or a line.  out needs 4 * len + 1. */
static void hook_escape(const char *s, size_t len, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, n = 0;
	unsigned char c;

	for (i = 0; i < len && n + 5 <= size; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c >= 0x20 && c < 0x7f) {
			out[n++] = (char)c;
		} else {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
}

/* For messages: at most HOOK_SHOWN_LEN bytes of s, escaped. */
static void hook_show(const char *s, char *out, size_t size)
{
	size_t len = strlen(s);

	hook_escape(s, len < HOOK_SHOWN_LEN ? len : HOOK_SHOWN_LEN, out, size);
}

/* ---- configuration ---- */

static void hook_path(char *buf, size_t size, const char *parent,
		      const char *key)
{
	char shown[HOOK_SHOWN_LEN * 4 + 1];

	hook_show(key, shown, sizeof(shown));
	/* Only for messages: a cut path is marked, not an error. */
	if (snprintf(buf, size, "%s.%s", parent, shown) >= (int)size &&
	    size >= 4)
		memcpy(buf + size - 4, "...", 4);
}

static int hook_check_keys(const json_t *obj, const char *path,
			   const char *const *allowed, struct errmsg *err)
{
	char p[HOOK_PATH_LEN];
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)obj, key, v)
	{
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] != NULL)
			continue;
		hook_path(p, sizeof(p), path, key);
		return errmsg_set(err, -EINVAL, "%s: unknown key", p);
	}
	return 0;
}

static int hook_parse_type(const json_t *v, const char *path,
			   enum hook_type *ret, struct errmsg *err)
{
	const char *s = json_string_value(v);

	if (s != NULL && strcmp(s, "exec") == 0)
		*ret = HOOK_EXEC;
	else if (s != NULL && strcmp(s, "http") == 0)
		*ret = HOOK_HTTP;
	else if (s != NULL && strcmp(s, "signal") == 0)
		*ret = HOOK_SIGNAL;
	else
		return errmsg_set(err, -EINVAL,
				  "%s.type: required, \"exec\", \"http\" or "
				  "\"signal\"",
				  path);
	return 0;
}

/* A string without NUL bytes, shorter than size. */
static int hook_get_string(const json_t *v, const char *path, size_t size,
			   const char **ret, struct errmsg *err)
{
	if (!json_is_string(v))
		return errmsg_set(err, -EINVAL, "%s: expected a string", path);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return errmsg_set(err, -EINVAL, "%s: contains a NUL byte",
				  path);
	if (json_string_length(v) >= size)
		return errmsg_set(err, -EINVAL, "%s: longer than %zu bytes",
				  path, size - 1);
	*ret = json_string_value(v);
	return 0;
}

/* Copies argv into h (owned strings); on failure the caller frees what
 * was copied. */
static int hook_parse_argv(const json_t *v, const char *path,
			   struct hook_config *h, struct errmsg *err)
{
	char p[HOOK_PATH_LEN];
	const char *s;
	size_t i, n;
	int r;

	if (!json_is_array(v))
		return errmsg_set(err, -EINVAL,
				  "%s.argv: required, an array of strings",
				  path);
	n = json_array_size(v);
	if (n == 0)
		return errmsg_set(err, -EINVAL, "%s.argv: must not be empty",
				  path);
	if (n > HOOK_MAX_ARGS)
		return errmsg_set(err, -EINVAL, "%s.argv: more than %d strings",
				  path, HOOK_MAX_ARGS);
	for (i = 0; i < n; i++) {
		(void)snprintf(p, sizeof(p), "%s.argv[%zu]", path, i);
		r = hook_get_string(json_array_get(v, i), p, HOOK_MAX_ARG_LEN,
				    &s, err);
		if (r < 0)
			return r;
		/* No PATH search: what runs is what the config names. */
		if (i == 0 && s[0] != '/')
			return errmsg_set(err, -EINVAL,
					  "%s: must be an absolute path", p);
		h->argv[i] = strdup(s);
		if (h->argv[i] == NULL)
			return errmsg_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int hook_parse_url(const json_t *v, const char *path,
			  struct hook_config *h, struct errmsg *err)
{
	char p[HOOK_PATH_LEN];
	const char *s;
	size_t i;
	int r;

	(void)snprintf(p, sizeof(p), "%s.url", path);
	if (v == NULL)
		return errmsg_set(err, -EINVAL, "%s: required", p);
	r = hook_get_string(v, p, sizeof(h->url), &s, err);
	if (r < 0)
		return r;
	if (strncasecmp(s, "https://", 8) != 0 || s[8] == '\0')
		return errmsg_set(err, -EINVAL, "%s: must be an https:// URL",
				  p);
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return errmsg_set(err, -EINVAL,
					  "%s: contains a space or a control "
					  "character",
					  p);
	memcpy(h->url, s, strlen(s) + 1);
	return 0;
}

static int hook_parse_ca_file(const json_t *v, const char *path,
			      struct hook_config *h, struct errmsg *err)
{
	char p[HOOK_PATH_LEN];
	const char *s;
	int r;

	if (v == NULL)
		return 0;
	(void)snprintf(p, sizeof(p), "%s.ca_file", path);
	r = hook_get_string(v, p, sizeof(h->ca_file), &s, err);
	if (r == 0 && s[0] != '/')
		r = errmsg_set(err, -EINVAL, "%s: must be an absolute path", p);
	if (r == 0)
		memcpy(h->ca_file, s, strlen(s) + 1);
	return r;
}

static int hook_parse_retries(const json_t *v, const char *path, unsigned *ret,
			      struct errmsg *err)
{
	json_int_t n;

	if (v == NULL)
		return 0;
	n = json_is_integer(v) ? json_integer_value(v) : -1;
	if (n < 0 || n > HOOK_MAX_RETRIES)
		return errmsg_set(err, -EINVAL,
				  "%s.retries: expected an integer from 0 to "
				  "%d",
				  path, HOOK_MAX_RETRIES);
	*ret = (unsigned)n;
	return 0;
}

/* signal (HUP, USR1, USR2, TERM) and exactly one of process, pid_file. */
static int hook_parse_signal(const json_t *obj, const char *path,
			     struct hook_config *h, struct errmsg *err)
{
	static const struct {
		const char *name;
		int sig;
	} sigs[] = {{"HUP", SIGHUP},
		    {"USR1", SIGUSR1},
		    {"USR2", SIGUSR2},
		    {"TERM", SIGTERM}};
	const char *name = json_string_value(json_object_get(obj, "signal"));
	const char *proc = json_string_value(json_object_get(obj, "process"));
	const char *pid = json_string_value(json_object_get(obj, "pid_file"));
	size_t i;

	for (i = 0; name != NULL && i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcmp(name, sigs[i].name) == 0)
			h->signal = sigs[i].sig;
	if (h->signal == 0)
		return errmsg_set(err, -EINVAL,
				  "%s.signal: \"HUP\", \"USR1\", \"USR2\" "
				  "or \"TERM\"",
				  path);
	if ((proc == NULL) == (pid == NULL))
		return errmsg_set(err, -EINVAL,
				  "%s: exactly one of \"process\" and "
				  "\"pid_file\"",
				  path);
	if (proc != NULL && (proc[0] == '\0' || strlen(proc) >= 16))
		return errmsg_set(err, -EINVAL,
				  "%s.process: a process name of 1 to 15 "
				  "characters",
				  path);
	if (pid != NULL && (pid[0] != '/' || strlen(pid) >= PATH_MAX))
		return errmsg_set(err, -EINVAL,
				  "%s.pid_file: must be an absolute path",
				  path);
	(void)snprintf(h->process, sizeof(h->process), "%s", proc ? proc : "");
	(void)snprintf(h->pid_file, sizeof(h->pid_file), "%s", pid ? pid : "");
	return 0;
}

int hook_config_parse(const json_t *obj, const char *path,
		      struct hook_config *out, struct errmsg *err)
{
	static const char *const exec_keys[] = {"type", "argv", "timeout",
						NULL};
	static const char *const http_keys[] = {"type",	   "url",     "ca_file",
						"timeout", "retries", NULL};
	static const char *const signal_keys[] = {"type", "signal", "process",
						  "pid_file", NULL};
	struct hook_config h;
	int r;

	memset(&h, 0, sizeof(h));
	h.timeout_usec = HOOK_DEFAULT_TIMEOUT_USEC;
	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "%s: expected an object", path);
	r = hook_parse_type(json_object_get(obj, "type"), path, &h.type, err);
	if (r == 0)
		r = hook_check_keys(obj, path,
				    h.type == HOOK_EXEC	  ? exec_keys
				    : h.type == HOOK_HTTP ? http_keys
							  : signal_keys,
				    err);
	if (r == 0)
		r = config_duration_field(
		    obj, path, "timeout", HOOK_MIN_TIMEOUT_USEC,
		    HOOK_MAX_TIMEOUT_USEC, &h.timeout_usec, err);
	if (r == 0 && h.type == HOOK_EXEC)
		r = hook_parse_argv(json_object_get(obj, "argv"), path, &h,
				    err);
	if (r == 0 && h.type == HOOK_SIGNAL)
		r = hook_parse_signal(obj, path, &h, err);
	if (r == 0 && h.type == HOOK_HTTP) {
		h.retries = HOOK_DEFAULT_RETRIES;
		r = hook_parse_url(json_object_get(obj, "url"), path, &h, err);
		if (r == 0)
			r = hook_parse_ca_file(json_object_get(obj, "ca_file"),
					       path, &h, err);
		if (r == 0)
			r = hook_parse_retries(json_object_get(obj, "retries"),
					       path, &h.retries, err);
	}
	if (r < 0) {
		hook_config_free(&h);
		return r;
	}
	*out = h;
	return 0;
}

void hook_config_free(struct hook_config *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < HOOK_MAX_ARGS; i++) {
		free(h->argv[i]);
		h->argv[i] = NULL;
	}
}

/* ---- the exec hook's environment ---- */

/* PATH, one variable per event field, the NULL execve wants; malloc'd
 * before the spawn, since nothing may allocate in the child. */
struct hook_env {
	char *vars[HOOK_MAX_FIELDS + 2];
	size_t count;
};

static void hook_env_free(struct hook_env *env)
{
	size_t i;

	for (i = 0; i < env->count; i++)
		free(env->vars[i]);
	env->count = 0;
}

/* "CREDBROKER_KEY=" for key into buf; keys must already be valid names so
 * that two fields cannot end up as one variable by some mapping. */
static int hook_env_name(const char *key, char *buf, size_t size,
			 struct errmsg *err)
{
	char shown[HOOK_SHOWN_LEN * 4 + 1];
	size_t i, len = strlen(key), pre = strlen(HOOK_ENV_PREFIX);

	if (len == 0 || len > HOOK_MAX_KEY ||
	    strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789_") != len ||
	    pre + len + 2 > size) {
		hook_show(key, shown, sizeof(shown));
		return errmsg_set(err, -EINVAL,
				  "event key \"%s\" is not [A-Za-z0-9_]{1,%d}",
				  shown, HOOK_MAX_KEY);
	}
	memcpy(buf, HOOK_ENV_PREFIX, pre);
	for (i = 0; i < len; i++)
		buf[pre + i] = (key[i] >= 'a' && key[i] <= 'z')
				   ? (char)(key[i] - 'a' + 'A')
				   : key[i];
	memcpy(buf + pre + len, "=", 2);
	return 0;
}

/* A field's value as the environment carries it: strings as they are,
 * anything else as compact JSON ("3", "true", "{\"a\":1}"). */
static int hook_env_value(const json_t *v, const char *name, char *buf,
			  size_t size, const char **ret, size_t *len,
			  struct errmsg *err)
{
	if (json_is_string(v)) {
		*ret = json_string_value(v);
		*len = json_string_length(v);
		if (strlen(*ret) != *len)
			return errmsg_set(err, -EINVAL,
					  "event field %.*s holds a NUL byte",
					  (int)strlen(name) - 1, name);
	} else {
		*ret = buf;
		*len = json_dumpb(v, buf, size, JSON_COMPACT | JSON_ENCODE_ANY);
		if (*len == 0)
			return errmsg_set(err, -EINVAL,
					  "event field %.*s cannot be encoded",
					  (int)strlen(name) - 1, name);
	}
	if (*len > HOOK_MAX_VALUE)
		return errmsg_set(err, -EMSGSIZE,
				  "event field %.*s is longer than %d bytes",
				  (int)strlen(name) - 1, name, HOOK_MAX_VALUE);
	return 0;
}

static int hook_env_add(struct hook_env *env, const char *key, const json_t *v,
			struct errmsg *err)
{
	char name[sizeof(HOOK_ENV_PREFIX) + HOOK_MAX_KEY + 1];
	char buf[HOOK_MAX_VALUE + 1];
	const char *val = NULL;
	size_t i, nlen, vlen = 0;
	char *var;
	int r;

	r = hook_env_name(key, name, sizeof(name), err);
	if (r == 0)
		r = hook_env_value(v, name, buf, sizeof(buf), &val, &vlen, err);
	if (r < 0)
		return r;
	nlen = strlen(name);
	for (i = 1; i < env->count; i++)
		if (strncmp(env->vars[i], name, nlen) == 0)
			return errmsg_set(err, -EINVAL,
					  "event keys collide as %.*s",
					  (int)nlen - 1, name);
	var = malloc(nlen + vlen + 1);
	if (var == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	memcpy(var, name, nlen);
	memcpy(var + nlen, val, vlen);
	var[nlen + vlen] = '\0';
	env->vars[env->count++] = var;
	return 0;
}

static int hook_env_build(const json_t *event, struct hook_env *env,
			  struct errmsg *err)
{
	const char *key;
	json_t *v;
	int r = 0;

	if (!json_is_object(event))
		return errmsg_set(err, -EINVAL, "event is not a JSON object");
	if (json_object_size(event) > HOOK_MAX_FIELDS)
		return errmsg_set(err, -EMSGSIZE,
				  "event has more than %d fields",
				  HOOK_MAX_FIELDS);
	env->vars[0] = strdup(HOOK_ENV_PATH);
	if (env->vars[0] == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	env->count = 1;
	json_object_foreach((json_t *)event, key, v)
	{
		r = hook_env_add(env, key, v, err);
		if (r < 0)
			break;
	}
	if (r < 0)
		hook_env_free(env);
	env->vars[env->count] = NULL;
	return r;
}

/* ---- the exec hook's output ---- */

/* Output is logged a line at a time; what runs past the caps is counted
 * and reported once, and never blocks the child (the pipe is drained). */
struct hook_output {
	char name[HOOK_SHOWN_LEN * 4 + 1]; /* argv[0], escaped */
	char line[HOOK_MAX_LINE];
	size_t len;	/* bytes in line */
	bool cut;	/* the line ran past HOOK_MAX_LINE */
	size_t seen;	/* bytes taken, at most HOOK_MAX_OUTPUT */
	size_t dropped; /* bytes past HOOK_MAX_OUTPUT */
};

static void hook_output_flush(struct hook_output *o)
{
	char esc[HOOK_MAX_LINE * 4 + 1];

	if (o->len > 0 && o->line[o->len - 1] == '\r')
		o->len--;
	if (o->len > 0 || o->cut) {
		hook_escape(o->line, o->len, esc, sizeof(esc));
		log_info("event=hook_output hook=%s line=\"%s%s\"", o->name,
			 esc, o->cut ? "..." : "");
	}
	o->len = 0;
	o->cut = false;
}

static void hook_output_feed(struct hook_output *o, const char *buf, size_t n)
{
	size_t i, take = n;

	if (take > HOOK_MAX_OUTPUT - o->seen)
		take = HOOK_MAX_OUTPUT - o->seen;
	o->dropped += n - take;
	o->seen += take;
	for (i = 0; i < take; i++) {
		if (buf[i] == '\n')
			hook_output_flush(o);
		else if (o->len < HOOK_MAX_LINE)
			o->line[o->len++] = buf[i];
		else
			o->cut = true;
	}
}

static void hook_output_finish(struct hook_output *o)
{
	hook_output_flush(o);
	if (o->dropped > 0)
		log_info("event=hook_output_dropped hook=%s bytes=%zu", o->name,
			 o->dropped);
}

/* ---- running an exec hook ---- */

/* The child while its output is read. */
struct hook_proc {
	pid_t pid;
	int out_fd;	/* the pipe's read end; -1 after EOF */
	int pid_fd;	/* wakes poll when the leader exits; -1: ticks */
	int cancel_fd;	/* ends the run when readable; -1: none */
	bool exited;	/* the leader is a zombie and its group killed */
	bool timed_out; /* the deadline passed while it ran */
	bool cancelled; /* cancel_fd fired while it ran */
};

static int hook_spawn(char *const *argv, char *const *envp, int out_fd,
		      pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int r;

	(void)sigemptyset(&none);
	(void)sigfillset(&all);
	r = posix_spawn_file_actions_init(&fa);
	if (r != 0)
		return -r;
	r = posix_spawnattr_init(&attr);
	if (r != 0) {
		(void)posix_spawn_file_actions_destroy(&fa);
		return -r;
	}
	r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
	/* Belt and braces: the broker opens everything O_CLOEXEC. */
	if (r == 0)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (r == 0)
		r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
							POSIX_SPAWN_SETSIGMASK |
							POSIX_SPAWN_SETSIGDEF);
	if (r == 0)
		r = posix_spawnattr_setpgroup(&attr, 0);
	if (r == 0)
		r = posix_spawnattr_setsigmask(&attr, &none);
	if (r == 0)
		r = posix_spawnattr_setsigdefault(&attr, &all);
	if (r == 0)
		r = posix_spawn(pid, argv[0], &fa, &attr, argv, envp);
	(void)posix_spawnattr_destroy(&attr);
	(void)posix_spawn_file_actions_destroy(&fa);
	return -r;
}

/* True once the leader has exited (left a zombie, not reaped).  ECHILD
 * (someone else reaped it) also ends the wait; the reap then says so. */
static bool hook_leader_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno != EINTR;
	return si.si_pid == pid;
}

static void hook_read(struct hook_proc *p, struct hook_output *o)
{
	char buf[4096];
	ssize_t n = read(p->out_fd, buf, sizeof(buf));

	if (n > 0) {
		hook_output_feed(o, buf, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		(void)close(p->out_fd);
		p->out_fd = -1;
	}
}

/* Reads output until the pipe closes and the leader has exited, or the
 * deadline passes, or cancel_fd fires.  When the leader exits, the rest
 * of its group is killed and the pipe gets a short while to drain (a
 * process that left the group may hold it open; that is not the hook's
 * timeout). */
static void hook_pump(struct hook_proc *p, struct hook_output *o,
		      uint64_t deadline)
{
	struct pollfd pfd[3];
	uint64_t now;
	nfds_t n;
	int ms;

	for (;;) {
		now = hook_now();
		if (!p->exited && hook_leader_exited(p->pid)) {
			(void)kill(-p->pid, SIGKILL);
			p->exited = true;
			if (deadline > now + HOOK_DRAIN_USEC)
				deadline = now + HOOK_DRAIN_USEC;
		}
		if (p->exited && p->out_fd < 0)
			return;
		if (now >= deadline) {
			p->timed_out = !p->exited;
			return;
		}
		n = 0;
		if (p->out_fd >= 0)
			pfd[n++] = (struct pollfd){p->out_fd, POLLIN, 0};
		if (p->pid_fd >= 0 && !p->exited)
			pfd[n++] = (struct pollfd){p->pid_fd, POLLIN, 0};
		if (p->cancel_fd >= 0)
			pfd[n++] = (struct pollfd){p->cancel_fd, POLLIN, 0};
		ms = (int)((deadline - now + 999) / 1000);
		if (p->pid_fd < 0 && !p->exited && ms > HOOK_TICK_MS)
			ms = HOOK_TICK_MS;
		if (poll(pfd, n, ms) <= 0)
			continue;
		if (p->out_fd >= 0 && pfd[0].revents != 0)
			hook_read(p, o);
		if (p->cancel_fd >= 0 && pfd[n - 1].revents != 0) {
			p->cancelled = !p->exited;
			return;
		}
	}
}

static int hook_reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int hook_exit_status(const char *name, int status, struct errmsg *err)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return errmsg_set(err, -EIO, "hook %s: exited with status %d",
				  name, WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return errmsg_set(err, -EIO, "hook %s: killed by signal %d",
				  name, WTERMSIG(status));
	return errmsg_set(err, -EIO, "hook %s: wait status %#x", name, status);
}

/* Runs the command to its end, then judges how it ended. */
static int hook_exec_run(uint64_t timeout_usec, struct hook_proc *p,
			 struct hook_output *o, struct errmsg *err)
{
	int status = 0, r;

	p->pid_fd = pidfd_open(p->pid, 0);
	hook_pump(p, o, hook_now() + timeout_usec);
	if (p->timed_out || p->cancelled)
		(void)kill(-p->pid, SIGKILL);
	r = hook_reap(p->pid, &status);
	hook_output_finish(o);
	if (r < 0)
		return errmsg_set(err, r, "hook %s: waitpid: %s", o->name,
				  strerror(-r));
	if (p->cancelled)
		return errmsg_set(err, -ECANCELED,
				  "hook %s: killed, its run was cancelled",
				  o->name);
	if (p->timed_out)
		return errmsg_set(err, -ETIMEDOUT,
				  "hook %s: timed out after %llu ms", o->name,
				  (unsigned long long)(timeout_usec / 1000));
	return hook_exit_status(o->name, status, err);
}

int hook_exec_argv(char *const argv[], char *const envp[],
		   uint64_t timeout_usec, int cancel_fd, struct errmsg *err)
{
	struct hook_proc p = {-1, -1, -1, cancel_fd, false, false, false};
	struct hook_output o;
	int fds[2] = {-1, -1}, r;

	memset(&o, 0, sizeof(o));
	hook_show(argv[0], o.name, sizeof(o.name));
	if (pipe2(fds, O_CLOEXEC) < 0) {
		r = -errno;
		return errmsg_set(err, r, "hook %s: pipe: %s", o.name,
				  strerror(-r));
	}
	r = hook_spawn(argv, envp, fds[1], &p.pid);
	(void)close(fds[1]);
	if (r < 0) {
		(void)errmsg_set(err, r, "hook %s: cannot run: %s", o.name,
				 strerror(-r));
		goto out;
	}
	p.out_fd = fds[0];
	fds[0] = -1;
	r = hook_exec_run(timeout_usec, &p, &o, err);
out:
	if (fds[0] >= 0)
		(void)close(fds[0]);
	if (p.out_fd >= 0)
		(void)close(p.out_fd);
	if (p.pid_fd >= 0)
		(void)close(p.pid_fd);
	return r;
}

/* The environment is built here, in the daemon, in both cases: the
 * spawner gets only the finished strings (PATH and the event's names,
 * versions and reasons; never a secret value, see the top of the file). */
static int hook_exec(const struct hook_config *h, const json_t *event,
		     struct errmsg *err)
{
	char name[HOOK_SHOWN_LEN * 4 + 1];
	struct hook_env env = {{NULL}, 0};
	int r;

	hook_show(h->argv[0], name, sizeof(name));
	r = hook_env_build(event, &env, err);
	if (r < 0)
		return errmsg_prefix(err, r, "hook %s", name);
	if (spawner_started())
		r = spawner_exec(name, h->argv, env.vars, h->timeout_usec, err);
	else
		r = hook_exec_argv(h->argv, env.vars, h->timeout_usec, -1, err);
	hook_env_free(&env);
	return r;
}

/* ---- running an http hook ---- */

/* 0.5 s, 1 s, 2 s, ... capped at 5 s, each drawn from [d/2, d] so that
 * brokers that saw the same outage do not retry in step. */
static uint64_t hook_backoff_usec(unsigned attempt)
{
	uint64_t d = HOOK_BACKOFF_MAX_USEC;
	uint32_t rnd;

	if (attempt < 4)
		d = HOOK_BACKOFF_FIRST_USEC << attempt;
	if (d > HOOK_BACKOFF_MAX_USEC)
		d = HOOK_BACKOFF_MAX_USEC;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)hook_now();
	return d / 2 + rnd % (d / 2 + 1);
}

static void hook_sleep(uint64_t usec)
{
	uint64_t until = hook_now() + usec;
	struct timespec ts;

	ts.tv_sec = (time_t)(until / USEC_PER_SEC);
	ts.tv_nsec = (long)(until % USEC_PER_SEC) * 1000;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static int hook_http_body(const json_t *event, struct secret **ret,
			  struct errmsg *err)
{
	struct secret *body = NULL;
	size_t len;
	int r;

	if (!json_is_object(event))
		return errmsg_set(err, -EINVAL, "event is not a JSON object");
	len = json_dumpb(event, NULL, 0, JSON_COMPACT);
	if (len == 0)
		return errmsg_set(err, -EINVAL, "event cannot be encoded");
	r = secret_new(len, &body);
	if (r == 0 && json_dumpb(event, secret_expose(body, NULL), len,
				 JSON_COMPACT) != len)
		r = -EINVAL;
	if (r == 0)
		r = secret_set_len(body, len);
	if (r < 0) {
		secret_free(body);
		return errmsg_set(err, r, "event cannot be encoded");
	}
	*ret = body;
	return 0;
}

/* One POST.  *retry says whether another attempt could do better: a
 * transport error other than a refused certificate or a bad request, or a
 * 5xx or 429. */
static int hook_http_attempt(struct http_transport *t,
			     const struct http_request *req, bool *retry,
			     struct errmsg *err)
{
	struct http_response resp;
	int r;

	memset(&resp, 0, sizeof(resp));
	r = t->ops->perform(t, req, &resp, err);
	secret_free(resp.body);
	if (r < 0) {
		*retry = r != -EPERM && r != -EINVAL && r != -ENOMEM &&
			 r != -EMSGSIZE && r != -EPROTO;
		return r;
	}
	if (resp.status >= 200 && resp.status < 300)
		return 0;
	*retry = resp.status >= 500 || resp.status == 429;
	return errmsg_set(err, -EIO, "status %ld", resp.status);
}

/* Attempts until one succeeds, one fails for good, or the retries are
 * spent; err says how many were made when there was more than one. */
static int hook_http_post(const struct hook_config *h, struct http_transport *t,
			  const struct http_request *req, struct errmsg *err)
{
	char text[ERRMSG_MAX];
	unsigned attempt;
	bool retry = false;
	int r;

	for (attempt = 0;; attempt++) {
		r = hook_http_attempt(t, req, &retry, err);
		if (r == 0 || !retry || attempt >= h->retries)
			break;
		hook_sleep(hook_backoff_usec(attempt));
	}
	if (r == 0)
		return 0;
	(void)snprintf(text, sizeof(text), "%s", err != NULL ? err->text : "");
	if (attempt == 0)
		return errmsg_set(err, r, "hook http: %s", text);
	return errmsg_set(err, r, "hook http: %s (after %u attempts)", text,
			  attempt + 1);
}

static int hook_http(const struct hook_config *h, const json_t *event,
		     struct errmsg *err)
{
	struct http_transport *t = NULL;
	struct secret *body = NULL;
	struct http_request req;
	struct http_config cfg;
	int r;

	r = hook_http_body(event, &body, err);
	if (r < 0)
		return errmsg_prefix(err, r, "hook http");
	memset(&cfg, 0, sizeof(cfg));
	cfg.connect_timeout_usec = h->timeout_usec;
	cfg.total_timeout_usec = h->timeout_usec;
	cfg.tls.ca_file = h->ca_file[0] != '\0' ? h->ca_file : NULL;
	r = http_curl_new(&cfg, &t, err);
	if (r < 0) {
		(void)errmsg_prefix(err, r, "hook http");
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = h->url;
	req.body = body;
	req.content_type = "application/json";
	r = hook_http_post(h, t, &req, err);
out:
	if (t != NULL)
		t->ops->destroy(t);
	secret_free(body);
	return r;
}

/* The pid in a pid file: one decimal number, > 1. */
static int hook_read_pid(const char *path, pid_t *ret, struct errmsg *err)
{
	char buf[32];
	ssize_t n;
	char *end;
	long v;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errmsg_set(err, -errno, "hook signal: %s: %s", path,
				  strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\0' && *end != '\n') ||
	    v <= 1 || v > 4194304)
		return errmsg_set(err, -EINVAL,
				  "hook signal: %s does not hold a pid", path);
	*ret = (pid_t)v;
	return 0;
}

/* Signals every process whose comm is h->process (a pod with
 * shareProcessNamespace shows the app's processes), never ourselves. */
static int hook_signal_by_name(const struct hook_config *h, struct errmsg *err)
{
	char path[64], comm[32];
	struct dirent *e;
	DIR *d = opendir("/proc");
	int sent = 0, failed = 0, fd;
	ssize_t n;
	long pid;

	if (d == NULL)
		return errmsg_set(err, -errno, "hook signal: /proc: %s",
				  strerror(errno));
	while ((e = readdir(d)) != NULL) {
		pid = strtol(e->d_name, NULL, 10);
		if (pid <= 1 || pid == (long)getpid())
			continue;
		(void)snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd < 0 ? -1 : read(fd, comm, sizeof(comm) - 1);
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			continue;
		comm[n] = '\0';
		comm[strcspn(comm, "\n")] = '\0';
		if (strcmp(comm, h->process) != 0)
			continue;
		if (kill((pid_t)pid, h->signal) == 0)
			sent++;
		else
			failed = errno;
	}
	closedir(d);
	if (sent == 0)
		return errmsg_set(err, failed ? -failed : -ESRCH,
				  "hook signal: no process named %s %s",
				  h->process,
				  failed ? "could be signalled" : "found");
	log_info("event=hook_signalled process=%s processes=%d", h->process,
		 sent);
	return 0;
}

static int hook_signal(const struct hook_config *h, struct errmsg *err)
{
	pid_t pid = 0;
	int r;

	if (h->process[0] != '\0')
		return hook_signal_by_name(h, err);
	r = hook_read_pid(h->pid_file, &pid, err);
	if (r == 0 && kill(pid, h->signal) < 0)
		r = errmsg_set(err, -errno, "hook signal: pid %d from %s: %s",
			       (int)pid, h->pid_file, strerror(errno));
	return r;
}

int hook_run(const struct hook_config *h, const json_t *event,
	     struct errmsg *err)
{
	if (h->type == HOOK_SIGNAL)
		return hook_signal(h, err);
	if (h->type == HOOK_EXEC && h->argv[0] != NULL)
		return hook_exec(h, event, err);
	if (h->type == HOOK_HTTP)
		return hook_http(h, event, err);
	return errmsg_set(err, -EINVAL, "hook has no argv");
}
