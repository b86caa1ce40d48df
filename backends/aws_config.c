/* Parsing of the aws backend's config objects.  Messages name the JSON
 * path of the offending value, as config.c does for the rest. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_config.h"
#include "config.h"

#define AWS_PATH_LEN 256
#define AWS_MIN_TIMEOUT 100000ULL	   /* 100 ms */
#define AWS_MAX_TIMEOUT (600ULL * 1000000) /* 10 min */
#define AWS_MAX_CIPHERTEXT 8192		   /* KMS: 6144 bytes of blob, base64 */

static bool aws_all_in(const char *s, const char *alphabet)
{
	return s[strspn(s, alphabet)] == '\0';
}

static int aws_check_region(const char *region, const char *path,
			    struct errmsg *err)
{
	if (region[0] == '\0')
		return errmsg_set(err, -EINVAL, "%s.region: required", path);
	if (!aws_all_in(region, "abcdefghijklmnopqrstuvwxyz0123456789-"))
		return errmsg_set(err, -EINVAL,
				  "%s.region: expected a region like "
				  "\"us-east-1\"",
				  path);
	return 0;
}

static int aws_check_role_arn(const char *arn, const char *path,
			      const char *key, struct errmsg *err)
{
	const char *p;

	for (p = arn; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			break;
	if (strncmp(arn, "arn:", 4) != 0 || strstr(arn, ":role/") == NULL ||
	    *p != '\0')
		return errmsg_set(err, -EINVAL,
				  "%s.%s: expected "
				  "\"arn:aws:iam::ACCOUNT:role/NAME\"",
				  path, key);
	return 0;
}

/* RoleSessionName: 2 to 64 of [\w+=,.@-]. */
static int aws_check_session(const char *name, const char *path,
			     const char *key, struct errmsg *err)
{
	if (name[0] == '\0')
		return 0;
	if (strlen(name) < 2 ||
	    !aws_all_in(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
			      "wxyz0123456789_+=,.@-"))
		return errmsg_set(err, -EINVAL,
				  "%s.%s: 2 to 64 of A-Z a-z 0-9 _+=,.@-", path,
				  key);
	return 0;
}

/* TLS is not optional: https://HOST[:PORT] and nothing after it. */
static int aws_check_endpoint(char *url, const char *path, const char *key,
			      struct errmsg *err)
{
	size_t len = strlen(url);

	while (len > 8 && url[len - 1] == '/')
		url[--len] = '\0';
	if (strncmp(url, "https://", 8) != 0 || len == 8 ||
	    strpbrk(url + 8, "/?#@ \t\\") != NULL)
		return errmsg_set(err, -EINVAL,
				  "%s.%s: expected https://HOST[:PORT]", path,
				  key);
	return 0;
}

static int aws_parse_endpoints(const json_t *obj, const char *path,
			       struct aws_config *c, struct errmsg *err)
{
	static const char *const keys[] = {"sts", "secretsmanager", "kms",
					   NULL};
	char p[AWS_PATH_LEN];
	int r;

	(void)snprintf(p, sizeof(p), "%s.endpoints", path);
	if (obj != NULL && !json_is_object(obj))
		return errmsg_set(err, -EINVAL, "%s: expected an object", p);
	r = obj != NULL ? config_keys_check(obj, p, keys, err) : 0;
	if (r == 0 && obj != NULL)
		r = config_string_field(obj, p, "sts", c->sts_endpoint,
					sizeof(c->sts_endpoint), err);
	if (r == 0 && obj != NULL)
		r = config_string_field(
		    obj, p, "secretsmanager", c->secretsmanager_endpoint,
		    sizeof(c->secretsmanager_endpoint), err);
	if (r == 0 && obj != NULL)
		r = config_string_field(obj, p, "kms", c->kms_endpoint,
					sizeof(c->kms_endpoint), err);
	if (r < 0)
		return r;
	/* Regional endpoints by default: a regional STS keeps working when
	 * us-east-1 does not, and its tokens are valid in every region. */
	if (c->sts_endpoint[0] == '\0')
		(void)snprintf(c->sts_endpoint, sizeof(c->sts_endpoint),
			       "https://sts.%s.amazonaws.com", c->region);
	if (c->secretsmanager_endpoint[0] == '\0')
		(void)snprintf(c->secretsmanager_endpoint,
			       sizeof(c->secretsmanager_endpoint),
			       "https://secretsmanager.%s.amazonaws.com",
			       c->region);
	if (c->kms_endpoint[0] == '\0')
		(void)snprintf(c->kms_endpoint, sizeof(c->kms_endpoint),
			       "https://kms.%s.amazonaws.com", c->region);
	r = aws_check_endpoint(c->sts_endpoint, p, "sts", err);
	if (r == 0)
		r = aws_check_endpoint(c->secretsmanager_endpoint, p,
				       "secretsmanager", err);
	if (r == 0)
		r = aws_check_endpoint(c->kms_endpoint, p, "kms", err);
	return r;
}

static int aws_parse_tls(const json_t *tls, const char *path,
			 struct aws_config *c, struct errmsg *err)
{
	static const char *const keys[] = {"ca_file", "ca_dir", NULL};
	char p[AWS_PATH_LEN];
	int r;

	if (tls == NULL)
		return 0;
	(void)snprintf(p, sizeof(p), "%s.tls", path);
	if (!json_is_object(tls))
		return errmsg_set(err, -EINVAL, "%s: expected an object", p);
	r = config_keys_check(tls, p, keys, err);
	if (r == 0)
		r = config_string_field(tls, p, "ca_file", c->ca_file,
					sizeof(c->ca_file), err);
	if (r == 0)
		r = config_string_field(tls, p, "ca_dir", c->ca_dir,
					sizeof(c->ca_dir), err);
	return r;
}

static int aws_parse_limits(const json_t *obj, const char *path,
			    struct aws_config *c, struct errmsg *err)
{
	const json_t *v = json_object_get(obj, "max_response_bytes");
	int r;

	r = config_duration_field(obj, path, "session_duration",
				  AWS_MIN_SESSION, AWS_MAX_SESSION,
				  &c->session_duration_usec, err);
	if (r == 0)
		r = config_duration_field(obj, path, "connect_timeout",
					  AWS_MIN_TIMEOUT, AWS_MAX_TIMEOUT,
					  &c->connect_timeout_usec, err);
	if (r == 0)
		r = config_duration_field(obj, path, "request_timeout",
					  AWS_MIN_TIMEOUT, AWS_MAX_TIMEOUT,
					  &c->request_timeout_usec, err);
	if (r < 0 || v == NULL)
		return r;
	if (!json_is_integer(v) || json_integer_value(v) < 1024 ||
	    json_integer_value(v) > 64 * 1024 * 1024)
		return errmsg_set(err, -EINVAL,
				  "%s.max_response_bytes: "
				  "expected 1024 to 67108864",
				  path);
	c->max_response_bytes = (size_t)json_integer_value(v);
	return 0;
}

int aws_config_parse(const json_t *obj, const char *path, void **ret,
		     struct errmsg *err)
{
	static const char *const keys[] = {"region",
					   "role_arn",
					   "role_session_name",
					   "token_file",
					   "session_duration",
					   "endpoints",
					   "tls",
					   "connect_timeout",
					   "request_timeout",
					   "max_response_bytes",
					   NULL};
	struct aws_config *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	(void)snprintf(c->session_name, sizeof(c->session_name), "credbroker");
	(void)snprintf(c->token_file, sizeof(c->token_file), "%s",
		       AWS_DEFAULT_TOKEN_FILE);
	c->session_duration_usec = 3600ULL * 1000000;
	c->connect_timeout_usec = 5ULL * 1000000;
	c->request_timeout_usec = 30ULL * 1000000;
	c->max_response_bytes = 1024 * 1024;
	r = config_keys_check(obj, path, keys, err);
	if (r == 0)
		r = config_string_field(obj, path, "region", c->region,
					sizeof(c->region), err);
	if (r == 0)
		r = aws_check_region(c->region, path, err);
	if (r == 0)
		r = config_string_field(obj, path, "role_arn", c->role_arn,
					sizeof(c->role_arn), err);
	if (r == 0 && c->role_arn[0] == '\0')
		r = errmsg_set(err, -EINVAL, "%s.role_arn: required", path);
	if (r == 0)
		r = aws_check_role_arn(c->role_arn, path, "role_arn", err);
	if (r == 0)
		r = config_string_field(obj, path, "role_session_name",
					c->session_name,
					sizeof(c->session_name), err);
	if (r == 0)
		r = aws_check_session(c->session_name, path,
				      "role_session_name", err);
	if (r == 0)
		r = config_string_field(obj, path, "token_file", c->token_file,
					sizeof(c->token_file), err);
	if (r == 0)
		r = aws_parse_endpoints(json_object_get(obj, "endpoints"), path,
					c, err);
	if (r == 0)
		r = aws_parse_tls(json_object_get(obj, "tls"), path, c, err);
	if (r == 0)
		r = aws_parse_limits(obj, path, c, err);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void aws_config_free(void *cfg)
{
	free(cfg);
}

static int aws_parse_kind(const json_t *obj, const char *path,
			  struct aws_secret_config *s, struct errmsg *err)
{
	static const char *const names[] = {"credentials", "secretsmanager",
					    "kms"};
	char kind[16] = "credentials";
	size_t i;
	int r;

	r = config_string_field(obj, path, "kind", kind, sizeof(kind), err);
	if (r < 0)
		return r;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(kind, names[i]) == 0) {
			s->kind = (enum aws_kind)i;
			return 0;
		}
	}
	return errmsg_set(err, -EINVAL,
			  "%s.kind: expected \"credentials\", "
			  "\"secretsmanager\" or \"kms\"",
			  path);
}

