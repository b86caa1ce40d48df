/* Revocation and rotation hooks: commands run, or URLs posted to, when
 * something happens to a secret, so a responder gets paged or a SIEM
 * fed.  An event is a flat JSON object the broker builds ({"event":
 * "revoke", "secret": "db", "version": 3, "reason": "..."}); it carries
 * names and versions, never a secret value.
 *
 * exec hooks run argv directly (no shell, no PATH search) in their own
 * process group, with stdin from /dev/null, no descriptor of the broker's
 * but the output pipe, default signal dispositions, an empty signal mask
 * and an environment made only of PATH=/usr/bin:/bin and one
 * CREDBROKER_<KEY>=value per event field (strings as they are, anything
 * else as its compact JSON text).  Their stdout and stderr are logged line
 * by line (escaped, capped per line and in total).  When the command
 * exits, or its time is up, whatever else is left in its process group is
 * killed, so no hook outlives its bound.  Once spawner_start has run
 * (spawner.h), exec hooks are started, watched and killed this same way by
 * the hook spawner, a process forked before the daemon is sandboxed; the
 * daemon builds the environment and sends it there with argv and the
 * timeout, and the spawner logs the output on the stderr both share.
 *
 * http hooks POST the event as JSON to an https URL (the peer always
 * verified), retrying transport errors, 5xx and 429 with exponential
 * backoff and jitter.  The URL is never put in a message: webhook URLs
 * often carry a token.
 *
 * Thread safety: hook_run may be called from several threads at once.  It
 * waits for its own child by pid (or, with the spawner, the spawner does;
 * spawner_stop reaps the spawner by pid), so no other thread may reap
 * children with waitpid(-1, ...), and SIGCHLD must not be ignored. */
#ifndef CREDBROKER_HOOKS_H
#define CREDBROKER_HOOKS_H

#include <limits.h>
#include <stdint.h>

#include <jansson.h>

#include "errmsg.h"

#define HOOK_MAX_ARGS 32
#define HOOK_MAX_ARG_LEN 4096 /* bytes in one argv string */
#define HOOK_MAX_FIELDS 64    /* event fields, so environment variables */
#define HOOK_MAX_KEY 64	      /* bytes in an event key */
#define HOOK_MAX_VALUE 4096   /* bytes in one variable's value */
#define HOOK_MAX_LINE 200     /* output bytes logged per line */
#define HOOK_MAX_OUTPUT 65536 /* output bytes logged per run */
#define HOOK_MAX_RETRIES 10   /* http */
#define HOOK_MIN_TIMEOUT_USEC 100000ULL
#define HOOK_MAX_TIMEOUT_USEC (600ULL * 1000000)
#define HOOK_DEFAULT_TIMEOUT_USEC (10ULL * 1000000)
#define HOOK_DEFAULT_RETRIES 3
#define HOOK_ENV_PREFIX "CREDBROKER_" /* every variable but PATH */

enum hook_type { HOOK_EXEC, HOOK_HTTP, HOOK_SIGNAL };

struct hook_config {
	enum hook_type type;
	char *argv[HOOK_MAX_ARGS + 1]; /* exec: owned, NULL-terminated */
	char url[1024];		       /* http */
	char ca_file[PATH_MAX];	       /* http, "" for the system store */
	uint64_t timeout_usec;	       /* default 10 s; 100 ms .. 10 min */
	unsigned retries;	       /* http, default 3, at most 10 */
	int signal;		       /* signal: HUP, USR1, USR2 or TERM */
	char process[16];	       /* signal: a process name (comm) */
	char pid_file[PATH_MAX];       /* signal: or a pid file */
};

/* Parses one hook object at JSON path `path` (e.g. "hooks.on_revoke[0]"):
 *   {"type":"exec","argv":["/usr/bin/logger","-t","credbroker"],
 *    "timeout":"5s"}
 *   {"type":"signal","signal":"HUP","process":"nginx"}
 *   {"type":"signal","signal":"USR1","pid_file":"/run/app/app.pid"}
 *   {"type":"http","url":"https://siem.example/hook",
 *    "ca_file":"/etc/ca.pem","timeout":"5s","retries":3}
 * Strict like the rest of the config: unknown keys (also keys of the other
 * type), wrong types, an empty argv, more than HOOK_MAX_ARGS arguments, a
 * relative argv[0], a URL that is not https, a bad or out-of-range
 * duration, retries past HOOK_MAX_RETRIES fail with -EINVAL and err naming
 * the JSON path ("hooks.on_revoke[0].argv[0]: must be an absolute path").
 * -ENOMEM when argv cannot be copied.  *out is written only on success;
 * free it with hook_config_free. */
int hook_config_parse(const json_t *obj, const char *path,
		      struct hook_config *out, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Frees argv and zeroes the pointers, so h may be parsed into again.
 * NULL-safe. */
void hook_config_free(struct hook_config *h);

/* Runs one hook for event (a flat JSON object; not modified; not kept).
 * Blocks up to the hook's bound: exec: timeout (plus a moment to reap);
 * http: (retries + 1) * timeout plus the backoff between attempts.
 * Returns 0 when the command exited 0 or the URL answered 2xx, or:
 *   -EINVAL   event is not an object, a key is not [A-Za-z0-9_]+ or two
 *             keys collide once upper-cased, a string holds a NUL byte;
 *   -EMSGSIZE more than HOOK_MAX_FIELDS fields or a value past
 *             HOOK_MAX_VALUE;
 *   -ETIMEDOUT the command ran past its timeout (its group was killed),
 *             or the spawner did not answer in time;
 *   -EPIPE    exec, with the spawner: the spawner is gone or stopped;
 *   -EBADMSG  exec, with the spawner: it sent a malformed reply;
 *   -EBUSY    exec, with the spawner: SPAWNER_MAX_JOBS hooks run already;
 *   -EIO      "exited with status N", "killed by signal N", or an HTTP
 *             status other than 2xx ("status N");
 *   -EPERM    TLS verification failed (not retried);
 *   -errno    from posix_spawn (-ENOENT, -EACCES), pipe, or the last
 *             transport error once the retries are spent.
 * err says which, naming argv[0] but never the URL. */
int hook_run(const struct hook_config *h, const json_t *event,
	     struct errmsg *err) __attribute__((warn_unused_result));

/* The exec runner itself, in the calling process: spawns argv (argv[0]
 * absolute, NULL-terminated) with exactly envp, logs its output, waits
 * at most timeout_usec and kills its process group, as described above.
 * hook_run calls it when no spawner runs; the spawner calls it for each
 * request.  cancel_fd is -1, or a descriptor that, once readable or hung
 * up, ends the run early: the group is killed and the result is
 * -ECANCELED.  Returns what hook_run returns for an exec hook. */
int hook_exec_argv(char *const argv[], char *const envp[],
		   uint64_t timeout_usec, int cancel_fd, struct errmsg *err)
    __attribute__((warn_unused_result));

#endif
