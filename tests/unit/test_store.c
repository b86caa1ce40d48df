#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include <check.h>

#include "store.h"

static uint64_t fake_now;

static uint64_t fake_mono(void *arg)
{
	(void)arg;
	return fake_now;
}

static int64_t fake_wall(void *arg)
{
	(void)arg;
	return (int64_t)fake_now;
}

static const struct clock fake_clock = {fake_mono, fake_wall, NULL};

static struct store *make_store(void)
{
	struct store_slot_info slots[2];
	struct store *st;

	memset(slots, 0, sizeof(slots));
	snprintf(slots[0].name, sizeof(slots[0].name), "%s", "db");
	snprintf(slots[1].name, sizeof(slots[1].name), "%s", "api");
	fake_now = 1000;
	ck_assert_int_eq(store_new(slots, 2, &fake_clock, &st), 0);
	return st;
}

static struct version *make_version(uint64_t seq, uint64_t expires,
				    const char *value)
{
	struct version *v;
	struct secret *s;

	ck_assert_int_eq(version_new(seq, expires, &v), 0);
	ck_assert_int_eq(secret_from(value, strlen(value), &s), 0);
	ck_assert_int_eq(version_add_file(v, "password", s), 0);
	return v;
}

static void publish(struct store *st, size_t slot, uint64_t seq,
		    uint64_t expires, const char *value)
{
	struct version *v = make_version(seq, expires, value);

	ck_assert_int_eq(store_publish(st, slot, v), 0);
	version_unref(v);
}

static int listener_calls;

static void count_changes(void *arg, size_t slot)
{
	(void)arg;
	(void)slot;
	listener_calls++;
}

START_TEST(test_store_pin_survives_rotation)
{
	struct store *st = make_store();
	struct version *pinned, *now;
	char buf[32];

	publish(st, 0, 1, 5000, "old-value");
	pinned = store_pin_current(st, 0);
	ck_assert_ptr_nonnull(pinned);
	publish(st, 0, 2, 9000, "new-value");
	ck_assert_int_eq(version_read(pinned, 0, buf, sizeof(buf), 0, 2000), 9);
	ck_assert_mem_eq(buf, "old-value", 9);
	now = store_pin_current(st, 0);
	ck_assert_uint_eq(version_seq(now), 2);
	ck_assert_int_eq(version_read(now, 0, buf, sizeof(buf), 4, 2000), 5);
	ck_assert_mem_eq(buf, "value", 5);
	version_unref(pinned);
	version_unref(now);
	store_free(st);
}
END_TEST

START_TEST(test_store_rejects_old_sequence)
{
	struct store *st = make_store();
	struct version *v;

	publish(st, 0, 5, 5000, "x");
	v = make_version(5, 5000, "y");
	ck_assert_int_eq(store_publish(st, 0, v), -EINVAL);
	version_unref(v);
	store_free(st);
}
END_TEST

START_TEST(test_store_kill_wipes_and_fails_reads)
{
	struct store *st = make_store();
	struct version *pinned;
	char buf[16];

	store_set_listener(st, count_changes, NULL);
	listener_calls = 0;
	publish(st, 0, 1, 5000, "secret");
	pinned = store_pin_current(st, 0);
	store_kill_slot(st, 0);
	ck_assert_int_eq(listener_calls, 2);
	ck_assert_ptr_null(store_pin_current(st, 0));
	ck_assert_int_eq(version_read(pinned, 0, buf, sizeof(buf), 0, 2000),
			 -EIO);
	ck_assert_uint_eq(version_file_size(pinned, 0), 0);
	ck_assert(!version_live(pinned, 2000));
	version_unref(pinned);
	store_free(st);
}
END_TEST

/* A version pushed out of the listing while a reader pins it stays
 * readable, and revocation and expiry still reach it. */
START_TEST(test_store_pushed_out_version_still_killed)
{
	struct store *st = make_store();
	struct version *pinned, *expiring;
	char buf[16];
	uint64_t i;

	publish(st, 0, 1, 50000, "first");
	pinned = store_pin_current(st, 0);
	publish(st, 0, 2, 3000, "second");
	expiring = store_pin_current(st, 0);
	for (i = 3; i <= STORE_KEEP_VERSIONS + 3; i++)
		publish(st, 0, i, 50000, "later");
	ck_assert_ptr_null(store_pin_seq(st, 0, 1));
	ck_assert_int_eq(version_read(pinned, 0, buf, sizeof(buf), 0, 2000), 5);
	/* Expiry reaches the orphan... */
	fake_now = 3000;
	store_expire(st, 0);
	ck_assert_int_eq(version_read(expiring, 0, buf, sizeof(buf), 0, 2000),
			 -EIO);
	ck_assert_int_eq(version_read(pinned, 0, buf, sizeof(buf), 0, 2000), 5);
	/* ...and so does revocation. */
	store_kill_slot(st, 0);
	ck_assert_int_eq(version_read(pinned, 0, buf, sizeof(buf), 0, 2000),
			 -EIO);
	ck_assert_uint_eq(version_file_size(pinned, 0), 0);
	version_unref(pinned);
	version_unref(expiring);
	store_free(st);
}
END_TEST

