/* The key/values a backend issued for one version of a secret (username,
 * password, host, ...).  Every value is held in a struct secret; keys are
 * not secret. */
#ifndef CREDBROKER_KV_H
#define CREDBROKER_KV_H

#include <stddef.h>

#include "secret.h"

#define KV_MAX_ITEMS 64
#define KV_MAX_KEY 64

struct kv_item {
	char key[KV_MAX_KEY];
	struct secret *value;
};

struct kv {
	size_t count;
	struct kv_item items[KV_MAX_ITEMS];
};

/* Adds or replaces key with a copy of val[0..len).  Returns 0, -EINVAL for an
 * empty or over-long key, -EMSGSIZE past KV_MAX_ITEMS, -ENOMEM. */
int kv_set(struct kv *kv, const char *key, const void *val, size_t len)
    __attribute__((warn_unused_result));
/* Adds or replaces key with a NUL-terminated string value. */
int kv_set_str(struct kv *kv, const char *key, const char *val)
    __attribute__((warn_unused_result));
/* The value for key, or NULL.  Owned by kv. */
const struct secret *kv_get(const struct kv *kv, const char *key);
/* Frees (wipes) every value; kv may be reused after. */
void kv_clear(struct kv *kv);

#endif
