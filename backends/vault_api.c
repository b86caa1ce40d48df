/* Parsing is strict about types and lenient about extra fields: Vault adds
 * fields across versions, but a string where a number belongs means the
 * body is not what we think it is. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "vault_api.h"

/* Bounds lease and token lifetimes so later arithmetic in microseconds
 * cannot overflow; Vault's own max_ttl defaults to 32 days. */
#define VAULT_MAX_DURATION_S (10LL * 366 * 24 * 3600)

static json_t *vault_load(const void *body, size_t len, struct errmsg *err)
{
	json_error_t jerr;
	json_t *root;

	if (len > VAULT_MAX_BODY) {
		(void)errmsg_set(err, -EMSGSIZE, "response body too large");
		return NULL;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		/* jerr.text may quote the body: never pass it on. */
		(void)errmsg_set(err, -EPROTO, "response is not a JSON object");
		return NULL;
	}
	return root;
}

static int vault_get_duration(const json_t *obj, const char *key, int64_t *ret,
			      struct errmsg *err)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > VAULT_MAX_DURATION_S)
		return errmsg_set(err, -EPROTO,
				  "response: \"%s\" is not a whole number of "
				  "seconds up to ten years",
				  key);
	*ret = (int64_t)json_integer_value(v);
	return 0;
}

int vault_parse_auth(const void *body, size_t len, bool need_token,
		     struct vault_auth *out, struct errmsg *err)
{
	struct vault_auth res = {NULL, 0, false};
	json_t *root, *auth, *tok;
	int r;

	root = vault_load(body, len, err);
	if (root == NULL)
		return -EPROTO;
	auth = json_object_get(root, "auth");
	r = -EPROTO;
	if (!json_is_object(auth)) {
		(void)errmsg_set(err, r, "response has no \"auth\" object");
		goto out;
	}
	r = vault_get_duration(auth, "lease_duration", &res.lease_duration_s,
			       err);
	if (r < 0)
		goto out;
	res.renewable = json_is_true(json_object_get(auth, "renewable"));
	tok = json_object_get(auth, "client_token");
	if (json_is_string(tok) && json_string_length(tok) > 0) {
		r = secret_from(json_string_value(tok), json_string_length(tok),
				&res.token);
		if (r < 0)
			goto out;
	} else if (need_token) {
		r = errmsg_set(err, -EPROTO, "response has no client_token");
		goto out;
	}
	*out = res;
	r = 0;
out:
	json_decref(root);
	return r;
}

static int vault_parse_kv2(const json_t *data, struct vault_secret *out,
			   struct errmsg *err)
{
	const json_t *inner = json_object_get(data, "data");
	const json_t *meta = json_object_get(data, "metadata");
	const json_t *version = json_object_get(meta, "version");

	if (!json_is_object(inner))
		return errmsg_set(err, -EPROTO,
				  "KV v2 response has no "
				  "data.data object (deleted or destroyed "
				  "version?)");
	if (!json_is_integer(version) || json_integer_value(version) < 1)
		return errmsg_set(err, -EPROTO,
				  "KV v2 response has no "
				  "data.metadata.version");
	out->kv_version = (int64_t)json_integer_value(version);
	return kv_copy_json_object(inner, &out->values, err);
}

static int vault_parse_lease(const json_t *root, struct vault_secret *out,
			     struct errmsg *err)
{
	const json_t *id = json_object_get(root, "lease_id");
	int r;

	if (id != NULL && !json_is_string(id))
		return errmsg_set(err, -EPROTO, "lease_id is not a string");
	if (id != NULL && json_string_length(id) >= sizeof(out->lease_id))
		return errmsg_set(err, -EPROTO, "lease_id too long");
	if (id != NULL)
		memcpy(out->lease_id, json_string_value(id),
		       json_string_length(id) + 1);
	r = vault_get_duration(root, "lease_duration", &out->lease_duration_s,
			       err);
	if (r < 0 && json_object_get(root, "lease_duration") == NULL)
		r = 0; /* KV v1 through some proxies omits it */
	out->renewable = json_is_true(json_object_get(root, "renewable"));
	return r;
}

int vault_parse_secret(const void *body, size_t len, enum vault_kind kind,
		       struct vault_secret *out, struct errmsg *err)
{
	json_t *root, *data;
	int r = -EPROTO;

	memset(out, 0, sizeof(*out));
	root = vault_load(body, len, err);
	if (root == NULL)
		return -EPROTO;
	data = json_object_get(root, "data");
	if (!json_is_object(data)) {
		(void)errmsg_set(err, r, "response has no \"data\" object");
		goto out;
	}
	r = vault_parse_lease(root, out, err);
	if (r < 0)
		goto out;
	if (kind == VAULT_LEASED && out->lease_id[0] == '\0') {
		r = errmsg_set(err, -EPROTO,
			       "response has no lease_id: not "
			       "a leased path (use kind kv1 or kv2)");
		goto out;
	}
	if (kind == VAULT_KV2)
		r = vault_parse_kv2(data, out, err);
	else
		r = kv_copy_json_object(data, &out->values, err);
out:
	if (r < 0)
		kv_clear(&out->values);
	json_decref(root);
	return r;
}

int vault_parse_renew(const void *body, size_t len, int64_t *duration_s,
		      bool *renewable, struct errmsg *err)
{
	int64_t duration;
	json_t *root;
	int r;

	root = vault_load(body, len, err);
	if (root == NULL)
		return -EPROTO;
	r = vault_get_duration(root, "lease_duration", &duration, err);
	if (r == 0) {
		*duration_s = duration;
		*renewable = json_is_true(json_object_get(root, "renewable"));
	}
	json_decref(root);
	return r;
}

static void vault_append_printable(char *buf, size_t size, size_t *pos,
				   const char *text)
{
	for (; *text != '\0' && *pos + 1 < size; text++)
		buf[(*pos)++] = (*text >= 0x20 && *text < 0x7f) ? *text : '?';
	buf[*pos] = '\0';
}

void vault_error_text(long status, const void *body, size_t len, char *buf,
		      size_t size)
{
	json_t *root = NULL, *errors, *e;
	size_t pos, i;
	int n;

	n = snprintf(buf, size, "%ld", status);
	if (n < 0 || (size_t)n >= size)
		return;
	pos = (size_t)n;
	if (len > 0 && len <= VAULT_MAX_BODY)
		root = json_loadb(body, len, 0, NULL);
	errors = json_object_get(root, "errors");
	json_array_foreach(errors, i, e)
	{
		if (!json_is_string(e))
			continue;
		vault_append_printable(buf, size, &pos, i ? "; " : " ");
		vault_append_printable(buf, size, &pos, json_string_value(e));
	}
	json_decref(root);
}

bool vault_status_retryable(long status)
{
	return status == 412 || status == 429 ||
	       (status >= 500 && status != 501);
}

int vault_status_errno(long status)
{
	if (vault_status_retryable(status))
		return -EAGAIN;
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	default:
		return -EIO;
	}
}
