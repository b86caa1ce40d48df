/* The libcurl transport against a real TLS server (tests/sim/https_fixture.py
 * starts it and names its ports in the environment): methods, headers from
 * secret memory, the body cap, timeouts, dropped connections, and every TLS
 * option refusing what it should. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "http.h"
#include "secret.h"

static char pki_dir[512];
static int port, mtls_port, closed_port;
static const char *pin;

static void fixture_env(void)
{
	const char *p = getenv("CB_TEST_HTTPS_PORT");

	ck_assert_msg(p != NULL, "run under tests/sim/https_fixture.py");
	port = (int)strtol(p, NULL, 10);
	mtls_port = (int)strtol(getenv("CB_TEST_HTTPS_MTLS_PORT"), NULL, 10);
	closed_port = (int)strtol(getenv("CB_TEST_HTTPS_CLOSED"), NULL, 10);
	(void)snprintf(pki_dir, sizeof(pki_dir), "%s",
		       getenv("CB_TEST_PKI_DIR"));
	pin = getenv("CB_TEST_HTTPS_PIN");
}

static char ca_path[600], other_ca_path[600], cert_path[600], key_path[600];

static void paths(void)
{
	fixture_env();
	(void)snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", pki_dir);
	(void)snprintf(other_ca_path, sizeof(other_ca_path), "%s/other-ca.pem",
		       pki_dir);
	(void)snprintf(cert_path, sizeof(cert_path), "%s/client.pem", pki_dir);
	(void)snprintf(key_path, sizeof(key_path), "%s/client.key", pki_dir);
}

static struct http_config base_config(void)
{
	struct http_config c;

	memset(&c, 0, sizeof(c));
	c.connect_timeout_usec = 2000000;
	c.total_timeout_usec = 5000000;
	c.tls.ca_file = ca_path;
	return c;
}

static struct http_transport *transport(const struct http_config *c)
{
	struct http_transport *t = NULL;
	struct errmsg err;

	ck_assert_int_eq(http_curl_new(c, &t, &err), 0);
	return t;
}

/* Performs method url with an optional body; returns perform's result and
 * fills resp. */
static int call(struct http_transport *t, const char *method, int p,
		const char *path, const char *body, struct http_response *resp,
		struct errmsg *err)
{
	struct secret *token = NULL, *b = NULL;
	struct http_header h[2];
	struct http_request req;
	char url[256];
	int r;

	ck_assert_int_eq(secret_from("s.test-token", 12, &token), 0);
	if (body != NULL)
		ck_assert_int_eq(secret_from(body, strlen(body), &b), 0);
	h[0] = (struct http_header){"X-Vault-Token", token, NULL};
	h[1] = (struct http_header){"X-Vault-Request", NULL, "true"};
	(void)snprintf(url, sizeof(url), "https://localhost:%d%s", p, path);
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;
	req.headers = h;
	req.header_count = 2;
	req.body = b;
	req.content_type = "application/json";
	memset(resp, 0, sizeof(*resp));
	r = t->ops->perform(t, &req, resp, err);
	secret_free(token);
	secret_free(b);
	return r;
}

static json_t *echo_json(const struct http_response *resp)
{
	size_t len;
	const char *p = secret_expose(resp->body, &len);
	json_t *j = json_loadb(p, len, 0, NULL);

	ck_assert_ptr_nonnull(j);
	return j;
}

