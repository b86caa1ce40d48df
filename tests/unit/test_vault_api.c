/* Vault wire-format parsing, on the verbatim samples of Vault's API docs
 * (../shared/testdata/vault-api/, kept byte for byte in the fuzz corpus
 * tests/fuzz/corpus/vault_api/ so a clone without ../shared runs them too;
 * tests/check_samples.sh keeps the two equal) and on malformed bodies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "vault_api.h"

static char *load_sample(const char *name, size_t *len)
{
	char path[1024];
	char *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", CB_SAMPLES_DIR, name);
	f = fopen(path, "re");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static const char *value(const struct kv *kv, const char *key, char *buf,
			 size_t size)
{
	const struct secret *s = kv_get(kv, key);
	size_t len;
	const char *p;

	ck_assert_msg(s != NULL, "no value %s", key);
	p = secret_expose(s, &len);
	ck_assert_uint_lt(len, size);
	memcpy(buf, p, len);
	buf[len] = '\0';
	return buf;
}

START_TEST(test_vault_api_login_sample)
{
	struct errmsg err = {{0}};
	struct vault_auth auth;
	size_t len;
	char *body = load_sample("auth-kubernetes-login.response.json", &len);

	ck_assert_int_eq(vault_parse_auth(body, len, true, &auth, &err), 0);
	ck_assert_int_eq(auth.lease_duration_s, 2764800);
	ck_assert(auth.renewable);
	ck_assert_mem_eq(secret_expose(auth.token, NULL),
			 "62b858f9-529c-6b26-e0b8-0457b6aacdb4", 36);
	secret_free(auth.token);
	free(body);
}
END_TEST

START_TEST(test_vault_api_renew_self_sample)
{
	struct errmsg err = {{0}};
	struct vault_auth auth;
	size_t len;
	char *body = load_sample("auth-token-renew-self.response.json", &len);

	ck_assert_int_eq(vault_parse_auth(body, len, false, &auth, &err), 0);
	ck_assert_int_eq(auth.lease_duration_s, 3600);
	secret_free(auth.token);
	free(body);
}
END_TEST

START_TEST(test_vault_api_creds_with_lease)
{
	/* The docs' sample shows only data; real responses carry the lease
	 * fields at the top level (shared/testdata/README.md). */
	static const char body[] =
	    "{\"request_id\":\"r\",\"lease_id\":\"database/creds/app/abcd\","
	    "\"renewable\":true,\"lease_duration\":3600,\"data\":"
	    "{\"username\":\"v-app-x\",\"password\":\"pw\",\"n\":5},"
	    "\"wrap_info\":null,\"warnings\":null,\"auth\":null}";
	struct errmsg err = {{0}};
	struct vault_secret sec;
	char buf[64];

	ck_assert_int_eq(vault_parse_secret(body, sizeof(body) - 1,
					    VAULT_LEASED, &sec, &err),
			 0);
	ck_assert_str_eq(sec.lease_id, "database/creds/app/abcd");
	ck_assert_int_eq(sec.lease_duration_s, 3600);
	ck_assert(sec.renewable);
	ck_assert_str_eq(value(&sec.values, "username", buf, sizeof(buf)),
			 "v-app-x");
	ck_assert_str_eq(value(&sec.values, "n", buf, sizeof(buf)), "5");
	kv_clear(&sec.values);
}
END_TEST

START_TEST(test_vault_api_creds_sample_without_lease_is_refused)
{
	struct errmsg err = {{0}};
	struct vault_secret sec;
	size_t len;
	char *body = load_sample("database-creds.response.json", &len);

	ck_assert_int_eq(
	    vault_parse_secret(body, len, VAULT_LEASED, &sec, &err), -EPROTO);
	ck_assert_ptr_nonnull(strstr(err.text, "no lease_id"));
	ck_assert_ptr_null(strstr(err.text, "132ae3ef"));
	/* The same body read as KV v1 is fine. */
	ck_assert_int_eq(vault_parse_secret(body, len, VAULT_KV1, &sec, &err),
			 0);
	ck_assert_uint_eq(sec.values.count, 2);
	kv_clear(&sec.values);
	free(body);
}
END_TEST

START_TEST(test_vault_api_kv2_sample)
{
	struct errmsg err = {{0}};
	struct vault_secret sec;
	char buf[16];
	size_t len;
	char *body = load_sample("kv-v2-read.response.json", &len);

	ck_assert_int_eq(vault_parse_secret(body, len, VAULT_KV2, &sec, &err),
			 0);
	ck_assert_int_eq(sec.kv_version, 2);
	ck_assert_uint_eq(sec.values.count, 1);
	ck_assert_str_eq(value(&sec.values, "foo", buf, sizeof(buf)), "bar");
	kv_clear(&sec.values);
	free(body);
}
END_TEST

