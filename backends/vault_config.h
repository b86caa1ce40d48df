/* The vault backend's configuration: the backend object
 * (backends.NAME with "type": "vault") and a secret's "vault" object.
 * Strict like the rest of the config: unknown keys and wrong types fail
 * with the JSON path. */
#ifndef CREDBROKER_VAULT_CONFIG_H
#define CREDBROKER_VAULT_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errmsg.h"
#include "vault_api.h"

#define VAULT_DEFAULT_TOKEN_FILE                                               \
	"/var/run/secrets/kubernetes.io/serviceaccount/token"
#define VAULT_MAX_PATH 512

struct vault_config {
	char address[VAULT_MAX_PATH]; /* https://host:port, no slash */
	char namespace_[256];	      /* X-Vault-Namespace, "" for none */
	char auth_mount[128];	      /* default "kubernetes" */
	char role[128];
	char token_file[PATH_MAX];
	char ca_file[PATH_MAX];
	char ca_dir[PATH_MAX];
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
	char server_name[256];
	char pinned_public_key[128]; /* "sha256//BASE64" */
	uint64_t connect_timeout_usec;
	uint64_t request_timeout_usec;
	size_t max_response_bytes;
};

struct vault_secret_config {
	enum vault_kind kind;
	char path[VAULT_MAX_PATH]; /* leased and kv1: the logical path;
				    * kv2: the path inside the mount */
	char mount[128];	   /* kv2 mount, default "secret" */
	int64_t version;	   /* kv2 pinned version, 0 for latest */
	char method[8];		   /* leased: "GET" or "POST" */
	char host[256];		   /* for the dsn/env renderings */
	char port[8];
	char dbname[128];
};

int vault_config_parse(const json_t *obj, const char *path, void **ret,
		       struct errmsg *err) __attribute__((warn_unused_result));
void vault_config_free(void *cfg);
int vault_secret_config_parse(const json_t *obj, const char *path, void **ret,
			      struct errmsg *err)
    __attribute__((warn_unused_result));
void vault_secret_config_free(void *cfg);

#endif
