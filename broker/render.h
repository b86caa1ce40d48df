/* Turns one version's key/values into the files the workspace reads.  A file
 * spec is either a key of the kv (raw value) or one of the renderings:
 *   "json"  {"key": "value", ...}
 *   "env"   KEY='value' lines (dotenv; single quotes, ' escaped as '\'')
 *   "dsn"   a libpq URI from username, password, host, port, dbname
 *   "credentials"
 *           the AWS shared-credentials INI file, profile [default], from
 *           access_key_id, secret_access_key and (when present)
 *           session_token; a value with a control byte is refused
 *   "credential_process"
 *           the JSON an AWS credential_process prints ({"Version":1,
 *           "AccessKeyId", "SecretAccessKey", and "SessionToken",
 *           "Expiration" when the kv has session_token, expiration)
 * Output bytes are built directly in secret memory. */
#ifndef CREDBROKER_RENDER_H
#define CREDBROKER_RENDER_H

#include <stddef.h>

#include "errmsg.h"
#include "kv.h"
#include "secret.h"

/* Maps a kv key to an environment variable name for the "env" rendering
 * (e.g. username -> PGUSER).  Keys not in the map are upper-cased with every
 * character outside [A-Za-z0-9_] replaced by '_'.  Ends with {NULL, NULL}. */
struct render_env_name {
	const char *key;
	const char *var;
};

/* True when spec names a rendering rather than a key. */
int render_is_format(const char *spec);

/* Renders spec from kv into a new secret (*ret, owned by the caller).
 * Returns 0, -ENOENT when a key the spec needs is missing from kv (err names
 * it), -EINVAL when a value cannot be written in the format (err names the
 * key, never the value), -EMSGSIZE past SECRET_MAX_LEN, -ENOMEM. */
int render_file(const char *spec, const struct kv *kv,
		const struct render_env_name *env_names, struct secret **ret,
		struct errmsg *err) __attribute__((warn_unused_result));

#endif