START_TEST(test_http_get_sends_headers)
{
	struct http_config c = base_config();
	struct http_transport *t = transport(&c);
	struct http_response resp;
	struct errmsg err;
	json_t *j, *h;

	ck_assert_int_eq(call(t, "GET", port, "/echo", NULL, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 200);
	j = echo_json(&resp);
	h = json_object_get(j, "headers");
	ck_assert_str_eq(json_string_value(json_object_get(j, "method")),
			 "GET");
	ck_assert_str_eq(json_string_value(json_object_get(h, "x-vault-token")),
			 "s.test-token");
	ck_assert_str_eq(
	    json_string_value(json_object_get(h, "x-vault-request")), "true");
	ck_assert_ptr_null(json_object_get(h, "expect"));
	json_decref(j);
	secret_free(resp.body);
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_methods_carry_body)
{
	static const char *const methods[] = {"POST", "PUT", "LIST", "DELETE"};
	struct http_config c = base_config();
	struct http_transport *t = transport(&c);
	struct http_response resp;
	struct errmsg err;
	size_t i;
	json_t *j;

	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(call(t, methods[i], port, "/echo",
				      "{\"lease_id\":\"x\"}", &resp, &err),
				 0);
		j = echo_json(&resp);
		ck_assert_str_eq(
		    json_string_value(json_object_get(j, "method")),
		    methods[i]);
		ck_assert_str_eq(json_string_value(json_object_get(j, "body")),
				 "{\"lease_id\":\"x\"}");
		ck_assert_str_eq(
		    json_string_value(json_object_get(
			json_object_get(j, "headers"), "content-type")),
		    "application/json");
		json_decref(j);
		secret_free(resp.body);
	}
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_status_is_not_an_error)
{
	struct http_config c = base_config();
	struct http_transport *t = transport(&c);
	struct http_response resp;
	struct errmsg err;

	ck_assert_int_eq(call(t, "GET", port, "/status/503", NULL, &resp, &err),
			 0);
	ck_assert_int_eq(resp.status, 503);
	ck_assert_uint_gt(secret_len(resp.body), 0);
	secret_free(resp.body);
	/* A redirect would carry the token elsewhere: never followed. */
	ck_assert_int_eq(call(t, "GET", port, "/redirect", NULL, &resp, &err),
			 0);
	ck_assert_int_eq(resp.status, 307);
	secret_free(resp.body);
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_plain_http_refused)
{
	struct http_config c = base_config();
	struct http_transport *t = transport(&c);
	struct http_request req;
	struct http_response resp;
	struct errmsg err;
	char url[64];

	(void)snprintf(url, sizeof(url), "http://localhost:%d/echo", port);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	ck_assert_int_eq(t->ops->perform(t, &req, &resp, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.text, "https"));
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_zero_timeout_refused)
{
	struct http_config c = base_config();
	struct http_transport *t = NULL;
	struct errmsg err = {{0}};

	c.total_timeout_usec = 0;
	ck_assert_int_eq(http_curl_new(&c, &t, &err), -EINVAL);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(strstr(err.text, "total timeout"));
}
END_TEST

START_TEST(test_http_body_cap)
{
	struct http_config c = base_config();
	struct http_transport *t;
	struct http_response resp;
	struct errmsg err;

	c.max_body = 10000;
	t = transport(&c);
	ck_assert_int_eq(call(t, "GET", port, "/size/10000", NULL, &resp, &err),
			 0);
	ck_assert_uint_eq(secret_len(resp.body), 10000);
	secret_free(resp.body);
	ck_assert_int_eq(call(t, "GET", port, "/size/10001", NULL, &resp, &err),
			 -EMSGSIZE);
	ck_assert_ptr_nonnull(strstr(err.text, "10000 bytes"));
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_timeout)
{
	struct http_config c = base_config();
	struct http_transport *t;
	struct http_response resp;
	struct errmsg err;

	c.total_timeout_usec = 300000;
	t = transport(&c);
	ck_assert_int_eq(call(t, "GET", port, "/slow/3", NULL, &resp, &err),
			 -ETIMEDOUT);
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_dropped_and_refused)
{
	struct http_config c = base_config();
	struct http_transport *t = transport(&c);
	struct http_response resp;
	struct errmsg err;

	ck_assert_int_eq(call(t, "GET", port, "/drop", NULL, &resp, &err),
			 -ECONNRESET);
	ck_assert_int_eq(
	    call(t, "GET", closed_port, "/echo", NULL, &resp, &err),
	    -ECONNREFUSED);
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_wrong_ca_refused)
{
	struct http_config c = base_config();
	struct http_transport *t;
	struct http_response resp;
	struct errmsg err;

	c.tls.ca_file = other_ca_path;
	t = transport(&c);
	ck_assert_int_eq(call(t, "GET", port, "/echo", NULL, &resp, &err),
			 -EPERM);
	ck_assert_ptr_nonnull(strstr(err.text, "TLS verification failed"));
	t->ops->destroy(t);
	/* The system store does not know the test CA either. */
	c.tls.ca_file = NULL;
	t = transport(&c);
	ck_assert_int_eq(call(t, "GET", port, "/echo", NULL, &resp, &err),
			 -EPERM);
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_pinned_key)
{
	struct http_config c = base_config();
	struct http_transport *t;
	struct http_response resp;
	struct errmsg err;

	c.tls.pinned_pubkey = pin;
	t = transport(&c);
	ck_assert_int_eq(call(t, "GET", port, "/echo", NULL, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 200);
	secret_free(resp.body);
	t->ops->destroy(t);
	c.tls.pinned_pubkey =
	    "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	t = transport(&c);
	ck_assert_int_eq(call(t, "GET", port, "/echo", NULL, &resp, &err),
			 -EPERM);
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_client_certificate)
{
	struct http_config c = base_config();
	struct http_transport *t = transport(&c);
	struct http_response resp;
	struct errmsg err;

	ck_assert_int_lt(call(t, "GET", mtls_port, "/echo", NULL, &resp, &err),
			 0);
	t->ops->destroy(t);
	c.tls.cert_file = cert_path;
	c.tls.key_file = key_path;
	t = transport(&c);
	ck_assert_int_eq(call(t, "GET", mtls_port, "/echo", NULL, &resp, &err),
			 0);
	ck_assert_int_eq(resp.status, 200);
	secret_free(resp.body);
	t->ops->destroy(t);
}
END_TEST

/* The URL names an address; server_name is what the certificate must
 * match. */
START_TEST(test_http_server_name)
{
	struct http_config c = base_config();
	struct http_transport *t;
	struct http_request req;
	struct http_response resp;
	struct errmsg err;
	char url[64], want[64];
	json_t *j;

	(void)snprintf(url, sizeof(url), "https://127.0.0.1:%d/echo", port);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	c.tls.server_name = "vault.test";
	t = transport(&c);
	ck_assert_int_eq(t->ops->perform(t, &req, &resp, &err), 0);
	j = echo_json(&resp);
	(void)snprintf(want, sizeof(want), "vault.test:%d", port);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(j, "headers"), "host")),
			 want);
	json_decref(j);
	secret_free(resp.body);
	t->ops->destroy(t);
	c.tls.server_name = "other.test";
	t = transport(&c);
	ck_assert_int_eq(t->ops->perform(t, &req, &resp, &err), -EPERM);
	t->ops->destroy(t);
}
END_TEST

