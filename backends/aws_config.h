/* The aws backend's configuration: the backend object (backends.NAME with
 * "type": "aws") and a secret's "aws" object.  Strict like the rest of the
 * config: unknown keys and wrong types fail with the JSON path. */
#ifndef CREDBROKER_AWS_CONFIG_H
#define CREDBROKER_AWS_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errmsg.h"

/* Where EKS projects the web-identity token (AWS_WEB_IDENTITY_TOKEN_FILE). */
#define AWS_DEFAULT_TOKEN_FILE                                                 \
	"/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
#define AWS_MAX_URL 256
#define AWS_MAX_ARN 256
#define AWS_MAX_CONTEXT 8
/* STS's DurationSeconds bounds (AssumeRoleWithWebIdentity). */
#define AWS_MIN_SESSION (900ULL * 1000000)
#define AWS_MAX_SESSION (43200ULL * 1000000)

struct aws_config {
	char region[32];
	char role_arn[AWS_MAX_ARN];
	char session_name[65]; /* RoleSessionName: [\w+=,.@-]{2,64} */
	char token_file[PATH_MAX];
	char sts_endpoint[AWS_MAX_URL]; /* https://HOST[:PORT], no slash */
	char secretsmanager_endpoint[AWS_MAX_URL];
	char kms_endpoint[AWS_MAX_URL];
	char ca_file[PATH_MAX];
	char ca_dir[PATH_MAX];
	uint64_t session_duration_usec; /* the backend's own session */
	uint64_t connect_timeout_usec;
	uint64_t request_timeout_usec;
	size_t max_response_bytes;
};

enum aws_kind {
	AWS_CREDENTIALS,    /* AssumeRoleWithWebIdentity keys for the app */
	AWS_SECRETSMANAGER, /* GetSecretValue, polled */
	AWS_KMS,	    /* Decrypt of a blob kept in the config */
};

struct aws_context_item {
	char key[128];
	char value[256];
};

struct aws_secret_config {
	enum aws_kind kind;
	/* credentials */
	char role_arn[AWS_MAX_ARN]; /* "" for the backend's */
	char session_name[65];	    /* "" for the backend's */
	uint64_t duration_usec;	    /* DurationSeconds; 0: the secret's ttl */
	/* secretsmanager */
	char secret_id[2048];
	char version_stage[257]; /* default AWSCURRENT */
	char version_id[65];
	/* kms */
	char *ciphertext; /* base64, as in the config */
	char key_id[AWS_MAX_ARN];
	char value_key[64]; /* the kv key of the plaintext, "plaintext" */
	size_t context_count;
	struct aws_context_item context[AWS_MAX_CONTEXT];
};

int aws_config_parse(const json_t *obj, const char *path, void **ret,
		     struct errmsg *err) __attribute__((warn_unused_result));
void aws_config_free(void *cfg);
int aws_secret_config_parse(const json_t *obj, const char *path, void **ret,
			    struct errmsg *err)
    __attribute__((warn_unused_result));
void aws_secret_config_free(void *cfg);

#endif
