/* Process hardening done once at start, before any secret exists:
 * not dumpable, no core files, umask 077, zeroing allocators for jansson
 * (it keeps copies of what it parses), and the signal mask the daemon's
 * threads inherit. */
#ifndef CREDBROKER_HARDENING_H
#define CREDBROKER_HARDENING_H

#include <signal.h>
#include <stdbool.h>

/* Returns 0 or -errno when a protection could not be applied. */
int hardening_apply(void) __attribute__((warn_unused_result));
/* What secret memory may lock after the privileges are gone. */
#define HARDENING_MEMLOCK_BYTES (64UL * 1024 * 1024)

/* True when this process may mount (CAP_SYS_ADMIN in its effective set). */
bool hardening_privileged(void);
/* Drops every capability (effective, permitted, inheritable, ambient, and
 * the bounding set where allowed) and sets no_new_privs, for the calling
 * thread and every thread it creates after: call it before any thread
 * starts.  Returns 0 or -errno. */
int hardening_drop_privileges(void) __attribute__((warn_unused_result));
/* Blocks the termination signals in the calling thread (and so in every
 * thread created after) and fills *set with them for sigwait(). */
void hardening_block_signals(sigset_t *set);

#endif