/* The keys each kind takes: one kind's key on another is a mistake worth
 * naming, not something to ignore. */
static int aws_kind_keys(const json_t *obj, const char *path,
			 enum aws_kind kind, struct errmsg *err)
{
	static const char *const credentials[] = {
	    "kind", "role_arn", "role_session_name", "duration", NULL};
	static const char *const secretsmanager[] = {
	    "kind", "secret_id", "version_stage", "version_id", NULL};
	static const char *const kms[] = {
	    "kind", "ciphertext", "encryption_context", "key_id", "name", NULL};
	const char *const *keys = kind == AWS_CREDENTIALS      ? credentials
				  : kind == AWS_SECRETSMANAGER ? secretsmanager
							       : kms;

	return config_keys_check(obj, path, keys, err);
}

static int aws_parse_credentials(const json_t *obj, const char *path,
				 struct aws_secret_config *s,
				 struct errmsg *err)
{
	int r;

	r = config_string_field(obj, path, "role_arn", s->role_arn,
				sizeof(s->role_arn), err);
	if (r == 0 && s->role_arn[0] != '\0')
		r = aws_check_role_arn(s->role_arn, path, "role_arn", err);
	if (r == 0)
		r = config_string_field(obj, path, "role_session_name",
					s->session_name,
					sizeof(s->session_name), err);
	if (r == 0)
		r = aws_check_session(s->session_name, path,
				      "role_session_name", err);
	/* STS's DurationSeconds, whole seconds: a fraction would be cut, and
	 * the keys would live less than the config says. */
	if (r == 0)
		r = config_duration_field(obj, path, "duration",
					  AWS_MIN_SESSION, AWS_MAX_SESSION,
					  &s->duration_usec, err);
	if (r == 0 && s->duration_usec % 1000000 != 0)
		r = errmsg_set(err, -EINVAL,
			       "%s.duration: whole seconds (STS "
			       "DurationSeconds)",
			       path);
	return r;
}

