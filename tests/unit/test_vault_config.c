/* The vault backend's config objects: defaults, and every kind of bad
 * input failing with the JSON path of the offending value. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "vault_config.h"

static int parse_backend(const char *text, struct vault_config **ret,
			 struct errmsg *err)
{
	json_t *obj = json_loads(text, 0, NULL);
	void *cfg = NULL;
	int r;

	ck_assert_msg(obj != NULL, "bad test JSON: %s", text);
	r = vault_config_parse(obj, "backends.v", &cfg, err);
	json_decref(obj);
	*ret = cfg;
	return r;
}

static int parse_secret(const char *text, struct vault_secret_config **ret,
			struct errmsg *err)
{
	json_t *obj = text ? json_loads(text, 0, NULL) : NULL;
	void *cfg = NULL;
	int r;

	r = vault_secret_config_parse(obj, "secrets[0].vault", &cfg, err);
	json_decref(obj);
	*ret = cfg;
	return r;
}

START_TEST(test_vault_config_defaults)
{
	struct vault_config *c;
	struct errmsg err;

	ck_assert_int_eq(parse_backend("{\"address\":\"https://vault:8200\","
				       "\"auth\":{\"role\":\"app\"}}",
				       &c, &err),
			 0);
	ck_assert_str_eq(c->address, "https://vault:8200");
	ck_assert_str_eq(c->auth_mount, "kubernetes");
	ck_assert_str_eq(c->token_file, VAULT_DEFAULT_TOKEN_FILE);
	ck_assert_str_eq(c->namespace_, "");
	ck_assert_uint_eq(c->connect_timeout_usec, 5000000);
	ck_assert_uint_eq(c->request_timeout_usec, 30000000);
	ck_assert_uint_eq(c->max_response_bytes, 1048576);
	vault_config_free(c);
}
END_TEST

START_TEST(test_vault_config_errors_name_the_path)
{
	static const struct {
		const char *json, *needle;
	} cases[] = {
	    {"{\"address\":\"https://v\",\"auth\":{\"role\":\"a\"},"
	     "\"colour\":1}",
	     "backends.v.colour: unknown key"},
	    {"{\"auth\":{\"role\":\"a\"}}", "backends.v.address: required"},
	    {"{\"address\":\"http://v:8200\",\"auth\":{\"role\":\"a\"}}",
	     "backends.v.address: expected https://"},
	    {"{\"address\":\"https://v\"}", "backends.v.auth: required"},
	    {"{\"address\":\"https://v\",\"auth\":{}}",
	     "backends.v.auth.role: required"},
	    {"{\"address\":\"https://v\",\"auth\":{\"role\":\"a\","
	     "\"method\":\"approle\"}}",
	     "backends.v.auth.method"},
	    {"{\"address\":\"https://v\",\"auth\":{\"role\":7}}",
	     "backends.v.auth.role: expected a string"},
	    {"{\"address\":\"https://v\",\"auth\":{\"role\":\"a\"},"
	     "\"tls\":{\"cert_file\":\"/c\"}}",
	     "backends.v.tls: cert_file and key_file go together"},
	    {"{\"address\":\"https://v\",\"auth\":{\"role\":\"a\"},"
	     "\"tls\":{\"pinned_public_key\":\"abc\"}}",
	     "backends.v.tls.pinned_public_key"},
	    {"{\"address\":\"https://v\",\"auth\":{\"role\":\"a\"},"
	     "\"tls\":{\"verify\":false}}",
	     "backends.v.tls.verify: unknown"},
	    {"{\"address\":\"https://v\",\"auth\":{\"role\":\"a\"},"
	     "\"request_timeout\":\"1h\"}",
	     "backends.v.request_timeout"},
	    {"{\"address\":\"https://v\",\"auth\":{\"role\":\"a\"},"
	     "\"max_response_bytes\":10}",
	     "backends.v.max_response_bytes"},
	};
	struct vault_config *c;
	struct errmsg err;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(parse_backend(cases[i].json, &c, &err),
				 -EINVAL);
		ck_assert_msg(strstr(err.text, cases[i].needle) != NULL,
			      "case %zu: \"%s\" lacks \"%s\"", i, err.text,
			      cases[i].needle);
	}
}
END_TEST

START_TEST(test_vault_secret_config)
{
	struct vault_secret_config *s;
	struct errmsg err;

	ck_assert_int_eq(parse_secret("{\"path\":\"database/creds/app\","
				      "\"host\":\"db\",\"port\":\"5432\"}",
				      &s, &err),
			 0);
	ck_assert_int_eq(s->kind, VAULT_LEASED);
	ck_assert_str_eq(s->method, "GET");
	ck_assert_str_eq(s->host, "db");
	vault_secret_config_free(s);
	ck_assert_int_eq(parse_secret("{\"kind\":\"kv2\",\"path\":\"app\","
				      "\"mount\":\"team\",\"version\":4}",
				      &s, &err),
			 0);
	ck_assert_int_eq(s->kind, VAULT_KV2);
	ck_assert_str_eq(s->mount, "team");
	ck_assert_int_eq(s->version, 4);
	vault_secret_config_free(s);
}
END_TEST

START_TEST(test_vault_secret_config_errors)
{
	static const struct {
		const char *json, *needle;
	} cases[] = {
	    {NULL, "secrets[0].vault: required"},
	    {"{}", "secrets[0].vault.path: required"},
	    {"{\"path\":\"/abs\"}", "secrets[0].vault.path: a relative"},
	    {"{\"path\":\"a/../sys\"}", "secrets[0].vault.path: a relative"},
	    {"{\"path\":\"a?list=true\"}", "character '?'"},
	    {"{\"path\":\"a b\"}", "outside the path alphabet"},
	    {"{\"path\":\"a\",\"kind\":\"kv3\"}", "secrets[0].vault.kind"},
	    {"{\"path\":\"a\",\"version\":2}", "for kind \"kv2\" only"},
	    {"{\"path\":\"a\",\"kind\":\"kv2\",\"version\":0}",
	     "a positive integer"},
	    {"{\"path\":\"a\",\"method\":\"DELETE\"}",
	     "secrets[0].vault.method"},
	    {"{\"path\":\"a\",\"ttl\":\"1h\"}",
	     "secrets[0].vault.ttl: unknown key"},
	};
	struct vault_secret_config *s;
	struct errmsg err;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(parse_secret(cases[i].json, &s, &err),
				 -EINVAL);
		ck_assert_msg(strstr(err.text, cases[i].needle) != NULL,
			      "case %zu: \"%s\" lacks \"%s\"", i, err.text,
			      cases[i].needle);
	}
}
END_TEST

static Suite *vault_config_suite(void)
{
	Suite *s = suite_create("vault_config");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_vault_config_defaults);
	tcase_add_test(tc, test_vault_config_errors_name_the_path);
	tcase_add_test(tc, test_vault_secret_config);
	tcase_add_test(tc, test_vault_secret_config_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vault_config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
