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

static void fill_aws(struct kv *kv, int session)
{
	memset(kv, 0, sizeof(*kv));
	ck_assert_int_eq(kv_set_str(kv, "access_key_id", "AKIDEXAMPLE"), 0);
	ck_assert_int_eq(kv_set_str(kv, "secret_access_key",
				    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
			 0);
	if (session) {
		ck_assert_int_eq(
		    kv_set_str(kv, "session_token", "FwoG+Tok/en="), 0);
		ck_assert_int_eq(
		    kv_set_str(kv, "expiration", "2026-12-04T19:00:00Z"), 0);
	}
}

START_TEST(test_render_credentials_long_term)
{
	struct kv kv;

	fill_aws(&kv, 0);
	check_render(&kv, "credentials",
		     "[default]\n"
		     "aws_access_key_id = AKIDEXAMPLE\n"
		     "aws_secret_access_key = "
		     "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n");
	kv_clear(&kv);
}
END_TEST

/* The expiration has no place in the INI file; only the token is added. */
START_TEST(test_render_credentials_session)
{
	struct kv kv;

	fill_aws(&kv, 1);
	check_render(&kv, "credentials",
		     "[default]\n"
		     "aws_access_key_id = AKIDEXAMPLE\n"
		     "aws_secret_access_key = "
		     "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"
		     "aws_session_token = FwoG+Tok/en=\n");
	kv_clear(&kv);
}
END_TEST

/* A newline in any value would let it forge a line of its own; the error
 * names the key and never carries the value. */
START_TEST(test_render_credentials_refuses_control_bytes)
{
	static const char *const keys[] = {"access_key_id", "secret_access_key",
					   "session_token"};
	static const char *const bad[] = {"x\ny", "x\ry", "x\ty", "x\x7fy",
					  "x\x01y"};
	struct errmsg err = {{0}};
	struct secret *out = NULL;
	size_t i, j;
	struct kv kv;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			fill_aws(&kv, 1);
			ck_assert_int_eq(kv_set_str(&kv, keys[i], bad[j]), 0);
			ck_assert_int_eq(
			    render_file("credentials", &kv, NULL, &out, &err),
			    -EINVAL);
			ck_assert_ptr_nonnull(strstr(err.text, keys[i]));
			ck_assert_ptr_null(strstr(err.text, bad[j]));
			ck_assert_ptr_null(out);
			kv_clear(&kv);
		}
	}
	/* The expiration is not written to the INI file, so it is not
	 * checked either. */
	fill_aws(&kv, 1);
	ck_assert_int_eq(kv_set_str(&kv, "expiration", "x\ny"), 0);
	ck_assert_int_eq(render_file("credentials", &kv, NULL, &out, &err), 0);
	secret_free(out);
	kv_clear(&kv);
}
END_TEST

START_TEST(test_render_credential_process_long_term)
{
	struct kv kv;

	fill_aws(&kv, 0);
	check_render(&kv, "credential_process",
		     "{\"Version\":1,\"AccessKeyId\":\"AKIDEXAMPLE\","
		     "\"SecretAccessKey\":"
		     "\"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\"}\n");
	kv_clear(&kv);
}
END_TEST

START_TEST(test_render_credential_process_session)
{
	struct kv kv;

	fill_aws(&kv, 1);
	check_render(&kv, "credential_process",
		     "{\"Version\":1,\"AccessKeyId\":\"AKIDEXAMPLE\","
		     "\"SecretAccessKey\":"
		     "\"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\","
		     "\"SessionToken\":\"FwoG+Tok/en=\","
		     "\"Expiration\":\"2026-12-04T19:00:00Z\"}\n");
	kv_clear(&kv);
}
END_TEST

