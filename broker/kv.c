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