/* Readers pinning more old versions than the orphan table holds: the
 * oldest is killed rather than kept out of reach. */
START_TEST(test_store_orphan_table_full_kills_oldest)
{
	struct store *st = make_store();
	struct version *pins[STORE_KEEP_VERSIONS + 70];
	char buf[16];
	size_t i, n = STORE_KEEP_VERSIONS + 65;

	for (i = 0; i < n; i++) {
		publish(st, 0, i + 1, 50000, "v");
		pins[i] = store_pin_current(st, 0);
	}
	ck_assert_int_eq(version_read(pins[0], 0, buf, sizeof(buf), 0, 2000),
			 -EIO);
	ck_assert_int_eq(version_read(pins[1], 0, buf, sizeof(buf), 0, 2000),
			 1);
	for (i = 0; i < n; i++)
		version_unref(pins[i]);
	store_free(st);
}
END_TEST

START_TEST(test_store_expiry_hides_and_drops)
{
	struct store *st = make_store();
	struct version *pinned;
	uint64_t seqs[8];
	char buf[16];

	publish(st, 1, 1, 3000, "a");
	publish(st, 1, 2, 6000, "b");
	ck_assert_uint_eq(store_list_versions(st, 1, seqs, 8), 2);
	pinned = store_pin_seq(st, 1, 1);
	ck_assert_ptr_nonnull(pinned);
	fake_now = 3000;
	/* Past expiry: unreadable even before the scheduler drops it. */
	ck_assert_ptr_null(store_pin_seq(st, 1, 1));
	ck_assert_int_eq(version_read(pinned, 0, buf, sizeof(buf), 0, fake_now),
			 -EIO);
	ck_assert_uint_eq(store_list_versions(st, 1, seqs, 8), 1);
	ck_assert_uint_eq(seqs[0], 2);
	ck_assert_uint_eq(store_expire(st, 1), 1);
	fake_now = 6000;
	ck_assert_ptr_null(store_pin_current(st, 1));
	ck_assert_uint_eq(store_expire(st, 1), 1);
	version_unref(pinned);
	store_free(st);
}
END_TEST

/* A renewal moves the expiry of every version of the same credential
 * (seq >= from) later, never earlier, and leaves an older credential's
 * versions and killed ones alone. */
START_TEST(test_store_extend_renewed_versions)
{
	struct store *st = make_store();
	struct version *old_lease, *renewed;
	char buf[16];

	publish(st, 0, 1, 3000, "old");
	publish(st, 0, 2, 4000, "new");
	publish(st, 0, 3, 5000, "new");
	old_lease = store_pin_seq(st, 0, 1);
	renewed = store_pin_seq(st, 0, 2);
	ck_assert_uint_eq(store_extend(st, 0, 2, 9000), 2);
	ck_assert_uint_eq(store_extend(st, 0, 2, 8000), 0);
	fake_now = 6000;
	ck_assert_int_eq(
	    version_read(renewed, 0, buf, sizeof(buf), 0, fake_now), 3);
	ck_assert_int_eq(
	    version_read(old_lease, 0, buf, sizeof(buf), 0, fake_now), -EIO);
	ck_assert_uint_eq(store_expire(st, 0), 1);
	ck_assert_ptr_nonnull(renewed);
	version_kill(renewed);
	ck_assert_uint_eq(store_extend(st, 0, 2, 10000), 1);
	fake_now = 9500;
	ck_assert_int_eq(
	    version_read(renewed, 0, buf, sizeof(buf), 0, fake_now), -EIO);
	version_unref(old_lease);
	version_unref(renewed);
	store_free(st);
}
END_TEST

