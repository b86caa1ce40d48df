/* Shared between broker.c (lifecycle and scheduler thread) and
 * broker_ctl.c (control-socket commands).  Not a public header. */
#ifndef CREDBROKER_BROKER_INT_H
#define CREDBROKER_BROKER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "audit.h"
#include "backend.h"
#include "broker.h"
#include "control.h"
#include "fs.h"
#include "scheduler.h"
#include "store.h"

#define BROKER_MAX_RETIRED 1024 /* superseded leases awaiting revocation */
#define BROKER_ROTATE_WAIT_USEC (30ULL * USEC_PER_SEC)
/* How long revoke waits for the kernel to drop cached names and pages. */
#define BROKER_HIDE_FLUSH_MS 1000

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
	uint64_t expires_mono; /* the lease's expiry and max TTL on the */
	uint64_t max_mono;     /* monotonic clock; UINT64_MAX for none */
	struct kv values;      /* the current credential's values */
	uint64_t version_seq;  /* last published store version */
	uint64_t lease_seq;    /* the first version of the current lease */
	uint64_t generation;   /* bumps with every revoke */
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
	/* When identities die on the monotonic clock (UINT64_MAX: never),
	 * known once generation is not 0: the current one, and the earliest
	 * of those it replaced that may still back a lease.  A lease dies
	 * with the identity that issued it (Vault revokes a token's leases
	 * with the token), whatever its own expiry says. */
	uint64_t expires_mono;
	uint64_t old_expires_mono;
	bool dormant; /* not logged in: its identity was revoked, or every
		       * secret of it was frozen at start; unfreeze wakes it */
	unsigned failures;
	char last_error[ERRMSG_MAX + 32];
};

#define BROKER_CHECK_BATCH 10 /* lookups per second, at most */

#define BROKER_ACCESS_MAX_OPEN 256   /* coalescing windows */
#define BROKER_ACCESS_MAX_READERS 64 /* processes per secret */
#define BROKER_ACCESS_MAX_VERSIONS 16

/* A window in which repeated opens of one file by one process count
 * instead of each writing a record. */
struct access_open {
	bool used;
	size_t slot;
	char file[STORE_MAX_FILE_NAME];
	uid_t uid;
	pid_t pid;
	char comm[32];
	uint64_t window_start; /* monotonic */
	uint64_t repeats;      /* opens after the first */
	uint64_t last_version;
	int64_t first_wall, last_wall;
};

/* One process that read a secret: the incident record's blast radius. */
struct access_reader {
	uid_t uid;
	pid_t pid;
	char comm[32];
	int64_t first_wall, last_wall;
	uint64_t opens;
	size_t version_count;
	uint64_t versions[BROKER_ACCESS_MAX_VERSIONS];
};

struct access_readers {
	size_t count, cap; /* r grows to BROKER_ACCESS_MAX_READERS at most */
	uint64_t dropped;  /* readers past the table, or out of memory */
	struct access_reader *r;
};

/* Protected by its own lock: the FUSE thread fills it. */
struct broker_access {
	pthread_mutex_t lock;
	struct access_open open[BROKER_ACCESS_MAX_OPEN];
	struct access_readers *readers; /* [secret_count] */
};

