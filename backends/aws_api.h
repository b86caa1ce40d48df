/* AWS's wire formats, with no I/O: the STS AssumeRoleWithWebIdentity form
 * and its XML answer, the JSON 1.1 bodies of Secrets Manager GetSecretValue
 * and KMS Decrypt, and both protocols' error shapes mapped to -errno.
 * Credential fields and secret values go straight into struct secret /
 * struct kv; messages name fields and AWS error codes, never values. */
#ifndef CREDBROKER_AWS_API_H
#define CREDBROKER_AWS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws_config.h"
#include "errmsg.h"
#include "kv.h"
#include "secret.h"

#define AWS_MAX_CODE 64

/* Temporary credentials from STS. */
struct aws_creds {
	struct secret *access_key_id;
	struct secret *secret_access_key;
	struct secret *session_token;
	int64_t expires_wall; /* wall usec */
};

/* The form body of an AssumeRoleWithWebIdentity call (in secret memory:
 * it carries the token). */
int aws_sts_form(const char *role_arn, const char *session_name,
		 uint64_t duration_s, const struct secret *jwt,
		 struct secret **ret) __attribute__((warn_unused_result));
/* Parses a successful AssumeRoleWithWebIdentity response.  Returns 0, or
 * -EPROTO with err naming the missing or malformed field. */
int aws_sts_parse(const void *body, size_t len, struct aws_creds *out,
		  struct errmsg *err) __attribute__((warn_unused_result));
/* Wipes and frees; NULL-safe fields. */
void aws_creds_clear(struct aws_creds *c);

/* The -errno of a failed call, with "STATUS CODE: message" in err: the
 * STS XML ErrorResponse (xml true) or the JSON {"__type", "message"}
 * shape.  Throttling and 5xx are -EAGAIN; expired or unknown session
 * tokens -EKEYEXPIRED (the caller assumes the role again); other
 * authentication and authorisation refusals -EACCES; a missing resource
 * -ENOENT; a refused request -EINVAL. */
int aws_error(long status, const void *body, size_t len, bool xml,
	      struct errmsg *err);
/* aws_error, and the AWS error code (namespace dropped; "" when the body
 * names none) into code, AWS_MAX_CODE bytes.  The message part of err is
 * only what precedes a line break or any quote of the canonical request or
 * string to sign (which carry the session token), at most 199 bytes. */
int aws_error_code(long status, const void *body, size_t len, bool xml,
		   char *code, struct errmsg *err);
/* True for the codes of an authorisation refusal (AccessDenied,
 * AccessDeniedException): what a deny policy on aws:TokenIssueTime answers
 * a session issued before its cut-off, so a fresh session may cure it. */
bool aws_code_denied(const char *code);
/* True for AssumeRoleWithWebIdentity's refusals of the web-identity token
 * itself (invalid, expired, a rejected claim). */
bool aws_code_bad_web_identity(const char *code);

/* The GetSecretValue request body for sc. */
int aws_sm_request(const struct aws_secret_config *sc, struct secret **ret)
    __attribute__((warn_unused_result));
/* A GetSecretValue response into values: a SecretString that is a JSON
 * object gives one value per key (non-strings as their JSON text) plus
 * "SecretString"; any other SecretString only "SecretString"; SecretBinary
 * "SecretBinary".  version receives "NAME@VERSIONID", or for a name too
 * long for version_size "PREFIX~DIGEST@VERSIONID" (the name's first 32
 * characters and 16 hex digits of its SHA-256): the same for the same
 * name and version, different when either changes. */
int aws_sm_parse(const void *body, size_t len, struct kv *values, char *version,
		 size_t version_size, struct errmsg *err)
    __attribute__((warn_unused_result));

/* The Decrypt request body for sc. */
int aws_kms_request(const struct aws_secret_config *sc, struct secret **ret)
    __attribute__((warn_unused_result));
/* A Decrypt response: the plaintext under sc->value_key. */
int aws_kms_parse(const struct aws_secret_config *sc, const void *body,
		  size_t len, struct kv *values, struct errmsg *err)
    __attribute__((warn_unused_result));

/* "2014-10-24T23:00:23Z", optionally with fractional seconds, as wall
 * usec.  Returns 0 or -EINVAL. */
int aws_parse_time(const char *text, int64_t *wall)
    __attribute__((warn_unused_result));

#endif