START_TEST(test_store_keeps_bounded_history)
{
	struct store *st = make_store();
	uint64_t seqs[16];
	size_t n;

	for (uint64_t i = 1; i <= STORE_KEEP_VERSIONS + 3; i++)
		publish(st, 0, i, 100000, "v");
	n = store_list_versions(st, 0, seqs, 16);
	ck_assert_uint_eq(n, STORE_KEEP_VERSIONS);
	ck_assert_uint_eq(seqs[n - 1], STORE_KEEP_VERSIONS + 3);
	ck_assert_uint_eq(seqs[0], 4);
	store_free(st);
}
END_TEST

START_TEST(test_store_version_files)
{
	struct version *v = make_version(1, 10, "pw");
	struct secret *s;

	ck_assert_int_eq(secret_from("x", 1, &s), 0);
	ck_assert_int_eq(version_add_file(v, "password", s), -EEXIST);
	ck_assert_int_eq(secret_from("x", 1, &s), 0);
	ck_assert_int_eq(version_add_file(v, "a/b", s), -EINVAL);
	ck_assert_int_eq(secret_from("x", 1, &s), 0);
	ck_assert_int_eq(version_add_file(v, "..data", s), -EINVAL);
	ck_assert_int_eq(secret_from("{}", 2, &s), 0);
	ck_assert_int_eq(version_add_file(v, ".lease.json", s), 0);
	ck_assert_int_eq(version_find_file(v, ".lease.json"), 1);
	ck_assert_int_eq(version_find_file(v, "nope"), -ENOENT);
	ck_assert_str_eq(version_file_name(v, 0), "password");
	ck_assert_uint_eq(version_file_size(v, 0), 2);
	version_unref(v);
}
END_TEST

START_TEST(test_store_rejects_bad_slots)
{
	struct store_slot_info slots[2];
	struct store *st;

	memset(slots, 0, sizeof(slots));
	snprintf(slots[0].name, sizeof(slots[0].name), "%s", "db");
	snprintf(slots[1].name, sizeof(slots[1].name), "%s", "db");
	ck_assert_int_eq(store_new(slots, 2, &fake_clock, &st), -EINVAL);
	snprintf(slots[1].name, sizeof(slots[1].name), "%s", ".hidden");
	ck_assert_int_eq(store_new(slots, 2, &fake_clock, &st), -EINVAL);
	snprintf(slots[1].name, sizeof(slots[1].name), "%s", "api");
	ck_assert_int_eq(store_new(slots, 2, &fake_clock, &st), 0);
	ck_assert_int_eq(store_slot_find(st, "api"), 1);
	ck_assert_int_eq(store_slot_find(st, "x"), -ENOENT);
	store_free(st);
}
END_TEST

START_TEST(test_store_version_holes_keep_indexes)
{
	struct version *v;
	struct secret *s;

	ck_assert_int_eq(version_new(1, 10, &v), 0);
	ck_assert_int_eq(secret_from("b", 1, &s), 0);
	ck_assert_int_eq(version_set_file(v, 2, "b", s), 0);
	ck_assert_uint_eq(version_file_count(v), 3);
	ck_assert(!version_has_file(v, 0));
	ck_assert_ptr_null(version_file_name(v, 1));
	ck_assert_int_eq(version_find_file(v, "b"), 2);
	ck_assert_int_eq(version_find_file(v, ""), -ENOENT);
	ck_assert_int_eq(secret_from("a", 1, &s), 0);
	ck_assert_int_eq(version_set_file(v, 0, "a", s), 0);
	ck_assert_int_eq(secret_from("x", 1, &s), 0);
	ck_assert_int_eq(version_set_file(v, 0, "c", s), -EEXIST);
	ck_assert_int_eq(secret_from("x", 1, &s), 0);
	ck_assert_int_eq(version_set_file(v, STORE_MAX_FILES, "d", s),
			 -EMSGSIZE);
	ck_assert_uint_eq(version_file_size(v, 1), 0);
	version_unref(v);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_store_pin_survives_rotation);
	tcase_add_test(tc, test_store_rejects_old_sequence);
	tcase_add_test(tc, test_store_kill_wipes_and_fails_reads);
	tcase_add_test(tc, test_store_pushed_out_version_still_killed);
	tcase_add_test(tc, test_store_orphan_table_full_kills_oldest);
	tcase_add_test(tc, test_store_expiry_hides_and_drops);
	tcase_add_test(tc, test_store_extend_renewed_versions);
	tcase_add_test(tc, test_store_keeps_bounded_history);
	tcase_add_test(tc, test_store_version_files);
	tcase_add_test(tc, test_store_rejects_bad_slots);
	tcase_add_test(tc, test_store_version_holes_keep_indexes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
