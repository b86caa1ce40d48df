/* Shared between broker.c (lifecycle and scheduler thread) and
 * broker_ctl.c (control-socket commands).  Not a public header. */
#ifndef CREDBROKER_BROKER_INT_H
#define CREDBROKER_BROKER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "broker.h"
#include "control.h"
#include "scheduler.h"
#include "store.h"

#define BROKER_MAX_RETIRED 1024 /* superseded leases awaiting revocation */
#define BROKER_ROTATE_WAIT_USEC (30ULL * USEC_PER_SEC)

enum secret_state {
	SECRET_PENDING, /* no credential yet (or expired) */
	SECRET_ACTIVE,	/* a live credential is published */
	SECRET_FROZEN,	/* revoked; nothing is fetched until unfreeze */
};

/* A superseded or expired lease still to be revoked upstream. */
struct retired_lease {
	struct lease lease;
	uint64_t last_seq; /* its newest store version */
	uint64_t id;
	unsigned failures;
};

/* One configured secret.  Every field below cfg is protected by
 * broker.lock; upstream I/O runs with the lock released, and "generation"
 * tells the scheduler that a revoke happened meanwhile. */
struct broker_secret {
	const struct config_secret *cfg;
	struct backend *backend;
	const struct backend_ops *ops;
	enum secret_state state;
	bool has_lease;
	struct lease lease;
	struct kv values;     /* the current credential's values */
	uint64_t version_seq; /* last published store version */
	uint64_t generation;  /* bumps with every revoke */
	bool force_rotate;
	unsigned failures;
	char last_error[ERRMSG_MAX + 32];
	uint64_t rotations;
	uint64_t renewals;
	size_t layout_count; /* file names, each at a fixed index */
	char layout[STORE_MAX_FILES][STORE_MAX_FILE_NAME];
	size_t retired_count;
	size_t retired_capacity;
	struct retired_lease *retired; /* grows up to BROKER_MAX_RETIRED */
};

/* A backend's identity as the broker tracks it (protected by broker.lock). */
struct broker_backend {
	uint64_t generation; /* of the backend's current identity */
	unsigned failures;
	char last_error[ERRMSG_MAX + 32];
};

#define BROKER_CHECK_BATCH 10 /* lookups per second, at most */

struct broker {
	struct config *cfg;
	const struct clock *clk;
	struct store *store;
	struct fs *fs;
	struct control *control;
	size_t backend_count;
	struct backend **backends;
	struct broker_backend *backend_state;
	struct broker_secret *secrets;
	size_t check_cursor; /* next slot the lease check visits */

	pthread_mutex_t lock;
	pthread_cond_t wake;	/* CLOCK_MONOTONIC; scheduler waits */
	pthread_cond_t changed; /* a secret's state changed */
	struct sched *sched;
	uint64_t next_retired_id;
	bool thread_started;
	bool stopping;
	bool stopped;
	pthread_t thread;
};

/* Called with b->lock held.  A slot has at most one pending refresh:
 * scheduling one replaces the previous. */
int broker_schedule(struct broker *b, size_t slot, enum sched_kind kind,
		    uint64_t deadline, uint64_t tag);
/* Schedules the first refresh of every secret.  Called with b->lock held. */
void broker_schedule_all(struct broker *b);
/* Runs every job due at the broker clock's now; returns the next deadline
 * (UINT64_MAX when none).  Called with b->lock held; the scheduler thread
 * loops on it, and unit tests call it with a fake clock and no thread. */
uint64_t broker_run_due(struct broker *b);
/* Revokes slot upstream and in memory and freezes it; fills *result with a
 * per-lease report.  Returns 0 when every revocation was confirmed, -EIO
 * when some were not. */
int broker_revoke_slot(struct broker *b, size_t slot, json_t **result);
/* Revokes every backend's own upstream identity (backend_ops.revoke_all);
 * fills *result (when not NULL) with a per-backend report.  Returns 0 when
 * every backend confirmed, -EIO otherwise. */
int broker_revoke_identities(struct broker *b, json_t **result);
uint32_t broker_random(void);

/* broker_ctl.c: the control-socket handler. */
json_t *broker_control(void *arg, const struct control_peer *peer,
		       const json_t *request);

#endif
