/* The aws backend's request sequences over a scripted transport and a fake
 * clock: the session and its re-logins (expired, denied, bounded), the
 * signer's cache wiped with the keys it came from, the STS duration, and
 * the incident record's cut-off time.  The wire formats are covered by
 * test_aws_api; the real exchange with moto by e2e_aws. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "aws.h"
#include "aws_api.h"
#include "aws_config.h"
#include "clock.h"
#include "sigv4.h"

#define MAX_STEPS 32
#define USEC 1000000LL
/* 2026-01-01T00:00:00.250Z */
#define T0 (1767225600LL * USEC + 250000)

#define STS_OK(akid, token)                                                    \
	"<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws."    \
	"com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials>" \
	"<AccessKeyId>" akid "</AccessKeyId><SecretAccessKey>wJalrXUtnFEMI/"   \
	"K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey><SessionToken>" token    \
	"</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration>"         \
	"</Credentials></AssumeRoleWithWebIdentityResult>"                     \
	"</AssumeRoleWithWebIdentityResponse>"
#define SM "secretsmanager.GetSecretValue"
#define SM_OK "{\"Name\":\"db\",\"VersionId\":\"v1\",\"SecretString\":\"x\"}"
#define SM_DENIED                                                              \
	"{\"__type\":\"AccessDeniedException\",\"message\":\"User: "           \
	"arn:aws:sts::123456789012:assumed-role/ws/credbroker is not "         \
	"authorized to perform: secretsmanager:GetSecretValue with an "        \
	"explicit deny in an identity-based policy\"}"
#define SM_EXPIRED                                                             \
	"{\"__type\":\"ExpiredTokenException\",\"message\":\"The security "    \
	"token included in the request is expired\"}"

struct step {
	const char *what; /* "sts" or the X-Amz-Target */
	long status;
	const char *body;
};

struct seen {
	char body[1024];
	char token[64]; /* X-Amz-Security-Token, "" when none */
};

struct fake_http {
	struct http_transport base;
	struct step steps[MAX_STEPS];
	size_t count, next;
	struct seen seen[MAX_STEPS];
};

static struct fake_http fake;
static struct aws_config cfg;
static struct aws_secret_config sm_cfg, cred_cfg;
static struct sigv4_signer *signer;
static struct backend *be;
static uint64_t now_mono;
static int64_t now_wall;
static char jwt_path[] = "/tmp/cb-test-aws-jwt-XXXXXX";

static uint64_t fake_mono(void *arg)
{
	(void)arg;
	return now_mono;
}

static int64_t fake_wall(void *arg)
{
	(void)arg;
	return now_wall;
}

static const struct clock fake_clock = {fake_mono, fake_wall, NULL};

static void copy_secret(const struct secret *s, char *buf, size_t size)
{
	size_t len = 0;
	const char *p = s ? secret_expose(s, &len) : "";

	ck_assert_uint_lt(len, size);
	memcpy(buf, p, len);
	buf[len] = '\0';
}

static int fake_perform(struct http_transport *t,
			const struct http_request *req,
			struct http_response *resp, struct errmsg *err)
{
	const char *target = "sts";
	struct step *st;
	struct seen *sn;
	size_t i;

	(void)t;
	(void)err;
	for (i = 0; i < req->header_count; i++) {
		const struct http_header *h = &req->headers[i];

		if (strcmp(h->name, "X-Amz-Target") == 0)
			target = h->value;
	}
	ck_assert_msg(fake.next < fake.count, "unexpected request: %s", target);
	st = &fake.steps[fake.next];
	sn = &fake.seen[fake.next++];
	ck_assert_str_eq(target, st->what);
	ck_assert_str_eq(req->url, strcmp(target, "sts") == 0
				       ? cfg.sts_endpoint
				       : cfg.secretsmanager_endpoint);
	for (i = 0; i < req->header_count; i++) {
		const struct http_header *h = &req->headers[i];

		if (strcmp(h->name, "X-Amz-Security-Token") == 0)
			copy_secret(h->secret_value, sn->token,
				    sizeof(sn->token));
	}
	copy_secret(req->body, sn->body, sizeof(sn->body));
	resp->status = st->status;
	ck_assert_int_eq(secret_from(st->body, strlen(st->body), &resp->body),
			 0);
	return 0;
}

static void fake_destroy(struct http_transport *t)
{
	(void)t;
}

static const struct http_transport_ops fake_ops = {fake_perform, fake_destroy};

