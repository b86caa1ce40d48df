/* The webhook's JSON Patch and AdmissionReview logic, without the network
 * (tests/integration/test_webhook.py drives the HTTPS server). */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "webhook.h"

static json_t *J(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	ck_assert_msg(j != NULL, "bad test JSON: %s", text);
	return j;
}

static void assert_patch(const char *a, const char *b, const char *want)
{
	json_t *ja = J(a), *jb = J(b), *w = J(want),
	       *got = webhook_diff(ja, jb);
	char *text = json_dumps(got, JSON_COMPACT);

	ck_assert_msg(json_equal(got, w), "diff %s -> %s: %s", a, b, text);
	free(text);
	json_decref(ja);
	json_decref(jb);
	json_decref(w);
	json_decref(got);
}

START_TEST(test_webhook_diff)
{
	assert_patch("{\"a\":1}", "{\"a\":1}", "[]");
	assert_patch("{\"a\":1}", "{\"a\":2}",
		     "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]");
	assert_patch("{}", "{\"m\":{\"x/y~z\":\"v\"}}",
		     "[{\"op\":\"add\",\"path\":\"/m\",\"value\":"
		     "{\"x/y~z\":\"v\"}}]");
	assert_patch(
	    "{\"m\":{}}", "{\"m\":{\"x/y~z\":\"v\"}}",
	    "[{\"op\":\"add\",\"path\":\"/m/x~1y~0z\",\"value\":\"v\"}]");
	assert_patch(
	    "{\"l\":[1,2]}", "{\"l\":[0,1,2]}",
	    "[{\"op\":\"replace\",\"path\":\"/l\",\"value\":[0,1,2]}]");
	assert_patch("{\"a\":1,\"b\":2}", "{\"a\":1}",
		     "[{\"op\":\"remove\",\"path\":\"/b\"}]");
}
END_TEST

static json_t *review(const char *kind, const char *object)
{
	char text[4096];

	(void)snprintf(text, sizeof(text),
		       "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":"
		       "\"AdmissionReview\",\"request\":{\"uid\":\"u-1\","
		       "\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":"
		       "\"%s\"},\"object\":%s}}",
		       kind, object);
	return J(text);
}

#define POD(ann)                                                               \
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":"      \
	"\"p\",\"annotations\":{" ann "}},\"spec\":{\"containers\":[{"         \
	"\"name\":\"a\",\"image\":\"a\"}]}}"
#define GOOD                                                                   \
	"\"credbroker.io/inject\":\"true\",\"credbroker.io/role\":\"r\","      \
	"\"credbroker.io/vault-address\":\"https://v:8200\","                  \
	"\"credbroker.io/secret-db\":\"database/creds/r\","                    \
	"\"credbroker.io/readers\":\"1000\""

START_TEST(test_webhook_review_patches_pods)
{
	json_t *r = review("Pod", POD(GOOD)), *ans, *resp, *patch;
	struct errmsg err;
	const char *b64;
	unsigned char raw[65536];
	int n;

	ans = webhook_review(r, NULL, &err);
	resp = json_object_get(ans, "response");
	ck_assert_str_eq(json_string_value(json_object_get(ans, "kind")),
			 "AdmissionReview");
	ck_assert_str_eq(json_string_value(json_object_get(resp, "uid")),
			 "u-1");
	ck_assert(json_is_true(json_object_get(resp, "allowed")));
	ck_assert_str_eq(json_string_value(json_object_get(resp, "patchType")),
			 "JSONPatch");
	b64 = json_string_value(json_object_get(resp, "patch"));
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
	ck_assert_int_gt(n, 0);
	while (n > 0 && raw[n - 1] == '\0')
		n--;
	patch = json_loadb((const char *)raw, (size_t)n, 0, NULL);
	ck_assert(json_is_array(patch));
	ck_assert_uint_ge(json_array_size(patch), 4);
	json_decref(patch);
	json_decref(ans);
	json_decref(r);
}
END_TEST

START_TEST(test_webhook_review_leaves_and_refuses)
{
	struct errmsg err;
	json_t *r, *ans, *resp, *bad;

	/* Not annotated, and not a Pod: admitted as is. */
	r = review("Pod", POD("\"x\":\"y\""));
	ans = webhook_review(r, NULL, &err);
	resp = json_object_get(ans, "response");
	ck_assert(json_is_true(json_object_get(resp, "allowed")));
	ck_assert_ptr_null(json_object_get(resp, "patch"));
	json_decref(ans);
	json_decref(r);
	r = review("Deployment", POD(GOOD));
	ans = webhook_review(r, NULL, &err);
	ck_assert_ptr_null(
	    json_object_get(json_object_get(ans, "response"), "patch"));
	json_decref(ans);
	json_decref(r);
	/* Bad annotations: refused, with the annotation named. */
	r = review("Pod", POD("\"credbroker.io/inject\":\"true\","
			      "\"credbroker.io/readers\":\"1000\","
			      "\"credbroker.io/vault-address\":\"https://v\","
			      "\"credbroker.io/secret-db\":\"x\""));
	ans = webhook_review(r, NULL, &err);
	resp = json_object_get(ans, "response");
	ck_assert(json_is_false(json_object_get(resp, "allowed")));
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(resp, "status"), "code")),
			 400);
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(
		       json_object_get(resp, "status"), "message")),
		   "credbroker.io/role"));
	json_decref(ans);
	json_decref(r);
	/* Not an AdmissionReview. */
	bad = J("{\"kind\":\"Pod\"}");
	ck_assert_ptr_null(webhook_review(bad, NULL, &err));
	ck_assert_ptr_nonnull(strstr(err.text, "AdmissionReview"));
	json_decref(bad);
}
END_TEST

static Suite *webhook_suite(void)
{
	Suite *s = suite_create("webhook");
	TCase *tc = tcase_create("review");

	tcase_add_test(tc, test_webhook_diff);
	tcase_add_test(tc, test_webhook_review_patches_pods);
	tcase_add_test(tc, test_webhook_review_leaves_and_refuses);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(webhook_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
