#include <errno.h>
#include <string.h>

#include "kv.h"

static struct kv_item *kv_find(struct kv *kv, const char *key)
{
	size_t i;

	for (i = 0; i < kv->count; i++)
		if (strcmp(kv->items[i].key, key) == 0)
			return &kv->items[i];
	return NULL;
}

int kv_set(struct kv *kv, const char *key, const void *val, size_t len)
{
	struct kv_item *item;
	struct secret *value;
	size_t keylen = strlen(key);
	int r;

	if (keylen == 0 || keylen >= KV_MAX_KEY)
		return -EINVAL;
	item = kv_find(kv, key);
	if (item == NULL && kv->count >= KV_MAX_ITEMS)
		return -EMSGSIZE;
	r = secret_from(val, len, &value);
	if (r < 0)
		return r;
	if (item == NULL) {
		item = &kv->items[kv->count++];
		memcpy(item->key, key, keylen + 1);
	} else {
		secret_free(item->value);
	}
	item->value = value;
	return 0;
}

int kv_set_str(struct kv *kv, const char *key, const char *val)
{
	return kv_set(kv, key, val, strlen(val));
}

const struct secret *kv_get(const struct kv *kv, const char *key)
{
	size_t i;

	for (i = 0; i < kv->count; i++)
		if (strcmp(kv->items[i].key, key) == 0)
			return kv->items[i].value;
	return NULL;
}

void kv_clear(struct kv *kv)
{
	size_t i;

	for (i = 0; i < kv->count; i++) {
		secret_free(kv->items[i].value);
		kv->items[i].value = NULL;
	}
	kv->count = 0;
}
/* A non-string value as its JSON text, rendered straight into secret
 * memory (json_dumpb writes into our buffer). */
static int kv_set_json(struct kv *kv, const char *key, const json_t *value)
{
	size_t n = json_dumpb(value, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
	struct secret *text;
	int r;

	if (n == 0)
		return -EPROTO;
	r = secret_new(n, &text);
	if (r < 0)
		return r;
	(void)json_dumpb(value, secret_expose(text, NULL), n,
			 JSON_COMPACT | JSON_ENCODE_ANY);
	r = kv_set(kv, key, secret_expose(text, NULL), n);
	secret_free(text);
	return r;
}

int kv_copy_json_object(const json_t *data, struct kv *kv, struct errmsg *err)
{
	const char *key;
	json_t *value;
	int r;

	json_object_foreach((json_t *)data, key, value)
	{
		if (json_is_string(value))
			r = kv_set(kv, key, json_string_value(value),
				   json_string_length(value));
		else
			r = kv_set_json(kv, key, value);
		if (r < 0)
			return errmsg_set(err, r,
					  "response: cannot keep value "
					  "\"%.64s\"",
					  key);
	}
	return 0;
}

int kv_json_dump(json_t *obj, struct secret **ret)
{
	size_t n;
	int r;

	if (obj == NULL)
		return -ENOMEM;
	n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	r = n == 0 ? -ENOMEM : secret_new(n, ret);
	if (r == 0) {
		(void)json_dumpb(obj, secret_expose(*ret, NULL), n,
				 JSON_COMPACT);
		r = secret_set_len(*ret, n);
	}
	json_decref(obj);
	return r;
}