START_TEST(test_vault_api_renew_sample)
{
	struct errmsg err = {{0}};
	bool renewable = false;
	int64_t d = 0;
	size_t len;
	char *body = load_sample("sys-leases-renew.response.json", &len);

	ck_assert_int_eq(vault_parse_renew(body, len, &d, &renewable, &err), 0);
	ck_assert_int_eq(d, 2764790);
	ck_assert(renewable);
	free(body);
}
END_TEST

START_TEST(test_vault_api_errors_sample)
{
	char text[128];
	size_t len;
	char *body = load_sample("error.response.json", &len);

	vault_error_text(403, body, len, text, sizeof(text));
	ck_assert_str_eq(text, "403 message; another message");
	free(body);
	body = load_sample("error-list-empty-404.response.json", &len);
	vault_error_text(404, body, len, text, sizeof(text));
	ck_assert_str_eq(text, "404");
	free(body);
	vault_error_text(502, "<html>\x01", 7, text, sizeof(text));
	ck_assert_str_eq(text, "502");
	body = strdup("{\"errors\":[\"a\\nb\\u0001\"]}");
	vault_error_text(400, body, strlen(body), text, sizeof(text));
	free(body);
	ck_assert_str_eq(text, "400 a?b?");
}
END_TEST

START_TEST(test_vault_api_malformed_bodies)
{
	static const char *const bad[] = {
	    "",
	    "null",
	    "[]",
	    "{\"auth\":null}",
	    "{\"auth\":{\"lease_duration\":\"10\",\"client_token\":\"x\"}}",
	    "{\"auth\":{\"lease_duration\":-1,\"client_token\":\"x\"}}",
	    "{\"auth\":{\"lease_duration\":10}}",
	    "{\"auth\":{\"lease_duration\":10,\"client_token\":5}}",
	    "{\"a\":1,\"a\":2}",
	    "{\"auth\":{\"lease_duration\":1e99}}",
	    /* Would overflow once in microseconds. */
	    ("{\"auth\":{\"lease_duration\":9223372036854775,"
	     "\"client_token\":\"x\"}}"),
	};
	struct errmsg err = {{0}};
	struct vault_secret sec;
	struct vault_auth auth;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(vault_parse_auth(bad[i], strlen(bad[i]), true,
					       &auth, &err) == -EPROTO,
			      "accepted: %s", bad[i]);
	ck_assert_int_eq(
	    vault_parse_secret("{\"data\":[]}", 11, VAULT_KV1, &sec, &err),
	    -EPROTO);
	static const char deleted[] =
	    "{\"data\":{\"data\":null,\"metadata\":{\"version\":3}}}";

	ck_assert_int_eq(vault_parse_secret(deleted, sizeof(deleted) - 1,
					    VAULT_KV2, &sec, &err),
			 -EPROTO);
	ck_assert_ptr_nonnull(strstr(err.text, "deleted or destroyed"));
}
END_TEST

START_TEST(test_vault_api_status_mapping)
{
	ck_assert_int_eq(vault_status_errno(400), -EINVAL);
	ck_assert_int_eq(vault_status_errno(403), -EACCES);
	ck_assert_int_eq(vault_status_errno(404), -ENOENT);
	ck_assert_int_eq(vault_status_errno(412), -EAGAIN);
	ck_assert_int_eq(vault_status_errno(429), -EAGAIN);
	ck_assert_int_eq(vault_status_errno(500), -EAGAIN);
	ck_assert_int_eq(vault_status_errno(503), -EAGAIN);
	ck_assert_int_eq(vault_status_errno(501), -EIO);
	ck_assert(!vault_status_retryable(404));
	ck_assert(!vault_status_retryable(501));
}
END_TEST

static Suite *vault_api_suite(void)
{
	Suite *s = suite_create("vault_api");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_vault_api_login_sample);
	tcase_add_test(tc, test_vault_api_renew_self_sample);
	tcase_add_test(tc, test_vault_api_creds_with_lease);
	tcase_add_test(tc,
		       test_vault_api_creds_sample_without_lease_is_refused);
	tcase_add_test(tc, test_vault_api_kv2_sample);
	tcase_add_test(tc, test_vault_api_renew_sample);
	tcase_add_test(tc, test_vault_api_errors_sample);
	tcase_add_test(tc, test_vault_api_malformed_bodies);
	tcase_add_test(tc, test_vault_api_status_mapping);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(vault_api_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
