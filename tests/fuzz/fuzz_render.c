/* Renders every format from fuzzer-chosen keys and values: the input is
 * split at NUL bytes into key, value, key, value, ... */
#include <stdint.h>
#include <string.h>

#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const specs[] = {"json", "env", "dsn", "username"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct render_env_name names[] = {{"username", "PGUSER"},
						       {NULL, NULL}};
	struct errmsg err;
	struct secret *out;
	char key[KV_MAX_KEY];
	size_t pos = 0, i;
	struct kv kv;

	memset(&kv, 0, sizeof(kv));
	while (pos < size) {
		const uint8_t *end = memchr(data + pos, 0, size - pos);
		size_t klen = end ? (size_t)(end - data) - pos : size - pos;
		const uint8_t *val;
		size_t vlen;

		if (klen >= sizeof(key))
			klen = sizeof(key) - 1;
		memcpy(key, data + pos, klen);
		key[klen] = '\0';
		pos += klen + 1;
		if (pos > size)
			pos = size;
		val = data + pos;
		end = memchr(val, 0, size - pos);
		vlen = end ? (size_t)(end - val) : size - pos;
		pos += vlen + 1;
		if (kv_set(&kv, key, val, vlen) < 0)
			break;
	}
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		if (render_file(specs[i], &kv, names, &out, &err) == 0)
			secret_free(out);
	}
	kv_clear(&kv);
	return 0;
}