/* Each optional member stands on its own. */
START_TEST(test_render_credential_process_optional_members)
{
	struct kv kv;

	fill_aws(&kv, 0);
	ck_assert_int_eq(kv_set_str(&kv, "expiration", "2026-12-04T19:00:00Z"),
			 0);
	check_render(&kv, "credential_process",
		     "{\"Version\":1,\"AccessKeyId\":\"AKIDEXAMPLE\","
		     "\"SecretAccessKey\":"
		     "\"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\","
		     "\"Expiration\":\"2026-12-04T19:00:00Z\"}\n");
	kv_clear(&kv);
	fill_aws(&kv, 0);
	ck_assert_int_eq(kv_set_str(&kv, "session_token", "t"), 0);
	check_render(&kv, "credential_process",
		     "{\"Version\":1,\"AccessKeyId\":\"AKIDEXAMPLE\","
		     "\"SecretAccessKey\":"
		     "\"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\","
		     "\"SessionToken\":\"t\"}\n");
	kv_clear(&kv);
}
END_TEST

/* JSON can carry any byte, so nothing is refused: quotes, backslashes and
 * control bytes are escaped, and the whole escaped worst case fits. */
START_TEST(test_render_credential_process_escapes)
{
	char big[2048];
	struct errmsg err = {{0}};
	struct secret *out;
	size_t len;
	struct kv kv;

	fill_aws(&kv, 0);
	ck_assert_int_eq(kv_set(&kv, "secret_access_key", "a\"b\\c\n\x01", 7),
			 0);
	ck_assert_int_eq(kv_set_str(&kv, "session_token", "x\ry\x7f"), 0);
	check_render(&kv, "credential_process",
		     "{\"Version\":1,\"AccessKeyId\":\"AKIDEXAMPLE\","
		     "\"SecretAccessKey\":\"a\\\"b\\\\c\\u000a\\u0001\","
		     "\"SessionToken\":\"x\\u000dy\\u007f\"}\n");
	memset(big, 0x01, sizeof(big));
	ck_assert_int_eq(kv_set(&kv, "access_key_id", big, sizeof(big)), 0);
	ck_assert_int_eq(kv_set(&kv, "secret_access_key", big, sizeof(big)), 0);
	ck_assert_int_eq(kv_set(&kv, "session_token", big, sizeof(big)), 0);
	ck_assert_int_eq(kv_set(&kv, "expiration", big, sizeof(big)), 0);
	ck_assert_int_eq(
	    render_file("credential_process", &kv, NULL, &out, &err), 0);
	(void)secret_expose(out, &len);
	ck_assert_uint_eq(len, 4 * (6 * sizeof(big) + 2) + 2 +
				   strlen("{\"Version\":1,\"AccessKeyId\":,"
					  "\"SecretAccessKey\":,"
					  "\"SessionToken\":,"
					  "\"Expiration\":"));
	secret_free(out);
	kv_clear(&kv);
}
END_TEST

START_TEST(test_render_aws_missing_keys_are_named)
{
	static const char *const specs[] = {"credentials",
					    "credential_process"};
	struct errmsg err = {{0}};
	struct secret *out = NULL;
	struct kv kv;
	size_t i;

	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		ck_assert(render_is_format(specs[i]));
		memset(&kv, 0, sizeof(kv));
		ck_assert_int_eq(kv_set_str(&kv, "secret_access_key", "s"), 0);
		ck_assert_int_eq(render_file(specs[i], &kv, NULL, &out, &err),
				 -ENOENT);
		ck_assert_ptr_nonnull(strstr(err.text, "\"access_key_id\""));
		ck_assert_ptr_nonnull(strstr(err.text, specs[i]));
		kv_clear(&kv);
		ck_assert_int_eq(kv_set_str(&kv, "access_key_id", "a"), 0);
		ck_assert_int_eq(kv_set_str(&kv, "session_token", "t"), 0);
		ck_assert_int_eq(render_file(specs[i], &kv, NULL, &out, &err),
				 -ENOENT);
		ck_assert_ptr_nonnull(
		    strstr(err.text, "\"secret_access_key\""));
		ck_assert_ptr_null(out);
		kv_clear(&kv);
	}
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
	tcase_add_test(tc, test_render_credentials_long_term);
	tcase_add_test(tc, test_render_credentials_session);
	tcase_add_test(tc, test_render_credentials_refuses_control_bytes);
	tcase_add_test(tc, test_render_credential_process_long_term);
	tcase_add_test(tc, test_render_credential_process_session);
	tcase_add_test(tc, test_render_credential_process_optional_members);
	tcase_add_test(tc, test_render_credential_process_escapes);
	tcase_add_test(tc, test_render_aws_missing_keys_are_named);
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