/* Appends steps to the script (what was already answered stays seen). */
static void script(const struct step *steps, size_t n)
{
	ck_assert_uint_le(fake.count + n, MAX_STEPS);
	memcpy(fake.steps + fake.count, steps, n * sizeof(*steps));
	fake.count += n;
}

static void all_answered(void)
{
	ck_assert_uint_eq(fake.next, fake.count);
}

static void setup(void)
{
	int fd = mkstemp(jwt_path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "aaa.bbb.ccc\n", 12), 12);
	close(fd);
	memset(&fake, 0, sizeof(fake));
	fake.base.ops = &fake_ops;
	memset(&cfg, 0, sizeof(cfg));
	(void)snprintf(cfg.region, sizeof(cfg.region), "us-east-1");
	(void)snprintf(cfg.role_arn, sizeof(cfg.role_arn),
		       "arn:aws:iam::123456789012:role/ws");
	(void)snprintf(cfg.session_name, sizeof(cfg.session_name),
		       "credbroker");
	(void)snprintf(cfg.token_file, sizeof(cfg.token_file), "%s", jwt_path);
	(void)snprintf(cfg.sts_endpoint, sizeof(cfg.sts_endpoint),
		       "https://sts.test");
	(void)snprintf(cfg.secretsmanager_endpoint,
		       sizeof(cfg.secretsmanager_endpoint), "https://sm.test");
	(void)snprintf(cfg.kms_endpoint, sizeof(cfg.kms_endpoint),
		       "https://kms.test");
	cfg.session_duration_usec = 3600ULL * USEC;
	memset(&sm_cfg, 0, sizeof(sm_cfg));
	sm_cfg.kind = AWS_SECRETSMANAGER;
	(void)snprintf(sm_cfg.secret_id, sizeof(sm_cfg.secret_id), "db");
	(void)snprintf(sm_cfg.version_stage, sizeof(sm_cfg.version_stage),
		       "AWSCURRENT");
	memset(&cred_cfg, 0, sizeof(cred_cfg));
	cred_cfg.kind = AWS_CREDENTIALS;
	now_mono = 1000 * USEC;
	now_wall = T0;
	ck_assert_int_eq(sigv4_signer_new(&signer), 0);
	ck_assert_int_eq(
	    aws_backend_create_with(&cfg, &fake.base, signer, &fake_clock, &be),
	    0);
}

static void teardown(void)
{
	aws_backend_ops.destroy(be);
	be = NULL;
	signer = NULL;
	(void)unlink(jwt_path);
	(void)snprintf(jwt_path, sizeof(jwt_path),
		       "/tmp/cb-test-aws-jwt-XXXXXX");
}

/* One issue of a secret; its result, values dropped. */
static int issue(const struct aws_secret_config *sc, uint64_t ttl,
		 struct lease *lease, struct errmsg *err)
{
	struct backend_issue_request req = {"s", sc, now_wall, ttl, ttl};
	struct lease ignored;
	struct kv values;
	int r;

	memset(&values, 0, sizeof(values));
	r = aws_backend_ops.issue(be, &req, lease ? lease : &ignored, &values,
				  err);
	kv_clear(&values);
	return r;
}

/* The backend's own login, answered with body (a literal: the script
 * keeps the pointer). */
static void login_with(const char *body)
{
	struct step st = {"sts", 200, body};
	struct errmsg err = {{0}};

	script(&st, 1);
	ck_assert_int_eq(aws_backend_ops.login(be, &err), 0);
}

#define LOGIN(token) login_with(STS_OK("ASIAFIRST", token))

static struct sigv4_signer_stats stats(void)
{
	struct sigv4_signer_stats st;

	sigv4_signer_stats(signer, &st);
	return st;
}

/* The incident record's cut-off is the revocation time rounded up to the
 * next second, not the lease's issue time (taken before the STS call). */
START_TEST(test_aws_verify_advises_revocation_time)
{
	static const struct step steps[] = {
	    {"sts", 200, STS_OK("ASIAAPP", "apptoken")}};
	struct errmsg err = {{0}};
	char detail[ERRMSG_MAX];
	struct lease lease;
	struct kv none;

	script(steps, 1);
	ck_assert_int_eq(issue(&cred_cfg, 900 * USEC, &lease, &err), 0);
	ck_assert_int_eq(lease.issued_wall, T0);
	now_wall = T0 + 2 * USEC; /* 00:00:02.250 */
	memset(&none, 0, sizeof(none));
	ck_assert_int_eq(
	    aws_backend_ops.verify(be, &lease, &none, detail, &err), -ENOTSUP);
	ck_assert_msg(strstr(detail, "aws:TokenIssueTime before "
				     "2026-01-01T00:00:03Z") != NULL,
		      "%s", detail);
	ck_assert_str_eq(err.text, detail);
	/* On a whole second: still the next one (a session issued in this
	 * second has a TokenIssueTime of this second). */
	now_wall = T0 - 250000 + 5 * USEC;
	ck_assert_int_eq(
	    aws_backend_ops.verify(be, &lease, &none, detail, &err), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(detail, "before 2026-01-01T00:00:06Z"));
	all_answered();
}
END_TEST

