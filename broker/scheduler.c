/* A binary min-heap keyed on deadline.  Cancellation is rare (revoke,
 * rotate), so it is a linear filter followed by a rebuild. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

struct sched {
	size_t count;
	size_t capacity;
	size_t max_jobs;
	struct sched_job *jobs;
};

int sched_new(size_t max_jobs, struct sched **ret)
{
	struct sched *s;

	if (max_jobs == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->max_jobs = max_jobs;
	*ret = s;
	return 0;
}

void sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	free(s->jobs);
	free(s);
}

static void sched_swap(struct sched *s, size_t a, size_t b)
{
	struct sched_job t = s->jobs[a];

	s->jobs[a] = s->jobs[b];
	s->jobs[b] = t;
}

static void sched_sift_up(struct sched *s, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (s->jobs[parent].deadline <= s->jobs[i].deadline)
			break;
		sched_swap(s, parent, i);
		i = parent;
	}
}

static void sched_sift_down(struct sched *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;

		if (l < s->count && s->jobs[l].deadline < s->jobs[min].deadline)
			min = l;
		if (r < s->count && s->jobs[r].deadline < s->jobs[min].deadline)
			min = r;
		if (min == i)
			return;
		sched_swap(s, i, min);
		i = min;
	}
}

int sched_push(struct sched *s, const struct sched_job *job)
{
	if (s->count == s->capacity) {
		size_t cap = s->capacity ? s->capacity * 2 : 16;
		struct sched_job *jobs;

		if (s->count >= s->max_jobs)
			return -EMSGSIZE;
		if (cap > s->max_jobs)
			cap = s->max_jobs;
		jobs = realloc(s->jobs, cap * sizeof(*jobs));
		if (jobs == NULL)
			return -ENOMEM;
		s->jobs = jobs;
		s->capacity = cap;
	}
	s->jobs[s->count] = *job;
	sched_sift_up(s, s->count);
	s->count++;
	return 0;
}

bool sched_peek(const struct sched *s, struct sched_job *out)
{
	if (s->count == 0)
		return false;
	*out = s->jobs[0];
	return true;
}

bool sched_pop_due(struct sched *s, uint64_t now, struct sched_job *out)
{
	if (s->count == 0 || s->jobs[0].deadline > now)
		return false;
	*out = s->jobs[0];
	s->jobs[0] = s->jobs[--s->count];
	sched_sift_down(s, 0);
	return true;
}

size_t sched_cancel(struct sched *s, uint32_t slot, int kind)
{
	size_t i, kept = 0, removed;

	for (i = 0; i < s->count; i++) {
		if (s->jobs[i].slot == slot &&
		    (kind < 0 || (int)s->jobs[i].kind == kind))
			continue;
		s->jobs[kept++] = s->jobs[i];
	}
	removed = s->count - kept;
	s->count = kept;
	for (i = kept / 2; i-- > 0;)
		sched_sift_down(s, i);
	return removed;
}

size_t sched_count(const struct sched *s)
{
	return s->count;
}

uint64_t sched_renew_at(uint64_t start, uint64_t expires, uint32_t rnd)
{
	uint64_t life, ppm;

	if (expires <= start)
		return start;
	life = expires - start;
	/* 62..72 % of the life: near Vault Agent's 2/3, spread so that many
	 * leases issued together do not renew in lockstep.  In parts per
	 * million, not per mille: 101 possible instants would bunch the
	 * renewals of long leases into bursts a hundredth of their life
	 * apart. */
	ppm = 620000 + rnd % 100001;
	if (life > UINT64_MAX / 1000000)
		return start + life / 1000000 * ppm;
	return start + life * ppm / 1000000;
}

uint64_t sched_backoff(unsigned attempt, uint32_t rnd)
{
	uint64_t delay = 2 * SCHED_BACKOFF_MIN_USEC;
	unsigned i;

	for (i = 0; i < attempt && delay < SCHED_BACKOFF_MAX_USEC; i++)
		delay *= 2;
	if (delay > SCHED_BACKOFF_MAX_USEC)
		delay = SCHED_BACKOFF_MAX_USEC;
	/* "Equal jitter": never less than half the delay, so retries still
	 * back off, yet spread across clients. */
	return delay / 2 + (uint64_t)rnd % (delay / 2 + 1);
}
