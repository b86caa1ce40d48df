/* The hook spawner: the one process that starts exec hooks once the daemon
 * is sandboxed (privilege separation after OpenSSH and OpenSMTPD).
 *
 * Why: the daemon runs under a seccomp allowlist (inherited by its
 * children and kept across execve) and with no capabilities, and an exec
 * hook is an arbitrary program (logger, curl, a pager script) that cannot
 * run under that filter.  So spawner_start forks, early, a small process
 * that only turns "run this argv with this environment within this time"
 * into a child process, with hook_exec_argv: the same spawn, output
 * logging, timeout and process-group kill as a hook run in the daemon.
 *
 * It holds no secret.  It is forked before any secret is in memory
 * (before the backends log in), so its copy of the daemon's memory holds
 * none, and none crosses later: a request carries argv from the config
 * and the environment hook_env_build made from an event, and events carry
 * names, versions, lease ids and reasons, never a secret value (hooks.h).
 * It reads no file and no network and parses nothing but the requests
 * below; it closes every descriptor but stdin, stdout, stderr and its
 * socket, is not dumpable, drops every capability and sets no_new_privs
 * (a daemon compromised after its own drop must not regain a capability
 * by asking it to run a program), keeps the daemon's uid, and logs hook
 * output on the stderr it shares with the daemon.
 *
 * Its life: it ends when its socket reads EOF (spawner_stop, or the
 * daemon gone), or at the SIGTERM PR_SET_PDEATHSIG sends when the daemon
 * dies while something else holds the socket open; either way it first
 * kills every running hook's process group and reaps it, so no hook
 * outlives its bound, then exits 0.  (Not SIGKILL as its death signal:
 * that would leave its hooks running.)  SIGINT, SIGHUP and SIGTERM while
 * the daemon lives are ignored: terminal and pod signals are the daemon's
 * to handle, and its shutdown may still run hooks.  If the spawner itself
 * is SIGKILLed its hooks run to their own ends; the daemon's calls then
 * fail with "hook spawner is gone".
 *
 * Concurrency: requests run at once in the spawner, each on a thread of
 * its own (at most SPAWNER_MAX_JOBS), and replies are matched to callers
 * by request id: a revocation's hooks, which a responder waits for, must
 * not queue behind a rotation hook that uses its whole timeout (up to 10
 * minutes).  In the daemon one calling thread at a time reads the socket
 * and hands each reply to the caller it belongs to.
 *
 * The wire: a SOCK_SEQPACKET socketpair, one message per request or reply,
 * native byte order (both ends are one binary on one host).
 *   request: u32 magic SPAWNER_REQUEST_MAGIC, u32 argc (1..HOOK_MAX_ARGS),
 *            u32 envc (1..HOOK_MAX_FIELDS + 1), u32 zero, u64 id (not 0),
 *            u64 timeout in microseconds (HOOK_MIN..HOOK_MAX_TIMEOUT_USEC),
 *            then argc + envc strings, each NUL-terminated, back to back,
 *            nothing after the last: argv (argv[0] absolute, each shorter
 *            than HOOK_MAX_ARG_LEN), then the environment (PATH=..., then
 *            CREDBROKER_NAME=value, each name once, values at most
 *            HOOK_MAX_VALUE bytes).  At most SPAWNER_MAX_REQUEST bytes.
 *   reply:   u32 magic SPAWNER_REPLY_MAGIC, i32 result (0 or -1..-4095),
 *            u64 id, then the error text NUL-terminated and nothing after
 *            it: empty when result is 0, else 1..ERRMSG_MAX - 1 printable
 *            ASCII bytes (it ends up in the daemon's log).
 * Either side refuses anything else with -EBADMSG.  The daemon treats a
 * malformed reply as a broken spawner: every waiting and later exec hook
 * fails. */
#ifndef CREDBROKER_SPAWNER_H
#define CREDBROKER_SPAWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "hooks.h"

#define SPAWNER_MAX_JOBS 32 /* hooks running at once; past it, -EBUSY */
/* An environment string: name, '=', value, NUL. */
#define SPAWNER_MAX_VAR                                                        \
	(sizeof(HOOK_ENV_PREFIX) - 1 + HOOK_MAX_KEY + 1 + HOOK_MAX_VALUE + 1)
#define SPAWNER_HEADER_LEN 32
#define SPAWNER_MAX_REQUEST                                                    \
	(SPAWNER_HEADER_LEN + HOOK_MAX_ARGS * HOOK_MAX_ARG_LEN +               \
	 (HOOK_MAX_FIELDS + 1) * SPAWNER_MAX_VAR)
