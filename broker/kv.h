/* The key/values a backend issued for one version of a secret (username,
 * password, host, ...).  Every value is held in a struct secret; keys are
 * not secret. */
#ifndef CREDBROKER_KV_H
#define CREDBROKER_KV_H

#include <stddef.h>

#include <jansson.h>

#include "errmsg.h"
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
/* Copies the members of a JSON object into kv, non-strings as their
 * compact JSON text, straight into secret memory.  Returns 0, or the
 * kv_set error with err naming the key. */
int kv_copy_json_object(const json_t *obj, struct kv *kv, struct errmsg *err)
    __attribute__((warn_unused_result));
/* obj as compact JSON in a new secret (a request body that carries a
 * token or a JWT); takes obj's reference, NULL gives -ENOMEM. */
int kv_json_dump(json_t *obj, struct secret **ret)
    __attribute__((warn_unused_result));
/* Frees (wipes) every value; kv may be reused after. */
void kv_clear(struct kv *kv);

#endif
