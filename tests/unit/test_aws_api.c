/* The aws backend's config objects and wire formats: defaults, bad input
 * naming its JSON path, the STS form and the published response shapes
 * (tests/fuzz/corpus/aws_xml holds the STS sample byte for byte), error
 * mapping, Secrets Manager's SecretString/SecretBinary and KMS Decrypt. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "aws_api.h"
#include "aws_config.h"

static int parse_backend(const char *text, struct aws_config **ret,
			 struct errmsg *err)
{
	json_t *obj = json_loads(text, 0, NULL);
	void *cfg = NULL;
	int r;

	ck_assert_msg(obj != NULL, "bad test JSON: %s", text);
	r = aws_config_parse(obj, "backends.a", &cfg, err);
	json_decref(obj);
	*ret = cfg;
	return r;
}

static int parse_secret(const char *text, struct aws_secret_config **ret,
			struct errmsg *err)
{
	json_t *obj = text ? json_loads(text, 0, NULL) : NULL;
	void *cfg = NULL;
	int r;

	r = aws_secret_config_parse(obj, "secrets[0].aws", &cfg, err);
	json_decref(obj);
	*ret = cfg;
	return r;
}

static const char *str_of(const struct kv *kv, const char *key)
{
	const struct secret *s = kv_get(kv, key);

	ck_assert_msg(s != NULL, "no value %s", key);
	return secret_expose(s, NULL);
}

START_TEST(test_aws_config_defaults)
{
	struct aws_config *c;
	struct errmsg err;

	ck_assert_int_eq(
	    parse_backend("{\"region\":\"eu-west-1\",\"role_arn\":"
			  "\"arn:aws:iam::123456789012:role/app\"}",
			  &c, &err),
	    0);
	ck_assert_str_eq(c->sts_endpoint,
			 "https://sts.eu-west-1.amazonaws.com");
	ck_assert_str_eq(c->secretsmanager_endpoint,
			 "https://secretsmanager.eu-west-1.amazonaws.com");
	ck_assert_str_eq(c->kms_endpoint,
			 "https://kms.eu-west-1.amazonaws.com");
	ck_assert_str_eq(c->token_file, AWS_DEFAULT_TOKEN_FILE);
	ck_assert_str_eq(c->session_name, "credbroker");
	ck_assert_uint_eq(c->session_duration_usec, 3600000000ULL);
	aws_config_free(c);
}
END_TEST

START_TEST(test_aws_config_errors)
{
	static const struct {
		const char *json, *needle;
	} cases[] = {
	    {"{\"role_arn\":\"arn:aws:iam::1:role/a\"}", "backends.a.region"},
	    {"{\"region\":\"us-east-1\"}", "backends.a.role_arn: required"},
	    {"{\"region\":\"US EAST\",\"role_arn\":\"arn:aws:iam::1:role/a\"}",
	     "backends.a.region"},
	    {"{\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::1:user/"
	     "a\"}",
	     "backends.a.role_arn: expected"},
	    {"{\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::1:role/a\","
	     "\"endpoints\":{\"sts\":\"http://127.0.0.1:1\"}}",
	     "backends.a.endpoints.sts: expected https://"},
	    {"{\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::1:role/a\","
	     "\"endpoints\":{\"kms\":\"https://h/path\"}}",
	     "backends.a.endpoints.kms"},
	    {"{\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::1:role/a\","
	     "\"endpoints\":{\"s3\":\"https://h\"}}",
	     "backends.a.endpoints.s3: unknown key"},
	    {"{\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::1:role/a\","
	     "\"session_duration\":\"5m\"}",
	     "backends.a.session_duration: must be from"},
	    {"{\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::1:role/a\","
	     "\"role_session_name\":\"a b\"}",
	     "backends.a.role_session_name"},
	    {"{\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::1:role/a\","
	     "\"secret_key\":\"x\"}",
	     "backends.a.secret_key: unknown key"},
	};
	struct aws_config *c;
	struct errmsg err;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(parse_backend(cases[i].json, &c, &err),
				 -EINVAL);
		ck_assert_msg(strstr(err.text, cases[i].needle) != NULL,
			      "case %zu: \"%s\" lacks \"%s\"", i, err.text,
			      cases[i].needle);
	}
}
END_TEST

START_TEST(test_aws_secret_config)
{
	struct aws_secret_config *s;
	struct errmsg err;

	ck_assert_int_eq(parse_secret(NULL, &s, &err), 0);
	ck_assert_int_eq(s->kind, AWS_CREDENTIALS);
	aws_secret_config_free(s);
	ck_assert_int_eq(parse_secret("{\"kind\":\"secretsmanager\","
				      "\"secret_id\":\"db\"}",
				      &s, &err),
			 0);
	ck_assert_str_eq(s->version_stage, "AWSCURRENT");
	aws_secret_config_free(s);
	ck_assert_int_eq(
	    parse_secret(
		"{\"kind\":\"kms\",\"ciphertext\":\"AQID\","
		"\"encryption_context\":{\"app\":\"a\"},\"name\":\"k\"}",
		&s, &err),
	    0);
	ck_assert_str_eq(s->value_key, "k");
	ck_assert_uint_eq(s->context_count, 1);
	aws_secret_config_free(s);
	/* "duration" is STS's DurationSeconds, not ignored; absent: 0 (the
	 * secret's ttl). */
	ck_assert_int_eq(parse_secret("{\"kind\":\"credentials\","
				      "\"duration\":\"2h\"}",
				      &s, &err),
			 0);
	ck_assert_uint_eq(s->duration_usec, 7200ULL * 1000000);
	aws_secret_config_free(s);
	ck_assert_int_eq(parse_secret("{}", &s, &err), 0);
	ck_assert_uint_eq(s->duration_usec, 0);
	aws_secret_config_free(s);
}
END_TEST

