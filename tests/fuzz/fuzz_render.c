/* Renders every format from fuzzer-chosen keys and values: the input is
 * split at NUL bytes into key, value, key, value, ...  Beyond not crashing,
 * the two AWS renderings must keep their shape whatever the values: the
 * INI file exactly its 3 or 4 lines with no other control byte (a value
 * cannot forge a line), the JSON no raw control byte and its frame
 * intact. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const specs[] = {
    "json", "env", "dsn", "username", "credentials", "credential_process"};

static void check_credentials(const struct kv *kv, const struct secret *out)
{
	size_t len, i, lines = 0;
	const unsigned char *p = secret_expose(out, &len);

	for (i = 0; i < len; i++) {
		if (p[i] == '\n')
			lines++;
		else if (p[i] < 0x20 || p[i] == 0x7f)
			abort();
	}
	if (len < 10 || p[len - 1] != '\n' ||
	    lines != (kv_get(kv, "session_token") ? 4u : 3u) ||
	    memcmp(p, "[default]\n", 10) != 0)
		abort();
}

static void check_credential_process(const struct secret *out)
{
	static const char head[] = "{\"Version\":1,\"AccessKeyId\":\"";
	size_t len, i;
	const unsigned char *p = secret_expose(out, &len);

	if (len < sizeof(head) + 2 || memcmp(p, head, sizeof(head) - 1) != 0 ||
	    memcmp(p + len - 3, "\"}\n", 3) != 0)
		abort();
	for (i = 0; i + 1 < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			abort();
}

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
		if (render_file(specs[i], &kv, names, &out, &err) != 0)
			continue;
		if (strcmp(specs[i], "credentials") == 0)
			check_credentials(&kv, out);
		else if (strcmp(specs[i], "credential_process") == 0)
			check_credential_process(out);
		secret_free(out);
	}
	kv_clear(&kv);
	return 0;
}
