/* The scheduler's cost per operation as the queue grows, and how evenly it
 * spreads renewals (issue 7).  bench/scen_scheduler.py runs it and reads the
 * one JSON object it prints on stdout.
 *
 *   schedbench [--sizes N,N,...] [--ops M] [--reps R] [--spread N]
 *
 * For each size N: a heap of N jobs with random deadlines, then timed rounds
 * of the "hold" model (pop the earliest job, push it back later: the size
 * stays N) and of sched_cancel() of one slot (pushed back after).  Sizes
 * are interleaved within each repetition; each heap is made with its size
 * as its job cap.  --spread N: N leases issued at the same
 * instant, their renewal times from sched_renew_at() for a few TTLs, as
 * counts per second of the renewal window. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "scheduler.h"

#define SB_MAX_SIZES 8
#define SB_MAX_REPS 50
#define SB_MAX_N 100000000UL
#define SB_DEADLINE_SPAN (1ULL << 40) /* usec: ~12 days of deadlines */
#define SB_CANCEL_BUDGET 20000000ULL  /* job visits per cancel round */
#define SB_USEC 1000000ULL

static const uint64_t sb_ttls_sec[] = {60, 600, 3600, 86400};

struct sb_opts {
	size_t sizes[SB_MAX_SIZES];
	size_t size_count;
	size_t ops;
	size_t reps;
	size_t spread_n;
};

struct sb_result {
	double hold_ns[SB_MAX_REPS];
	double cancel_ns[SB_MAX_REPS];
	size_t cancel_ops;
};

/* xorshift64*: reproducible and cheap; quality is not the point here. */
static uint64_t sb_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t sb_now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int sb_parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || (*end != '\0' && *end != ',') || v == 0 ||
	    v > SB_MAX_N)
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

static int sb_parse_sizes(const char *s, struct sb_opts *o)
{
	o->size_count = 0;
	while (*s != '\0') {
		if (o->size_count == SB_MAX_SIZES ||
		    sb_parse_size(s, &o->sizes[o->size_count]) < 0)
			return -EINVAL;
		o->size_count++;
		s = strchr(s, ',');
		if (s == NULL)
			break;
		s++;
	}
	return o->size_count > 0 ? 0 : -EINVAL;
}

static int sb_parse_args(int argc, char **argv, struct sb_opts *o)
{
	int i, r = 0;

	*o = (struct sb_opts){{100, 10000, 1000000}, 3, 200000, 5, 10000};
	for (i = 1; i < argc && r == 0; i++) {
		if (i + 1 >= argc)
			return -EINVAL;
		if (strcmp(argv[i], "--sizes") == 0)
			r = sb_parse_sizes(argv[++i], o);
		else if (strcmp(argv[i], "--ops") == 0)
			r = sb_parse_size(argv[++i], &o->ops);
		else if (strcmp(argv[i], "--reps") == 0)
			r = sb_parse_size(argv[++i], &o->reps);
		else if (strcmp(argv[i], "--spread") == 0)
			r = sb_parse_size(argv[++i], &o->spread_n);
		else
			r = -EINVAL;
	}
	if (r == 0 && o->reps > SB_MAX_REPS)
		r = -EINVAL;
	return r;
}