START_TEST(test_aws_secret_config_errors)
{
	static const struct {
		const char *json, *needle;
	} cases[] = {
	    {"{\"kind\":\"s3\"}", "secrets[0].aws.kind: expected"},
	    {"{\"kind\":\"secretsmanager\"}", "secret_id: required"},
	    {"{\"kind\":\"secretsmanager\",\"secret_id\":\"a\","
	     "\"version_stage\":\"x\",\"version_id\":\"y\"}",
	     "exclude each other"},
	    {"{\"kind\":\"kms\"}", "secrets[0].aws.ciphertext: required"},
	    {"{\"kind\":\"kms\",\"ciphertext\":\"not base64!\"}", "ciphertext"},
	    {"{\"kind\":\"kms\",\"ciphertext\":\"AQID\",\"name\":\"../x\"}",
	     "secrets[0].aws.name"},
	    {"{\"kind\":\"kms\",\"ciphertext\":\"AQID\","
	     "\"encryption_context\":{\"a\":1}}",
	     "encryption_context.a"},
	    {"{\"kind\":\"credentials\",\"secret_id\":\"a\"}",
	     "secrets[0].aws.secret_id: unknown key"},
	    /* STS's DurationSeconds bounds, whole seconds. */
	    {"{\"duration\":\"899s\"}", "secrets[0].aws.duration: must be"},
	    {"{\"duration\":\"12h1s\"}", "secrets[0].aws.duration: must be"},
	    {"{\"duration\":\"1000500ms\"}",
	     "secrets[0].aws.duration: whole seconds"},
	    {"{\"duration\":900}", "secrets[0].aws.duration: expected"},
	    {"{\"kind\":\"kms\",\"ciphertext\":\"AQID\",\"duration\":\"1h\"}",
	     "secrets[0].aws.duration: unknown key"},
	};
	struct aws_secret_config *s;
	struct errmsg err;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(parse_secret(cases[i].json, &s, &err),
				 -EINVAL);
		ck_assert_msg(strstr(err.text, cases[i].needle) != NULL,
			      "case %zu: \"%s\" lacks \"%s\"", i, err.text,
			      cases[i].needle);
	}
}
END_TEST

START_TEST(test_aws_sts_form)
{
	struct secret *jwt, *form;

	ck_assert_int_eq(secret_from("eyJ.a-b_c.d", 11, &jwt), 0);
	ck_assert_int_eq(aws_sts_form("arn:aws:iam::123456789012:role/Fed",
				      "app1", 3600, jwt, &form),
			 0);
	ck_assert_str_eq(secret_expose(form, NULL),
			 "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
			 "&DurationSeconds=3600&RoleArn=arn%3Aaws%3Aiam%3A%3A"
			 "123456789012%3Arole%2FFed&RoleSessionName=app1"
			 "&WebIdentityToken=eyJ.a-b_c.d");
	secret_free(jwt);
	secret_free(form);
}
END_TEST

