#include <errno.h>
#include <stdlib.h>

#include <check.h>

#include "scheduler.h"

#define SEC 1000000ULL

START_TEST(test_scheduler_pops_in_deadline_order)
{
	static const uint64_t deadlines[] = {50, 10, 40, 10, 30, 20, 60, 5};
	struct sched_job job;
	struct sched *s;
	uint64_t last = 0;
	size_t i;

	ck_assert_int_eq(sched_new(SCHED_MAX_JOBS, &s), 0);
	for (i = 0; i < sizeof(deadlines) / sizeof(deadlines[0]); i++) {
		job = (struct sched_job){deadlines[i], (uint32_t)i,
					 SCHED_REFRESH, i};
		ck_assert_int_eq(sched_push(s, &job), 0);
	}
	ck_assert(!sched_pop_due(s, 4, &job));
	ck_assert(sched_peek(s, &job));
	ck_assert_uint_eq(job.deadline, 5);
	for (i = 0; sched_pop_due(s, 1000, &job); i++) {
		ck_assert_uint_ge(job.deadline, last);
		last = job.deadline;
	}
	ck_assert_uint_eq(i, 8);
	ck_assert_uint_eq(sched_count(s), 0);
	sched_free(s);
}
END_TEST

START_TEST(test_scheduler_bounded_by_max_jobs)
{
	struct sched_job job = {1, 0, SCHED_REFRESH, 0};
	struct sched *s;
	int i;

	ck_assert_int_eq(sched_new(0, &s), -EINVAL);
	ck_assert_int_eq(sched_new(20, &s), 0);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(sched_push(s, &job), 0);
	ck_assert_int_eq(sched_push(s, &job), -EMSGSIZE);
	ck_assert_uint_eq(sched_count(s), 20);
	sched_free(s);
}
END_TEST

START_TEST(test_scheduler_cancel_keeps_heap_order)
{
	struct sched_job job;
	struct sched *s;
	uint64_t last = 0;
	uint32_t i;

	ck_assert_int_eq(sched_new(SCHED_MAX_JOBS, &s), 0);
	for (i = 0; i < 100; i++) {
		job =
		    (struct sched_job){(i * 7919) % 101, i % 5,
				       i % 2 ? SCHED_EXPIRE : SCHED_REFRESH, 0};
		ck_assert_int_eq(sched_push(s, &job), 0);
	}
	ck_assert_uint_eq(sched_cancel(s, 3, SCHED_REFRESH), 10);
	ck_assert_uint_eq(sched_cancel(s, 4, -1), 20);
	ck_assert_uint_eq(sched_count(s), 70);
	while (sched_pop_due(s, UINT64_MAX, &job)) {
		ck_assert_uint_ge(job.deadline, last);
		ck_assert(job.slot != 4);
		ck_assert(!(job.slot == 3 && job.kind == SCHED_REFRESH));
		last = job.deadline;
	}
	sched_free(s);
}
END_TEST

START_TEST(test_scheduler_renew_at_two_thirds_with_jitter)
{
	uint64_t start = 1000 * SEC, ttl = 60 * SEC, at, prev = 0;
	uint32_t rnd;

	for (rnd = 0; rnd < 4000000000U; rnd += 7919 * 13) {
		at = sched_renew_at(start, start + ttl, rnd);
		ck_assert_uint_ge(at, start + ttl * 62 / 100);
		ck_assert_uint_le(at, start + ttl * 72 / 100);
	}
	/* Fine-grained: leases issued together renew spread over the whole
	 * window, not in a hundred bursts. */
	for (rnd = 0; rnd < 2000; rnd++) {
		at = sched_renew_at(start, start + 3600 * SEC, rnd);
		ck_assert_uint_gt(at, prev);
		prev = at;
	}
	ck_assert_uint_ne(sched_renew_at(start, start + ttl, 0),
			  sched_renew_at(start, start + ttl, 100));
	ck_assert_uint_eq(sched_renew_at(start, start, 5), start);
	ck_assert_uint_eq(sched_renew_at(start, start - 1, 5), start);
	/* Huge lifetimes do not overflow. */
	ck_assert_uint_gt(sched_renew_at(0, UINT64_MAX, 0), UINT64_MAX / 2);
}
END_TEST

START_TEST(test_scheduler_backoff_doubles_to_five_minutes)
{
	uint32_t rnd;
	unsigned a;

	for (a = 0; a < 40; a++) {
		uint64_t full = (2 * SEC) << (a < 20 ? a : 20);

		if (full > 300 * SEC)
			full = 300 * SEC;
		for (rnd = 0; rnd < 100000; rnd += 9973) {
			uint64_t d = sched_backoff(a, rnd);

			ck_assert_uint_ge(d, full / 2);
			ck_assert_uint_le(d, full);
		}
	}
	ck_assert_uint_ge(sched_backoff(0, 0), SEC);
	ck_assert_uint_le(sched_backoff(0, UINT32_MAX), 2 * SEC);
	ck_assert_uint_le(sched_backoff(1000, UINT32_MAX), 300 * SEC);
}
END_TEST

static Suite *scheduler_suite(void)
{
	Suite *s = suite_create("scheduler");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_scheduler_pops_in_deadline_order);
	tcase_add_test(tc, test_scheduler_cancel_keeps_heap_order);
	tcase_add_test(tc, test_scheduler_bounded_by_max_jobs);
	tcase_add_test(tc, test_scheduler_renew_at_two_thirds_with_jitter);
	tcase_add_test(tc, test_scheduler_backoff_doubles_to_five_minutes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(scheduler_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
