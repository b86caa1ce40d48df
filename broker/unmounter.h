/* The one privilege the broker keeps past start-up, in a process of its
 * own (the OpenSMTPD model): a broker that mounted its FUSE filesystem
 * itself needs CAP_SYS_ADMIN again only to unmount it at exit.  The
 * unmounter is forked before any secret exists in memory; it keeps
 * CAP_SYS_ADMIN and nothing else, closes every descriptor but its socket,
 * parses nothing and talks to no one but the broker: it detaches the mount
 * when asked, or when the broker is gone (its socket reads EOF, also after
 * a SIGKILL).  The broker itself then drops every capability. */
#ifndef CREDBROKER_UNMOUNTER_H
#define CREDBROKER_UNMOUNTER_H

#include "errmsg.h"

struct unmounter;

/* Forks the unmounter for path.  Call single-threaded.  Returns 0 or
 * -errno. */
int unmounter_start(const char *path, struct unmounter **ret,
		    struct errmsg *err) __attribute__((warn_unused_result));
/* The unmounter's pid, for the log. */
int unmounter_pid(const struct unmounter *u);
/* Detaches the mount now and waits (at most 5 s) for the answer.  Returns
 * 0, or -errno from umount2 or from the exchange. */
int unmounter_detach(struct unmounter *u, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Closes the socket (the unmounter detaches the mount if it was not asked
 * to yet, and exits) and reaps it.  NULL-safe. */
void unmounter_free(struct unmounter *u);

#endif