static char *read_sample(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf = malloc(65536);

	(void)snprintf(path, sizeof(path), "%s/%s", CB_SAMPLES_DIR, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL && buf != NULL, "cannot read %s", path);
	*len = fread(buf, 1, 65535, f);
	fclose(f);
	return buf;
}

START_TEST(test_aws_sts_parse_sample)
{
	struct aws_creds c;
	struct errmsg err = {{0}};
	size_t len;
	char *body =
	    read_sample("aws-sts-AssumeRoleWithWebIdentity.response.xml", &len);

	ck_assert_int_eq(aws_sts_parse(body, len, &c, &err), 0);
	ck_assert_str_eq(secret_expose(c.access_key_id, NULL),
			 "sts_access_key");
	ck_assert_str_eq(secret_expose(c.secret_access_key, NULL),
			 "secret_access_key");
	ck_assert_str_eq(secret_expose(c.session_token, NULL),
			 "sts_session_token");
	ck_assert_int_eq(c.expires_wall, 1414191623LL * 1000000);
	aws_creds_clear(&c);
	/* Any cut is refused, never half-parsed. */
	for (size_t cut = 0; cut < len - 2; cut += 7)
		ck_assert_int_eq(aws_sts_parse(body, cut, &c, &err), -EPROTO);
	free(body);
}
END_TEST

START_TEST(test_aws_sts_refusals)
{
	static const char no_expiry[] =
	    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentity"
	    "Result><Credentials><SessionToken>t</SessionToken><SecretAccess"
	    "Key>s</SecretAccessKey><AccessKeyId>a</AccessKeyId></Credentials>"
	    "</AssumeRoleWithWebIdentityResult>"
	    "</AssumeRoleWithWebIdentityResponse>";
	static const char newline[] =
	    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentity"
	    "Result><Credentials><SessionToken>t&#10;x</SessionToken><Secret"
	    "AccessKey>s</SecretAccessKey><AccessKeyId>a</AccessKeyId><Expir"
	    "ation>2030-01-01T00:00:00Z</Expiration></Credentials>"
	    "</AssumeRoleWithWebIdentityResult>"
	    "</AssumeRoleWithWebIdentityResponse>";
	struct aws_creds c;
	struct errmsg err = {{0}};

	ck_assert_int_eq(aws_sts_parse(no_expiry, strlen(no_expiry), &c, &err),
			 -EPROTO);
	ck_assert_ptr_nonnull(strstr(err.text, "without Expiration"));
	ck_assert_int_eq(aws_sts_parse(newline, strlen(newline), &c, &err),
			 -EPROTO);
	ck_assert_ptr_nonnull(strstr(err.text, "SessionToken"));
	ck_assert_ptr_null(strstr(err.text, "x"));
}
END_TEST

START_TEST(test_aws_errors)
{
	static const char sts_denied[] =
	    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/"
	    "\"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
	    "<Message>No OpenIDConnect provider found</Message></Error>"
	    "<RequestId>r</RequestId></ErrorResponse>";
	static const char throttled[] = "{\"__type\":\"ThrottlingException\","
					"\"message\":\"Rate exceeded\"}";
	static const char expired[] =
	    "{\"__type\":\"com.amazon.coral.service#ExpiredTokenException\","
	    "\"Message\":\"The security token included in the request is "
	    "expired\"}";
	static const char not_found[] =
	    "{\"__type\":\"ResourceNotFoundException\",\"message\":\"Secrets "
	    "Manager can't find the specified secret.\"}";
	struct errmsg err = {{0}};

	ck_assert_int_eq(
	    aws_error(400, sts_denied, strlen(sts_denied), true, &err),
	    -EACCES);
	ck_assert_str_eq(err.text, "400 InvalidIdentityToken: No "
				   "OpenIDConnect provider found");
	ck_assert_int_eq(
	    aws_error(400, throttled, strlen(throttled), false, &err), -EAGAIN);
	ck_assert_int_eq(aws_error(400, expired, strlen(expired), false, &err),
			 -EKEYEXPIRED);
	ck_assert_ptr_nonnull(strstr(err.text, "ExpiredTokenException"));
	ck_assert_int_eq(
	    aws_error(400, not_found, strlen(not_found), false, &err), -ENOENT);
	ck_assert_int_eq(aws_error(503, "<html>", 6, false, &err), -EAGAIN);
	ck_assert_str_eq(err.text, "503 (no error code)");
	ck_assert_int_eq(aws_error(418, "", 0, true, &err), -EINVAL);
}
END_TEST

