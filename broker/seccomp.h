/* The daemon's seccomp allowlist (libseccomp), installed once start-up is
 * over: the mount is up, the FUSE, control and scheduler threads run, the
 * backends logged in once (they log in again later, so DNS, TLS and the
 * PostgreSQL protocol stay allowed).  Everything the daemon still does is
 * on the list, drawn from strace runs of the end-to-end suites; what only
 * start-up needs (mount, bind/listen on the control socket, capset,
 * prctl, execve for fusermount3) is not, nor are exec hooks: the hook
 * spawner, forked before the filter, runs them (spawner.h).
 *
 * Read-back: /proc/PID/status then says "Seccomp:\t2" (filter mode) and
 * "Seccomp_filters:\t1" (or more), for every thread (/proc/PID/task/TID/
 * status). */
#ifndef CREDBROKER_SECCOMP_H
#define CREDBROKER_SECCOMP_H

#include "errmsg.h"

/* Installs the allowlist on every thread of the process (TSYNC) with
 * no_new_privs set; any other system call kills the whole process with
 * SIGSYS (the kernel logs it: audit type=1326, with the call's number).
 * clone3 alone fails with ENOSYS instead, so that glibc falls back to
 * clone, whose flags the filter can see: threads only, never a new
 * process.  Returns 0, or -errno with err saying which step failed (an
 * unknown or absent call on this architecture is skipped, not an error). */
int seccomp_install(struct errmsg *err) __attribute__((warn_unused_result));
#endif