static int aws_parse_secretsmanager(const json_t *obj, const char *path,
				    struct aws_secret_config *s,
				    struct errmsg *err)
{
	int r;

	r = config_string_field(obj, path, "secret_id", s->secret_id,
				sizeof(s->secret_id), err);
	if (r == 0 && s->secret_id[0] == '\0')
		r = errmsg_set(err, -EINVAL, "%s.secret_id: required", path);
	if (r == 0)
		r = config_string_field(obj, path, "version_stage",
					s->version_stage,
					sizeof(s->version_stage), err);
	if (r == 0)
		r = config_string_field(obj, path, "version_id", s->version_id,
					sizeof(s->version_id), err);
	if (r == 0 && s->version_stage[0] != '\0' && s->version_id[0] != '\0')
		r = errmsg_set(err, -EINVAL,
			       "%s: version_stage and version_id exclude each "
			       "other",
			       path);
	if (r == 0 && s->version_stage[0] == '\0' && s->version_id[0] == '\0')
		(void)snprintf(s->version_stage, sizeof(s->version_stage),
			       "AWSCURRENT");
	return r;
}

static int aws_parse_context(const json_t *ctx, const char *path,
			     struct aws_secret_config *s, struct errmsg *err)
{
	const char *key;
	json_t *v;

	if (ctx == NULL)
		return 0;
	if (!json_is_object(ctx))
		return errmsg_set(err, -EINVAL,
				  "%s.encryption_context: expected an object "
				  "of strings",
				  path);
	json_object_foreach((json_t *)ctx, key, v)
	{
		struct aws_context_item *item;

		if (s->context_count == AWS_MAX_CONTEXT)
			return errmsg_set(err, -EINVAL,
					  "%s.encryption_context: at most %d "
					  "pairs",
					  path, AWS_MAX_CONTEXT);
		item = &s->context[s->context_count];
		if (!json_is_string(v) || strlen(key) == 0 ||
		    strlen(key) >= sizeof(item->key) ||
		    json_string_length(v) >= sizeof(item->value) ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return errmsg_set(err, -EINVAL,
					  "%s.encryption_context.%.64s: a "
					  "string of at most %zu characters",
					  path, key, sizeof(item->value) - 1);
		(void)snprintf(item->key, sizeof(item->key), "%s", key);
		(void)snprintf(item->value, sizeof(item->value), "%s",
			       json_string_value(v));
		s->context_count++;
	}
	return 0;
}

static int aws_parse_kms(const json_t *obj, const char *path,
			 struct aws_secret_config *s, struct errmsg *err)
{
	const json_t *blob = json_object_get(obj, "ciphertext");
	size_t len;
	int r;