#define TOKEN_TEXT                                                             \
	"IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDtoken"         \
	"SECRETSESSIONTOKENBYTES0123456789abcdefSECRETSESSIONTOKENBYTES"

/* AWS's signature refusals quote the canonical request, session token
 * included, after the first sentence: the error keeps the code and that
 * sentence and never any of the quote, however short the sentence. */
START_TEST(test_aws_error_hides_canonical_request)
{
	static const char sts[] =
	    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/"
	    "\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>"
	    "SignatureDoesNotMatch</Code>\n    <Message>The request signature "
	    "we calculated does not match the signature you provided. Check "
	    "your AWS Secret Access Key and signing method. Consult the "
	    "service documentation for details.\n\nThe Canonical String for "
	    "this request should have been\n'POST\n/\n\ncontent-type:"
	    "application/x-www-form-urlencoded; charset=utf-8\nhost:"
	    "sts.us-east-1.amazonaws.com\nx-amz-date:20240101T000000Z\n"
	    "x-amz-security-token:" TOKEN_TEXT "\n\ncontent-type;host;"
	    "x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb9'"
	    "\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n"
	    "20240101T000000Z\n20240101/us-east-1/sts/aws4_request\n"
	    "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7'"
	    "\n</Message>\n  </Error>\n  <RequestId>4d1f</RequestId>\n"
	    "</ErrorResponse>\n";
	/* On one line, with the quote within the old 199-byte cap. */
	static const char json_short[] =
	    "{\"__type\":\"InvalidSignatureException\",\"message\":\"Signature "
	    "mismatch. The Canonical String for this request should have "
	    "been 'POST / host:kms x-amz-security-token:" TOKEN_TEXT "'\"}";
	static const char json_sts_first[] =
	    "{\"__type\":\"InvalidSignatureException\",\"message\":\"The "
	    "String-to-Sign should have been 'AWS4-HMAC-SHA256 x' and "
	    "x-amz-security-token:" TOKEN_TEXT "\"}";
	static const char json_token_only[] =
	    "{\"__type\":\"IncompleteSignatureException\",\"message\":\"Bad "
	    "header X-Amz-Security-Token:" TOKEN_TEXT "\"}";
	char code[AWS_MAX_CODE];
	struct errmsg err = {{0}};

	ck_assert_int_eq(
	    aws_error_code(403, sts, strlen(sts), true, code, &err), -EACCES);
	ck_assert_str_eq(code, "SignatureDoesNotMatch");
	ck_assert_str_eq(err.text,
			 "403 SignatureDoesNotMatch: The request signature we "
			 "calculated does not match the signature you "
			 "provided. Check your AWS Secret Access Key and "
			 "signing method. Consult the service documentation "
			 "for details.");
	ck_assert_int_eq(
	    aws_error(400, json_short, strlen(json_short), false, &err),
	    -EACCES);
	ck_assert_str_eq(err.text,
			 "400 InvalidSignatureException: Signature mismatch.");
	ck_assert_int_eq(
	    aws_error(400, json_sts_first, strlen(json_sts_first), false, &err),
	    -EACCES);
	ck_assert_str_eq(err.text, "400 InvalidSignatureException");
	ck_assert_int_eq(aws_error(400, json_token_only,
				   strlen(json_token_only), false, &err),
			 -EINVAL);
	ck_assert_str_eq(err.text,
			 "400 IncompleteSignatureException: Bad header");
	ck_assert_ptr_null(strstr(err.text, "IQoJb3JpZ2lu"));
	/* The codes that decide a new session. */
	ck_assert(aws_code_denied("AccessDenied"));
	ck_assert(aws_code_denied("AccessDeniedException"));
	ck_assert(!aws_code_denied("SignatureDoesNotMatch"));
	ck_assert(aws_code_bad_web_identity("InvalidIdentityToken"));
	ck_assert(!aws_code_bad_web_identity("AccessDenied"));
}
END_TEST

/* Secrets Manager names go up to 512 characters; a lease id holds 127.
 * Long names get a stable digest form, distinct for names that share
 * their first characters. */