/* revoke --all drops the derived signing keys with the session: the next
 * signature with the same keys derives its key again. */
START_TEST(test_aws_revoke_all_wipes_signing_keys)
{
	static const struct step polls[] = {{SM, 200, SM_OK}, {SM, 200, SM_OK}};
	struct errmsg err = {{0}};

	LOGIN("tok1");
	script(polls, 2);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), 0);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), 0);
	ck_assert_uint_eq(stats().misses, 1);
	ck_assert_uint_eq(stats().hits, 1);
	ck_assert_uint_eq(stats().cached, 1);
	ck_assert_int_eq(aws_backend_ops.revoke_all(be, &err), 0);
	ck_assert_uint_eq(stats().cached, 0);
	/* Retired: no login, no request, until unfreeze logs in. */
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), -EACCES);
	ck_assert_ptr_nonnull(strstr(err.text, "revoke --all"));
	LOGIN("tok1"); /* the same keys again */
	script(polls, 1);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), 0);
	ck_assert_uint_eq(stats().misses, 2);
	ck_assert_uint_eq(stats().hits, 1);
	all_answered();
}
END_TEST

/* Every new session wipes the keys derived from the one it replaces. */
START_TEST(test_aws_login_wipes_signing_keys)
{
	static const struct step poll = {SM, 200, SM_OK};
	struct errmsg err = {{0}};

	LOGIN("tok1");
	script(&poll, 1);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), 0);
	ck_assert_uint_eq(stats().cached, 1);
	LOGIN("tok2");
	ck_assert_uint_eq(stats().cached, 0);
	script(&poll, 1);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), 0);
	ck_assert_uint_eq(stats().misses, 2);
	ck_assert_str_eq(fake.seen[3].token, "tok2");
	all_answered();
}
END_TEST

/* "duration" is the DurationSeconds sent; without it, the secret's ttl
 * within STS's bounds. */
START_TEST(test_aws_credentials_duration)
{
	static const struct step sts[] = {{"sts", 200, STS_OK("ASIAAPP", "t")},
					  {"sts", 200, STS_OK("ASIAAPP", "t")},
					  {"sts", 200, STS_OK("ASIAAPP", "t")},
					  {"sts", 200, STS_OK("ASIAAPP", "t")},
					  {"sts", 200, STS_OK("ASIAAPP", "t")}};
	struct errmsg err = {{0}};

	script(sts, 5);
	cred_cfg.duration_usec = 7200 * USEC;
	ck_assert_int_eq(issue(&cred_cfg, 3 * 3600 * USEC, NULL, &err), 0);
	ck_assert_ptr_nonnull(
	    strstr(fake.seen[0].body, "&DurationSeconds=7200&"));
	/* Never past the lease's max_ttl (here = ttl). */
	ck_assert_int_eq(issue(&cred_cfg, 3600 * USEC, NULL, &err), 0);
	ck_assert_ptr_nonnull(
	    strstr(fake.seen[1].body, "&DurationSeconds=3600&"));
	cred_cfg.duration_usec = 0;
	ck_assert_int_eq(issue(&cred_cfg, 1800 * USEC, NULL, &err), 0);
	ck_assert_ptr_nonnull(
	    strstr(fake.seen[2].body, "&DurationSeconds=1800&"));
	ck_assert_int_eq(issue(&cred_cfg, 60 * USEC, NULL, &err), 0);
	ck_assert_ptr_nonnull(
	    strstr(fake.seen[3].body, "&DurationSeconds=900&"));
	ck_assert_int_eq(issue(&cred_cfg, 100 * 3600 * USEC, NULL, &err), 0);
	ck_assert_ptr_nonnull(
	    strstr(fake.seen[4].body, "&DurationSeconds=43200&"));
	all_answered();
}
END_TEST

/* A responder's deny on aws:TokenIssueTime refuses the backend's own
 * session: one AccessDenied assumes the role again at once and the call
 * goes through with the new session. */
