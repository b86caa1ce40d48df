#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdbool.h>
#include <stdio.h>

#include <check.h>

#include "kv.h"
#include "secret.h"

/* "start-end ..." of an smaps header line. */
static bool mapping_range(const char *line, unsigned long *start,
			  unsigned long *end)
{
	char *p;

	*start = strtoul(line, &p, 16);
	if (*p != '-')
		return false;
	*end = strtoul(p + 1, &p, 16);
	return *p == ' ';
}

/* The mapping that holds addr shows flag (" dd": not dumped, " lo":
 * locked) in its VmFlags in /proc/self/smaps. */
static bool mapping_has_flag(const void *addr, const char *flag)
{
	unsigned long a = (unsigned long)addr, start, end;
	char line[512];
	bool in = false, found = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		/* Mapping headers start with a lower-case hex address,
		 * field lines with a capitalised name. */
		if ((line[0] >= '0' && line[0] <= '9') ||
		    (line[0] >= 'a' && line[0] <= 'f'))
			in = mapping_range(line, &start, &end) && a >= start &&
			     a < end;
		if (in && strncmp(line, "VmFlags:", 8) == 0 &&
		    strstr(line, flag) != NULL)
			found = true;
	}
	fclose(f);
	return found;
}

START_TEST(test_secret_holds_bytes)
{
	struct secret *s;
	size_t len;
	char *p;

	ck_assert_int_eq(secret_from("hunter2", 7, &s), 0);
	p = secret_expose(s, &len);
	ck_assert_uint_eq(len, 7);
	ck_assert_mem_eq(p, "hunter2", 7);
	ck_assert_uint_eq(secret_len(s), 7);
	secret_free(s);
}
END_TEST

START_TEST(test_secret_pages_not_dumped)
{
	struct secret *s;

	ck_assert_int_eq(secret_new(100, &s), 0);
	ck_assert(mapping_has_flag(secret_expose(s, NULL), " dd"));
	secret_free(s);
}
END_TEST

/* Small secrets share locked, undumped slabs; a large one has its own
 * mapping, with the same flags. */
START_TEST(test_secret_small_ones_share_slabs)
{
	struct secret *a, *b, *big;
	char *pa, *pb;

	ck_assert_int_eq(secret_from("hunter2", 7, &a), 0);
	ck_assert_int_eq(secret_from("correct-horse", 13, &b), 0);
	pa = secret_expose(a, NULL);
	pb = secret_expose(b, NULL);
	/* One page holds both: a mapping per secret would put them on two. */
	ck_assert_uint_eq((uintptr_t)pa / 4096, (uintptr_t)pb / 4096);
	ck_assert(mapping_has_flag(pa, " dd"));
	ck_assert_int_eq(secret_new(64 * 1024, &big), 0);
	ck_assert(mapping_has_flag(secret_expose(big, NULL), " dd"));
#ifndef __SANITIZE_ADDRESS__ /* ASan's mlock() locks nothing */
	ck_assert(mapping_has_flag(pa, " lo"));
	ck_assert(mapping_has_flag(secret_expose(big, NULL), " lo"));
#endif
	ck_assert_mem_eq(pa, "hunter2", 7);
	ck_assert_mem_eq(pb, "correct-horse", 13);
	secret_free(big);
	secret_free(a);
	secret_free(b);
}
END_TEST

/* A chunk given back is wiped before anyone gets it again, and slabs fill,
 * empty and go away without mixing two secrets. */
START_TEST(test_secret_chunks_wiped_and_reused)
{
	enum { N = 3000 };
	static struct secret *many[N];
	struct secret *s;
	unsigned char *p;
	size_t i, j, len;
	char want[40];

	for (i = 0; i < N; i++) {
		len = (size_t)snprintf(want, sizeof(want), "value-%zu", i);
		ck_assert_int_eq(secret_from(want, len, &many[i]), 0);
	}
	for (i = 0; i < N; i += 2) {
		secret_free(many[i]);
		many[i] = NULL;
	}
	for (i = 0; i < N; i += 2) {
		ck_assert_int_eq(secret_new(20, &many[i]), 0);
		p = secret_expose(many[i], NULL);
		for (j = 0; j < 32; j++)
			ck_assert_int_eq(p[j], 0);
	}
	for (i = 1; i < N; i += 2) {
		len = (size_t)snprintf(want, sizeof(want), "value-%zu", i);
		ck_assert_mem_eq(secret_expose(many[i], NULL), want, len);
	}
	for (i = 0; i < N; i++)
		secret_free(many[i]);
	ck_assert_int_eq(secret_new(0, &s), 0);
	ck_assert_uint_eq(secret_capacity(s), 0);
	secret_free(s);
}
END_TEST

START_TEST(test_secret_caps_size)
{
	struct secret *s = NULL;

	ck_assert_int_eq(secret_new(SECRET_MAX_LEN + 1, &s), -EMSGSIZE);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(secret_new(10, &s), 0);
	ck_assert_int_eq(secret_set_len(s, 11), -EMSGSIZE);
	ck_assert_int_eq(secret_set_len(s, 10), 0);
	secret_free(s);
	secret_free(NULL);
}
END_TEST

START_TEST(test_secret_wipe_zeroes)
{
	char buf[16] = "sensitive";

	secret_wipe(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_int_eq(buf[i], 0);
}
END_TEST

START_TEST(test_secret_kv_set_get_replace)
{
	struct kv kv;
	size_t len;

	memset(&kv, 0, sizeof(kv));
	ck_assert_int_eq(kv_set_str(&kv, "user", "a"), 0);
	ck_assert_int_eq(kv_set_str(&kv, "user", "bb"), 0);
	ck_assert_uint_eq(kv.count, 1);
	ck_assert_mem_eq(secret_expose(kv_get(&kv, "user"), &len), "bb", 2);
	ck_assert_uint_eq(len, 2);
	ck_assert_ptr_null(kv_get(&kv, "nope"));
	ck_assert_int_eq(kv_set_str(&kv, "", "x"), -EINVAL);
	for (int i = 1; i < KV_MAX_ITEMS; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_int_eq(kv_set_str(&kv, key, "v"), 0);
	}
	ck_assert_int_eq(kv_set_str(&kv, "overflow", "v"), -EMSGSIZE);
	kv_clear(&kv);
	ck_assert_uint_eq(kv.count, 0);
}
END_TEST

static Suite *secret_suite(void)
{
	Suite *s = suite_create("secret");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_secret_holds_bytes);
	tcase_add_test(tc, test_secret_pages_not_dumped);
	tcase_add_test(tc, test_secret_caps_size);
	tcase_add_test(tc, test_secret_small_ones_share_slabs);
	tcase_add_test(tc, test_secret_chunks_wiped_and_reused);
	tcase_add_test(tc, test_secret_wipe_zeroes);
	tcase_add_test(tc, test_secret_kv_set_get_replace);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(secret_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