START_TEST(test_aws_sm_parse_long_name)
{
	static const char vid[] = "5767290c-d089-49ed-b97c-17086f8c9d79";
	char name[513], body[1024], v1[124], v2[124], v3[124];
	struct errmsg err = {{0}};
	struct kv kv;

	memset(&kv, 0, sizeof(kv));
	memset(name, 'n', 512);
	name[512] = '\0';
	(void)snprintf(body, sizeof(body),
		       "{\"Name\":\"%s\",\"VersionId\":\"%s\","
		       "\"SecretString\":\"x\"}",
		       name, vid);
	ck_assert_int_eq(
	    aws_sm_parse(body, strlen(body), &kv, v1, sizeof(v1), &err), 0);
	kv_clear(&kv);
	ck_assert_uint_eq(strlen(v1), 32 + 1 + 16 + 1 + strlen(vid));
	ck_assert_int_eq(strncmp(v1, name, 32), 0);
	ck_assert_int_eq(v1[32], '~');
	ck_assert_str_eq(v1 + 50, vid);
	/* The same name again: the same version string. */
	ck_assert_int_eq(
	    aws_sm_parse(body, strlen(body), &kv, v2, sizeof(v2), &err), 0);
	kv_clear(&kv);
	ck_assert_str_eq(v1, v2);
	/* Another name with the same first 511 characters: another one. */
	name[511] = 'm';
	(void)snprintf(body, sizeof(body),
		       "{\"Name\":\"%s\",\"VersionId\":\"%s\","
		       "\"SecretString\":\"x\"}",
		       name, vid);
	ck_assert_int_eq(
	    aws_sm_parse(body, strlen(body), &kv, v3, sizeof(v3), &err), 0);
	kv_clear(&kv);
	ck_assert_str_ne(v1, v3);
	/* A name that fits stays readable, up to the last byte. */
	memset(name, 'a', sizeof(name));
	name[sizeof(v1) - 1 - 1 - strlen(vid)] = '\0';
	(void)snprintf(body, sizeof(body),
		       "{\"Name\":\"%s\",\"VersionId\":\"%s\","
		       "\"SecretString\":\"x\"}",
		       name, vid);
	ck_assert_int_eq(
	    aws_sm_parse(body, strlen(body), &kv, v1, sizeof(v1), &err), 0);
	kv_clear(&kv);
	ck_assert_uint_eq(strlen(v1), sizeof(v1) - 1);
	ck_assert_ptr_null(strchr(v1, '~'));
	/* A VersionId no lease id can hold is refused. */
	memset(name, 'v', 200);
	name[200] = '\0';
	(void)snprintf(body, sizeof(body),
		       "{\"Name\":\"db\",\"VersionId\":\"%s\","
		       "\"SecretString\":\"x\"}",
		       name);
	ck_assert_int_eq(
	    aws_sm_parse(body, strlen(body), &kv, v1, sizeof(v1), &err),
	    -EPROTO);
	ck_assert_uint_eq(kv.count, 0);
}
END_TEST

START_TEST(test_aws_sm_parse)
{
	/* The published GetSecretValue sample (cloud-api), and a JSON one. */
	static const char plain[] =
	    "{\"ARN\":\"arn:aws:secretsmanager:us-west-2:123456789012:secret:"
	    "MyTestDatabaseSecret-NhBWsc\",\"Name\":\"MyTestDatabaseSecret\","
	    "\"VersionId\":\"5767290c-d089-49ed-b97c-17086f8c9d79\","
	    "\"SecretString\":\"hunter2\",\"VersionStages\":[\"AWSCURRENT\"],"
	    "\"CreatedDate\":1569534789.046}";
	static const char obj[] =
	    "{\"Name\":\"db\",\"VersionId\":\"v2\",\"SecretString\":"
	    "\"{\\\"username\\\":\\\"app\\\",\\\"port\\\":5432}\"}";
	static const char bin[] = "{\"Name\":\"b\",\"VersionId\":\"v1\","
				  "\"SecretBinary\":\"AAEC/w==\"}";
	static const char both[] = "{\"Name\":\"b\",\"VersionId\":\"v1\","
				   "\"SecretBinary\":\"AA==\","
				   "\"SecretString\":\"x\"}";
	struct errmsg err = {{0}};
	struct kv kv;
	char version[128];
	size_t len;
	const unsigned char *p;

	memset(&kv, 0, sizeof(kv));
	ck_assert_int_eq(aws_sm_parse(plain, strlen(plain), &kv, version,
				      sizeof(version), &err),
			 0);
	ck_assert_str_eq(version, "MyTestDatabaseSecret@5767290c-d089-49ed-"
				  "b97c-17086f8c9d79");
	ck_assert_uint_eq(kv.count, 1);
	ck_assert_str_eq(str_of(&kv, "SecretString"), "hunter2");
	kv_clear(&kv);
	ck_assert_int_eq(
	    aws_sm_parse(obj, strlen(obj), &kv, version, sizeof(version), &err),
	    0);
	ck_assert_str_eq(str_of(&kv, "username"), "app");
	ck_assert_str_eq(str_of(&kv, "port"), "5432");
	ck_assert_str_eq(str_of(&kv, "SecretString"),
			 "{\"username\":\"app\",\"port\":5432}");
	kv_clear(&kv);
	ck_assert_int_eq(
	    aws_sm_parse(bin, strlen(bin), &kv, version, sizeof(version), &err),
	    0);
	p = secret_expose(kv_get(&kv, "SecretBinary"), &len);
	ck_assert_uint_eq(len, 4);
	ck_assert(p[0] == 0 && p[1] == 1 && p[2] == 2 && p[3] == 0xff);
	kv_clear(&kv);
	ck_assert_int_eq(aws_sm_parse(both, strlen(both), &kv, version,
				      sizeof(version), &err),
			 -EPROTO);
	ck_assert_int_eq(
	    aws_sm_parse("[]", 2, &kv, version, sizeof(version), &err),
	    -EPROTO);
	ck_assert_uint_eq(kv.count, 0);
}
END_TEST

