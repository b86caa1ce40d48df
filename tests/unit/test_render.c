#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "render.h"

static const struct render_env_name pg_names[] = {
    {"username", "PGUSER"},
    {"password", "PGPASSWORD"},
    {NULL, NULL},
};

static void fill(struct kv *kv, const char *host)
{
	memset(kv, 0, sizeof(*kv));
	ck_assert_int_eq(kv_set_str(kv, "username", "cb_db_1"), 0);
	ck_assert_int_eq(kv_set_str(kv, "password", "p@ss'w:rd/\"x"), 0);
	ck_assert_int_eq(kv_set_str(kv, "host", host), 0);
	ck_assert_int_eq(kv_set_str(kv, "port", "5432"), 0);
	ck_assert_int_eq(kv_set_str(kv, "dbname", "app db"), 0);
}

static void check_render(const struct kv *kv, const char *spec,
			 const char *want)
{
	struct errmsg err = {{0}};
	struct secret *out;
	size_t len;
	char *p;

	ck_assert_int_eq(render_file(spec, kv, pg_names, &out, &err), 0);
	p = secret_expose(out, &len);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_mem_eq(p, want, len);
	secret_free(out);
}

START_TEST(test_render_raw_key)
{
	struct kv kv;

	fill(&kv, "db.example");
	check_render(&kv, "username", "cb_db_1");
	kv_clear(&kv);
}
END_TEST

START_TEST(test_render_dsn_tcp_host_percent_encodes)
{
	struct kv kv;

	fill(&kv, "db.example");
	check_render(&kv, "dsn",
		     "postgresql://cb_db_1:p%40ss%27w%3Ard%2F%22x"
		     "@db.example:5432/app%20db");
	kv_clear(&kv);
}
END_TEST

START_TEST(test_render_dsn_socket_dir_in_query)
{
	struct kv kv;

	fill(&kv, "/tmp/pg sock");
	check_render(&kv, "dsn",
		     "postgresql://cb_db_1:p%40ss%27w%3Ard%2F%22x"
		     "@/app%20db?host=%2Ftmp%2Fpg%20sock&port=5432");
	kv_clear(&kv);
}
END_TEST

START_TEST(test_render_env_quotes_and_names)
{
	struct kv kv;

	fill(&kv, "h");
	ck_assert_int_eq(kv_set_str(&kv, "api-key.v2", "z"), 0);
	check_render(&kv, "env",
		     "PGUSER='cb_db_1'\n"
		     "PGPASSWORD='p@ss'\\''w:rd/\"x'\n"
		     "HOST='h'\nPORT='5432'\nDBNAME='app db'\n"
		     "API_KEY_V2='z'\n");
	kv_clear(&kv);
}
END_TEST

START_TEST(test_render_json_escapes)
{
	struct kv kv;

	memset(&kv, 0, sizeof(kv));
	ck_assert_int_eq(kv_set(&kv, "k", "a\"b\\c\n\x01", 7), 0);
	check_render(&kv, "json", "{\"k\":\"a\\\"b\\\\c\\u000a\\u0001\"}\n");
	kv_clear(&kv);
}
END_TEST

START_TEST(test_render_missing_key_is_named)
{
	struct errmsg err = {{0}};
	struct secret *out = NULL;
	struct kv kv;

	memset(&kv, 0, sizeof(kv));
	ck_assert_int_eq(kv_set_str(&kv, "username", "u"), 0);
	ck_assert_int_eq(render_file("dsn", &kv, NULL, &out, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.text, "password"));
	ck_assert_int_eq(render_file("token", &kv, NULL, &out, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.text, "token"));
	ck_assert_ptr_null(out);
	ck_assert(render_is_format("env"));
	ck_assert(!render_is_format("username"));
	kv_clear(&kv);
}
END_TEST

static Suite *render_suite(void)
{
	Suite *s = suite_create("render");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_render_raw_key);
	tcase_add_test(tc, test_render_dsn_tcp_host_percent_encodes);
	tcase_add_test(tc, test_render_dsn_socket_dir_in_query);
	tcase_add_test(tc, test_render_env_quotes_and_names);
	tcase_add_test(tc, test_render_json_escapes);
	tcase_add_test(tc, test_render_missing_key_is_named);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(render_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