struct broker {
	struct config *cfg;
	const struct clock *clk;
	struct store *store;
	struct fs *fs;
	struct control *control;
	struct unmounter *unmounter; /* NULL unless we mounted as root */
	size_t backend_count;
	struct backend **backends;
	struct broker_backend *backend_state;
	struct broker_secret *secrets;
	size_t check_cursor; /* next slot the lease check visits */
	struct audit *audit;
	struct broker_access access;
	json_t *frozen;		    /* the freeze list as saved; under lock */
	pthread_mutex_t hooks_lock; /* protects hooks_running */
	pthread_cond_t hooks_done;
	unsigned hooks_running; /* rotation hook threads */

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
/* Keeps a superseded lease so it is revoked at deadline (retried with
 * backoff).  Called with b->lock held. */
void broker_retire(struct broker *b, size_t slot, const struct lease *lease,
		   uint64_t deadline);

/* incident.c: revocation. */
struct revoke_request {
	bool all;	    /* every secret, and the backends' identities */
	size_t slot;	    /* the secret, when not all */
	const char *reason; /* the responder's words; may be NULL */
	bool verify;	    /* prove each revocation upstream */
	bool persist;	    /* a responder's act: the freeze survives a
			     * restart, and the incident is audited */
	uid_t uid;	    /* who asked */
	pid_t pid;
	const char *comm;
	bool by_broker; /* the broker's own act (shutdown, lease check) */
};
/* Hides and freezes the targets, revokes their leases upstream in
 * parallel, then the identities (all), verifies (verify), wipes, and fills
 * *record (when not NULL; the caller owns it) with the incident record.
 * Returns 0 when every revocation (and verification) was confirmed, -EIO
 * when some were not. */
int broker_revoke(struct broker *b, const struct revoke_request *rq,
		  json_t **record);
/* The upstream no longer knows slot's lease (revoked from outside): the
 * secret leaves the mount and is frozen now, and broker_revoke runs on a
 * thread of its own.  Called with b->lock held. */
void broker_revoked_upstream(struct broker *b, size_t slot, const char *detail);
/* Replaces each secret's blast radius in record by its count when the
 * record would not fit in max bytes (the full one is in the audit log),
 * and marks it "truncated". */
void broker_fit_record(json_t *record, size_t max);
/* broker_revoke of one secret by the broker itself (shutdown): no freeze
 * saved, no incident audited. */
int broker_revoke_slot(struct broker *b, size_t slot, json_t **result);
/* Revokes every backend's own upstream identity (backend_ops.revoke_all);
 * fills *result (when not NULL) with a per-backend report.  Returns 0 when
 * every backend confirmed, -EIO otherwise. */
int broker_revoke_identities(struct broker *b, json_t **result);
/* Logs backend in again if it is dormant (before an unfreeze issues from
 * it).  Called without b->lock.  Returns 0 or the login's -errno. */
int broker_wake_backend(struct broker *b, size_t backend, struct errmsg *err);
uint32_t broker_random(void);

/* broker_audit.c: audit records and file-open accounting. */
json_t *broker_actor_scheduler(void);
json_t *broker_actor_process(const char *type, uid_t uid, pid_t pid,
			     const char *comm);
/* Writes one record {event, actor, object, result[, error], extra...};
 * takes the references to actor, object and extra (each may be NULL).
 * result is "ok" for r == 0, "denied" for -EACCES, else "failed". */
void broker_audit(struct broker *b, const char *event, json_t *actor,
		  json_t *object, int r, const char *error, json_t *extra);
/* A scheduler event on secret s (its current version; lease may be NULL). */
void broker_audit_secret(struct broker *b, const char *event,
			 const struct broker_secret *s, const struct lease *l,
			 int r, const char *error);
int broker_access_init(struct broker *b);
void broker_access_free(struct broker *b);
/* The fs access listener (arg: the broker). */
void broker_on_access(void *arg, const struct fs_access *ev);
/* Writes every pending coalesced open record. */
void broker_access_flush(struct broker *b);
/* [{uid, pid, comm, versions, opens, first, last}] of slot's readers. */
json_t *broker_blast_radius(struct broker *b, size_t slot);

/* broker_hooks.c.  Runs h's on_revoke (revoke) or on_rotate hooks for
 * event, in order, each bounded by its timeout; appends a result per hook
 * to results and returns it.  scope names the secret, or "*". */
json_t *broker_run_hooks(struct broker *b, const struct config_hooks *h,
			 bool revoke, const char *scope, const json_t *event,
			 json_t *results);
/* Runs the rotation hooks of slot (its own, then the global ones) on a
 * thread of their own.  May be called with b->lock held. */
void broker_rotate_hooks(struct broker *b, size_t slot, uint64_t version,
			 const char *lease_id);
/* Waits for every rotation hook thread. */
void broker_hooks_wait(struct broker *b);

/* broker_ctl.c: the control-socket handler. */
json_t *broker_control(void *arg, const struct control_peer *peer,
		       const json_t *request);

#endif