START_TEST(test_aws_kms)
{
	struct aws_secret_config *sc;
	struct secret *body;
	struct errmsg err = {{0}};
	struct kv kv;
	static const char resp[] = "{\"KeyId\":\"arn:aws:kms:us-east-1:1:key/"
				   "k\",\"Plaintext\":\"aGVsbG8=\","
				   "\"EncryptionAlgorithm\":"
				   "\"SYMMETRIC_DEFAULT\"}";

	memset(&kv, 0, sizeof(kv));
	ck_assert_int_eq(parse_secret("{\"kind\":\"kms\",\"ciphertext\":"
				      "\"AQID\",\"encryption_context\":"
				      "{\"app\":\"a\"}}",
				      &sc, &err),
			 0);
	ck_assert_int_eq(aws_kms_request(sc, &body), 0);
	ck_assert_str_eq(secret_expose(body, NULL),
			 "{\"CiphertextBlob\":\"AQID\",\"EncryptionContext\":"
			 "{\"app\":\"a\"}}");
	secret_free(body);
	ck_assert_int_eq(aws_kms_parse(sc, resp, strlen(resp), &kv, &err), 0);
	ck_assert_str_eq(str_of(&kv, "plaintext"), "hello");
	kv_clear(&kv);
	ck_assert_int_eq(aws_kms_parse(sc, "{}", 2, &kv, &err), -EPROTO);
	aws_secret_config_free(sc);
}
END_TEST

START_TEST(test_aws_parse_time)
{
	int64_t t;

	ck_assert_int_eq(aws_parse_time("2014-10-24T23:00:23Z", &t), 0);
	ck_assert_int_eq(t, 1414191623LL * 1000000);
	ck_assert_int_eq(aws_parse_time("2014-10-24T23:00:23.123Z", &t), 0);
	ck_assert_int_eq(t, 1414191623LL * 1000000);
	ck_assert_int_eq(aws_parse_time("2014-10-24T23:00:23+00:00", &t), 0);
	ck_assert_int_eq(aws_parse_time("2014-10-24 23:00:23", &t), -EINVAL);
	ck_assert_int_eq(aws_parse_time("2014-10-24T23:00:23+02:00", &t),
			 -EINVAL);
	ck_assert_int_eq(aws_parse_time("2014-10-24T23:00:23.Z", &t), -EINVAL);
}
END_TEST

static Suite *aws_api_suite(void)
{
	Suite *s = suite_create("aws_api");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_aws_config_defaults);
	tcase_add_test(tc, test_aws_config_errors);
	tcase_add_test(tc, test_aws_secret_config);
	tcase_add_test(tc, test_aws_secret_config_errors);
	tcase_add_test(tc, test_aws_sts_form);
	tcase_add_test(tc, test_aws_sts_parse_sample);
	tcase_add_test(tc, test_aws_sts_refusals);
	tcase_add_test(tc, test_aws_errors);
	tcase_add_test(tc, test_aws_error_hides_canonical_request);
	tcase_add_test(tc, test_aws_sm_parse);
	tcase_add_test(tc, test_aws_sm_parse_long_name);
	tcase_add_test(tc, test_aws_kms);
	tcase_add_test(tc, test_aws_parse_time);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(aws_api_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