	len = json_is_string(blob) ? json_string_length(blob) : 0;
	if (len == 0 || len > AWS_MAX_CIPHERTEXT || len % 4 != 0 ||
	    !aws_all_in(json_string_value(blob),
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789+/="))
		return errmsg_set(err, -EINVAL,
				  "%s.ciphertext: required, the base64 "
				  "CiphertextBlob (as `aws kms encrypt` "
				  "prints it)",
				  path);
	s->ciphertext = strdup(json_string_value(blob));
	if (s->ciphertext == NULL)
		return -ENOMEM;
	(void)snprintf(s->value_key, sizeof(s->value_key), "plaintext");
	r = config_string_field(obj, path, "key_id", s->key_id,
				sizeof(s->key_id), err);
	if (r == 0)
		r = config_string_field(obj, path, "name", s->value_key,
					sizeof(s->value_key), err);
	if (r == 0 && (s->value_key[0] == '.' ||
		       !aws_all_in(s->value_key, "ABCDEFGHIJKLMNOPQRSTUVWXYZab"
						 "cdefghijklmnopqrstuvwxyz0123"
						 "456789._-")))
		r = errmsg_set(err, -EINVAL,
			       "%s.name: a file name of A-Z a-z 0-9 ._- not "
			       "starting with '.'",
			       path);
	if (r == 0)
		r = aws_parse_context(
		    json_object_get(obj, "encryption_context"), path, s, err);
	return r;
}

int aws_secret_config_parse(const json_t *obj, const char *path, void **ret,
			    struct errmsg *err)
{
	struct aws_secret_config *s;
	json_t *empty = NULL;
	int r;

	if (obj == NULL)
		obj = empty = json_object();
	if (obj == NULL)
		return -ENOMEM;
	s = calloc(1, sizeof(*s));
	r = s == NULL ? -ENOMEM : aws_parse_kind(obj, path, s, err);
	if (r == 0)
		r = aws_kind_keys(obj, path, s->kind, err);
	if (r == 0 && s->kind == AWS_CREDENTIALS)
		r = aws_parse_credentials(obj, path, s, err);
	else if (r == 0 && s->kind == AWS_SECRETSMANAGER)
		r = aws_parse_secretsmanager(obj, path, s, err);
	else if (r == 0)
		r = aws_parse_kms(obj, path, s, err);
	json_decref(empty);
	if (r < 0) {
		aws_secret_config_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void aws_secret_config_free(void *cfg)
{
	struct aws_secret_config *s = cfg;

	if (s == NULL)
		return;
	free(s->ciphertext);
	free(s);
}