START_TEST(test_aws_denied_relogs_in_once)
{
	static const struct step steps[] = {
	    {SM, 400, SM_DENIED},
	    {"sts", 200, STS_OK("ASIANEW", "tok-new")},
	    {SM, 200, SM_OK}};
	struct errmsg err = {{0}};
	struct lease lease;

	LOGIN("tok-old");
	script(steps, 3);
	ck_assert_int_eq(issue(&sm_cfg, 0, &lease, &err), 0);
	ck_assert_str_eq(lease.id, "sm:db@v1");
	ck_assert_str_eq(fake.seen[1].token, "tok-old");
	ck_assert_str_eq(fake.seen[3].token, "tok-new");
	all_answered();
}
END_TEST

/* A policy that really denies the role: the fresh session is refused too,
 * and further refusals log in again only after a backoff that doubles
 * (5 s, 10 s, ...), until a fresh session gets through and it starts
 * over. */
START_TEST(test_aws_denied_relogin_bounded)
{
	static const struct step denied_twice[] = {
	    {SM, 400, SM_DENIED},
	    {"sts", 200, STS_OK("ASIA2", "tok2")},
	    {SM, 400, SM_DENIED}};
	static const struct step denied = {SM, 400, SM_DENIED};
	static const struct step cured[] = {
	    {SM, 400, SM_DENIED},
	    {"sts", 200, STS_OK("ASIA3", "tok3")},
	    {SM, 200, SM_OK}};
	static const struct step expired[] = {
	    {SM, 400, SM_EXPIRED},
	    {"sts", 200, STS_OK("ASIA4", "tok4")},
	    {SM, 200, SM_OK}};
	struct errmsg err = {{0}};

	LOGIN("tok1");
	script(denied_twice, 3);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), -EACCES);
	ck_assert_ptr_nonnull(strstr(err.text, "AccessDeniedException"));
	/* Within 5 s: refused without a login. */
	script(&denied, 1);
	now_mono += 4 * USEC;
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), -EACCES);
	all_answered();
	/* After 5 s: one more login, refused again; now the wait is 10 s. */
	now_mono += 1 * USEC;
	script(denied_twice, 3);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), -EACCES);
	now_mono += 9 * USEC;
	script(&denied, 1);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), -EACCES);
	all_answered();
	/* After 10 s: a login that cures it; the backoff starts over. */
	now_mono += 1 * USEC;
	script(cured, 3);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), 0);
	script(cured, 3);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), 0);
	all_answered();
	/* An expired session is replaced under the same backoff: within it,
	 * reported without a login; after it, replaced. */
	script(denied_twice, 3);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), -EACCES);
	script(&expired[0], 1);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), -EACCES);
	ck_assert_ptr_nonnull(strstr(err.text, "ExpiredTokenException"));
	now_mono += 5 * USEC;
	script(expired, 3);
	ck_assert_int_eq(issue(&sm_cfg, 0, NULL, &err), 0);
	all_answered();
}
END_TEST

/* STS refusing the projected token says which file holds it. */
START_TEST(test_aws_bad_web_identity_names_the_token_file)
{
	static const struct step steps[] = {
	    {"sts", 400,
	     "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/"
	     "\"><Error><Type>Sender</Type><Code>ExpiredTokenException</Code>"
	     "<Message>Token expired: current date/time 1767225600 must be "
	     "before the expiration date/time 1767222000</Message></Error>"
	     "<RequestId>r</RequestId></ErrorResponse>"}};
	struct errmsg err = {{0}};

	script(steps, 1);
	ck_assert_int_lt(aws_backend_ops.login(be, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.text, "AssumeRoleWithWebIdentity"));
	ck_assert_ptr_nonnull(strstr(err.text, "ExpiredTokenException"));
	ck_assert_ptr_nonnull(strstr(err.text, "web-identity token in"));
	ck_assert_ptr_nonnull(strstr(err.text, jwt_path));
	ck_assert_ptr_null(strstr(err.text, "aaa.bbb.ccc"));
	all_answered();
}
END_TEST

static Suite *aws_suite(void)
{
	Suite *s = suite_create("aws");
	TCase *tc = tcase_create("backend");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_aws_verify_advises_revocation_time);
	tcase_add_test(tc, test_aws_revoke_all_wipes_signing_keys);
	tcase_add_test(tc, test_aws_login_wipes_signing_keys);
	tcase_add_test(tc, test_aws_credentials_duration);
	tcase_add_test(tc, test_aws_denied_relogs_in_once);
	tcase_add_test(tc, test_aws_denied_relogin_bounded);
	tcase_add_test(tc, test_aws_bad_web_identity_names_the_token_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(aws_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