/* A heap of n jobs, slot i for job i, random deadlines. */
static int sb_fill(size_t n, uint64_t *rng, struct sched **ret)
{
	struct sched *s = NULL;
	struct sched_job job = {0};
	size_t i;
	int r;

	r = sched_new(n, &s);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		job.deadline = sb_rand(rng) % SB_DEADLINE_SPAN;
		job.slot = (uint32_t)i;
		job.kind = SCHED_REFRESH;
		job.tag = i;
		r = sched_push(s, &job);
		if (r < 0) {
			sched_free(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

/* The hold model: pop the earliest, push it back a random time later.
 * Returns ns per pop+push pair, or a negative errno. */
static double sb_hold(struct sched *s, size_t ops, uint64_t *rng)
{
	struct sched_job job;
	uint64_t t0;
	size_t i;

	t0 = sb_now_ns();
	for (i = 0; i < ops; i++) {
		if (!sched_pop_due(s, UINT64_MAX, &job))
			return -ENOENT;
		job.deadline += sb_rand(rng) % SB_DEADLINE_SPAN;
		if (sched_push(s, &job) < 0)
			return -ENOMEM;
	}
	return (double)(sb_now_ns() - t0) / (double)ops;
}

/* sched_cancel() of one random slot, the job pushed back (untimed). */
static double sb_cancel(struct sched *s, size_t n, size_t ops, uint64_t *rng)
{
	struct sched_job job = {0};
	uint64_t spent = 0, t0;
	size_t i;

	for (i = 0; i < ops; i++) {
		job.slot = (uint32_t)(sb_rand(rng) % n);
		job.kind = SCHED_REFRESH;
		job.deadline = sb_rand(rng) % SB_DEADLINE_SPAN;
		t0 = sb_now_ns();
		if (sched_cancel(s, job.slot, -1) != 1)
			return -ENOENT;
		spent += sb_now_ns() - t0;
		if (sched_push(s, &job) < 0)
			return -ENOMEM;
	}
	return (double)spent / (double)ops;
}

static int sb_run_size(size_t n, const struct sb_opts *o, size_t rep,
		       uint64_t *rng, struct sb_result *res)
{
	struct sched *s = NULL;
	double hold, cancel;
	int r;

	res->cancel_ops = SB_CANCEL_BUDGET / n;
	if (res->cancel_ops < 5)
		res->cancel_ops = 5;
	if (res->cancel_ops > 2000)
		res->cancel_ops = 2000;
	r = sb_fill(n, rng, &s);
	if (r < 0)
		return r;
	/* Untimed warm-up: caches and branch predictors, as for the rest. */
	hold = sb_hold(s, o->ops / 4 + 1, rng);
	if (hold >= 0)
		hold = sb_hold(s, o->ops, rng);
	cancel = hold < 0 ? hold : sb_cancel(s, n, res->cancel_ops, rng);
	sched_free(s);
	if (hold < 0 || cancel < 0)
		return hold < 0 ? (int)hold : (int)cancel;
	res->hold_ns[rep] = hold;
	res->cancel_ns[rep] = cancel;
	return 0;
}

static void sb_print_list(const char *key, const double *v, size_t n)
{
	size_t i;

	printf("\"%s\": [", key);
	for (i = 0; i < n; i++)
		printf("%s%.2f", i ? ", " : "", v[i]);
	printf("]");
}

static void sb_print_sizes(const struct sb_opts *o, const struct sb_result *res)
{
	size_t i;

	printf("\"sizes\": [");
	for (i = 0; i < o->size_count; i++) {
		printf("%s{\"n\": %zu, \"ops\": %zu, "
		       "\"cancel_ops\": %zu, ",
		       i ? ", " : "", o->sizes[i], o->ops, res[i].cancel_ops);
		sb_print_list("hold_ns", res[i].hold_ns, o->reps);
		printf(", ");
		sb_print_list("cancel_ns", res[i].cancel_ns, o->reps);
		printf("}");
	}
	printf("]");
}

/* Renewal times of n leases issued at once with ttl_sec, counted per second
 * from the first renewal to the last possible one (72 % of the TTL). */
static int sb_spread_one(size_t n, uint64_t ttl_sec)
{
	uint64_t first = ttl_sec * 620 / 1000, last = ttl_sec * 720 / 1000;
	size_t buckets = (size_t)(last - first + 1), i;
	uint32_t rnd;
	size_t *count;
	uint64_t at;

	count = calloc(buckets, sizeof(*count));
	if (count == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		/* What the broker passes: 32 bits from getrandom(). */
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
			free(count);
			return -EIO;
		}
		at = sched_renew_at(0, ttl_sec * SB_USEC, rnd) / SB_USEC;
		if (at >= first && at <= last)
			count[at - first]++;
	}
	printf("{\"ttl_s\": %" PRIu64 ", \"first_s\": %" PRIu64
	       ", \"counts\": [",
	       ttl_sec, first);
	for (i = 0; i < buckets; i++)
		printf("%s%zu", i ? "," : "", count[i]);
	printf("]}");
	free(count);
	return 0;
}

static int sb_spread(size_t n)
{
	size_t i;
	int r = 0;

	printf("\"spread\": {\"n\": %zu, \"ttls\": [", n);
	for (i = 0; i < sizeof(sb_ttls_sec) / sizeof(sb_ttls_sec[0]); i++) {
		if (i > 0)
			printf(", ");
		r = sb_spread_one(n, sb_ttls_sec[i]);
		if (r < 0)
			break;
	}
	printf("]}");
	return r;
}

int main(int argc, char **argv)
{
	static struct sb_result res[SB_MAX_SIZES];
	uint64_t rng = 0x9E3779B97F4A7C15ULL;
	struct sb_opts o;
	size_t rep, i;
	int r = 0;

	if (sb_parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "usage: schedbench [--sizes N,N,...] "
				"[--ops M] [--reps R] [--spread N]\n");
		return 2;
	}
	for (rep = 0; rep < o.reps && r == 0; rep++)
		for (i = 0; i < o.size_count && r == 0; i++)
			r = sb_run_size(o.sizes[i], &o, rep, &rng, &res[i]);
	if (r < 0) {
		fprintf(stderr, "schedbench: %s\n", strerror(-r));
		return 1;
	}
	printf("{\"broker_max_jobs\": %d, \"job_bytes\": %zu, \"reps\": %zu, ",
	       SCHED_MAX_JOBS, sizeof(struct sched_job), o.reps);
	sb_print_sizes(&o, res);
	printf(", ");
	r = sb_spread(o.spread_n);
	printf("}\n");
	if (r < 0) {
		fprintf(stderr, "schedbench: spread: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