#define SPAWNER_REPLY_HEADER_LEN 16
#define SPAWNER_MAX_REPLY (SPAWNER_REPLY_HEADER_LEN + ERRMSG_MAX)
#define SPAWNER_REQUEST_MAGIC 0x31717362U /* "bsq1" */
#define SPAWNER_REPLY_MAGIC 0x31727362U	  /* "bsr1" */
/* How much longer than the hook's timeout the daemon waits for a reply:
 * the kill, the drain of the output pipe and the reap come after it. */
#define SPAWNER_GRACE_USEC (5ULL * 1000000)

/* Forks the spawner.  Call once, single-threaded (PR_SET_PDEATHSIG is
 * tied to the thread that forks, and a fork copies only that thread; call
 * it from the main thread, which lives as long as the process), before
 * any secret is in memory: the spawner keeps a copy of this process's
 * memory as it is now.  It inherits stdin, stdout and stderr, the log
 * level and the dumpable flag and resource limits set so far.  Waits (at
 * most 5 s) until the spawner says it is confined and serving; after it
 * returns 0, hook_run's exec hooks go through it.  Returns 0, -EALREADY
 * when it runs already, -errno from socketpair or fork, or the spawner's
 * own failure (-EPERM: it could not drop its capabilities; it is reaped
 * then, and the daemon should not start). */
int spawner_start(struct errmsg *err) __attribute__((warn_unused_result));
/* Ends the spawner (shuts its socket down: it kills its running hooks'
 * process groups and exits) and reaps it.  Calls waiting for a hook fail
 * with -EPIPE; call it after the hook runs are done.  Exec hooks run in
 * this process again afterwards.  NULL-safe / idempotent: a no-op when
 * the spawner is not running. */
void spawner_stop(void);
/* The spawner's pid, for the log; 0 when it is not running. */
int spawner_pid(void);
/* True between spawner_start and spawner_stop, also once the spawner has
 * died: exec hooks then fail rather than run in the daemon's sandbox. */
bool spawner_started(void);

/* What hook_exec calls when spawner_started(): runs argv with envp in the
 * spawner, within timeout_usec.  name is argv[0] as messages show it.
 * Blocks until the reply, at most timeout_usec + SPAWNER_GRACE_USEC.
 * Returns what hook_exec_argv returned there (and its err text), or
 *   -EPIPE     "hook NAME: hook spawner is gone" (EOF, EPIPE, ECONNRESET;
 *              never SIGPIPE) or "... hook spawner stopped";
 *   -EBADMSG   the spawner refused the request or sent a malformed reply;
 *   -EMSGSIZE  the request is larger than SPAWNER_MAX_REQUEST or than the
 *              socket takes;
 *   -ETIMEDOUT no reply in time;
 *   -ENOMEM. */
int spawner_exec(const char *name, char *const *argv, char *const *envp,
		 uint64_t timeout_usec, struct errmsg *err)
    __attribute__((warn_unused_result));

/* ---- the wire format, exported for tests and fuzzers ---- */

/* A request, decoded: argv and envp point into the message buffer and
 * are NULL-terminated. */
struct spawner_request {
	uint64_t id;
	uint64_t timeout_usec;
	size_t argc, envc;
	char *argv[HOOK_MAX_ARGS + 1];
	char *envp[HOOK_MAX_FIELDS + 2];
};

struct spawner_reply {
	uint64_t id;
	int result;
	char text[ERRMSG_MAX];
};

/* Encodes a request into a malloc'd *ret of *len bytes, checking it as
 * the decoder will.  Returns 0, -EINVAL (a count, argv[0], a variable's
 * name or the timeout is out of bounds), -EMSGSIZE (a string is too
 * long) or -ENOMEM; err says which.  *ret and *len only on success. */
int spawner_request_encode(uint64_t id, uint64_t timeout_usec,
			   char *const *argv, char *const *envp, char **ret,
			   size_t *len, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Decodes len bytes of msg (which *ret then points into; msg is not
 * modified).  Returns 0 or -EBADMSG with err naming the field. */
int spawner_request_decode(char *msg, size_t len, struct spawner_request *ret,
			   struct errmsg *err)
    __attribute__((warn_unused_result));
/* Encodes a reply into buf (SPAWNER_MAX_REPLY bytes): text is cut to
 * ERRMSG_MAX - 1 bytes, bytes outside printable ASCII become '?', an
 * empty text with a failure becomes "hook failed", a text with success is
 * dropped, and a result out of range becomes -EIO.  Returns the length. */
size_t spawner_reply_encode(uint64_t id, int result, const char *text,
			    char *buf);
/* Decodes len bytes of msg.  Returns 0 or -EBADMSG with err naming the
 * field; *ret only on success. */
int spawner_reply_decode(const char *msg, size_t len, struct spawner_reply *ret,
			 struct errmsg *err)
    __attribute__((warn_unused_result));

#endif