START_TEST(test_http_header_injection_refused)
{
	struct http_config c = base_config();
	struct http_transport *t = transport(&c);
	struct http_header h = {"X-Vault-Namespace", NULL, "ns\r\nX-Evil: 1"};
	struct http_request req;
	struct http_response resp;
	struct errmsg err;
	char url[64];

	(void)snprintf(url, sizeof(url), "https://localhost:%d/echo", port);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.headers = &h;
	req.header_count = 1;
	ck_assert_int_eq(t->ops->perform(t, &req, &resp, &err), -EINVAL);
	t->ops->destroy(t);
}
END_TEST

/* libcurl's https_proxy and no_proxy variables are honoured: vault.test
 * resolves only through the fixture's CONNECT proxy. */
START_TEST(test_http_proxy_from_environment)
{
	struct http_config c = base_config();
	struct http_transport *t;
	struct http_request req;
	struct http_response resp;
	struct errmsg err;
	char url[64], proxy[64];

	(void)snprintf(url, sizeof(url), "https://vault.test:%d/echo", port);
	(void)snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%s",
		       getenv("CB_TEST_HTTPS_PROXY_PORT"));
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	t = transport(&c);
	ck_assert_int_eq(t->ops->perform(t, &req, &resp, &err), -EHOSTUNREACH);
	ck_assert_int_eq(setenv("https_proxy", proxy, 1), 0);
	ck_assert_int_eq(t->ops->perform(t, &req, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 200);
	secret_free(resp.body);
	ck_assert_int_eq(setenv("no_proxy", "vault.test", 1), 0);
	ck_assert_int_eq(t->ops->perform(t, &req, &resp, &err), -EHOSTUNREACH);
	ck_assert_int_eq(unsetenv("https_proxy"), 0);
	ck_assert_int_eq(unsetenv("no_proxy"), 0);
	t->ops->destroy(t);
}
END_TEST

static void *parallel_worker(void *arg)
{
	struct http_transport *t = arg;
	struct http_response resp;
	struct errmsg err;
	long ok = 0;
	int i;

	for (i = 0; i < 20; i++) {
		if (call(t, "GET", port, "/echo", NULL, &resp, &err) == 0 &&
		    resp.status == 200)
			ok++;
		secret_free(resp.body);
	}
	return (void *)ok;
}

START_TEST(test_http_parallel_requests)
{
	struct http_config c = base_config();
	struct http_transport *t = transport(&c);
	pthread_t th[4];
	void *ok;
	int i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(
		    pthread_create(&th[i], NULL, parallel_worker, t), 0);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], &ok), 0);
		ck_assert_int_eq((long)ok, 20);
	}
	t->ops->destroy(t);
}
END_TEST

static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("curl");

	tcase_add_unchecked_fixture(tc, paths, NULL);
	tcase_add_test(tc, test_http_get_sends_headers);
	tcase_add_test(tc, test_http_methods_carry_body);
	tcase_add_test(tc, test_http_status_is_not_an_error);
	tcase_add_test(tc, test_http_plain_http_refused);
	tcase_add_test(tc, test_http_zero_timeout_refused);
	tcase_add_test(tc, test_http_body_cap);
	tcase_add_test(tc, test_http_timeout);
	tcase_add_test(tc, test_http_dropped_and_refused);
	tcase_add_test(tc, test_http_wrong_ca_refused);
	tcase_add_test(tc, test_http_pinned_key);
	tcase_add_test(tc, test_http_client_certificate);
	tcase_add_test(tc, test_http_server_name);
	tcase_add_test(tc, test_http_header_injection_refused);
	tcase_add_test(tc, test_http_parallel_requests);
	tcase_add_test(tc, test_http_proxy_from_environment);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
