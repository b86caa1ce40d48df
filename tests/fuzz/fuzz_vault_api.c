/* Every Vault response parser on the same bytes. */
#include <stdint.h>
#include <string.h>

#include "vault_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum vault_kind kinds[] = {VAULT_LEASED, VAULT_KV2,
						VAULT_KV1};
	struct errmsg err;
	struct vault_secret sec;
	struct vault_auth auth;
	bool renewable;
	int64_t d;
	char text[256];
	size_t i;

	if (vault_parse_auth(data, size, false, &auth, &err) == 0)
		secret_free(auth.token);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (vault_parse_secret(data, size, kinds[i], &sec, &err) == 0)
			kv_clear(&sec.values);
	if (vault_parse_renew(data, size, &d, &renewable, &err) < 0)
		d = 0;
	vault_error_text(500, data, size, text, sizeof(text));
	return 0;
}
