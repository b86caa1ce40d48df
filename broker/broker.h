/* The daemon: ties the config, backends, store, scheduler thread, FUSE
 * mount and control socket together, and owns each secret's lifecycle
 * (issue, renew, rotate, expire, retire, revoke, freeze). */
#ifndef CREDBROKER_BROKER_H
#define CREDBROKER_BROKER_H

#include "clock.h"
#include "config.h"
#include "errmsg.h"

/* Exit status for configuration and start-up errors (bad config, missing
 * DSN file, unreachable upstream, bad mountpoint). */
#define BROKER_EXIT_CONFIG 2

struct broker;

/* Takes ownership of cfg.  Creates the store and the backends; no I/O. */
int broker_new(struct config *cfg, const struct clock *clk, struct broker **ret,
	       struct errmsg *err) __attribute__((warn_unused_result));
/* Logs in to every backend, mounts, opens the control socket and starts the
 * scheduler.  Returns 0 or -errno with err naming the cause. */
int broker_start(struct broker *b, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Stops the scheduler, revokes upstream when the config says so, unmounts,
 * closes the control socket and wipes every secret.  Idempotent. */
void broker_stop(struct broker *b);
/* NULL-safe; stops first. */
void broker_free(struct broker *b);

#endif
