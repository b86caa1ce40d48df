/* The scheduler's data and arithmetic, with no threads and no clock of its
 * own: a min-heap of deadlines (monotonic microseconds) and the renewal and
 * backoff rules.  The broker owns the thread that waits on it. */
#ifndef CREDBROKER_SCHEDULER_H
#define CREDBROKER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the broker allows (a few jobs per secret, 65535 secrets at most). */
#define SCHED_MAX_JOBS 65536
#define SCHED_BACKOFF_MIN_USEC (1ULL * 1000000)
#define SCHED_BACKOFF_MAX_USEC (300ULL * 1000000)
/* An attempt number whose backoff is the cap. */
#define SCHED_MAX_ATTEMPT 32

enum sched_kind {
	SCHED_REFRESH,	/* renew the current lease, or issue when there is none
			 */
	SCHED_EXPIRE,	/* the current version reaches its hard expiry */
	SCHED_RETIRE,	/* revoke a superseded lease upstream */
	SCHED_MAINTAIN, /* keep backend number `slot`'s identity alive */
	SCHED_CHECK,	/* ask upstreams whether current leases still exist */
};

struct sched_job {
	uint64_t deadline;
	uint32_t slot;
	enum sched_kind kind;
	uint64_t tag; /* meaning chosen by the caller (lease serial) */
};

struct sched;

/* At most max_jobs queued at once (> 0).  Returns 0, -EINVAL, -ENOMEM. */
int sched_new(size_t max_jobs, struct sched **ret)
    __attribute__((warn_unused_result));
void sched_free(struct sched *s);
/* Returns 0 or -EMSGSIZE past max_jobs, -ENOMEM. */
int sched_push(struct sched *s, const struct sched_job *job)
    __attribute__((warn_unused_result));
/* The earliest job, without removing it; false when empty. */
bool sched_peek(const struct sched *s, struct sched_job *out);
/* Removes and returns the earliest job when its deadline <= now. */
bool sched_pop_due(struct sched *s, uint64_t now, struct sched_job *out);
/* Removes every job of slot with the given kind (all kinds when kind < 0).
 * Returns how many were removed. */
size_t sched_cancel(struct sched *s, uint32_t slot, int kind);
size_t sched_count(const struct sched *s);

/* When to renew a lease valid from start to expires: at 62-72 % of its
 * lifetime (rnd picks the point), never before start. */
uint64_t sched_renew_at(uint64_t start, uint64_t expires, uint32_t rnd);
/* Delay before retry number attempt (0-based) after a failure: between
 * 1-2 s for the first, doubling, never more than 5 min; rnd picks the
 * point in [d/2, d]. */
uint64_t sched_backoff(unsigned attempt, uint32_t rnd);

#endif
