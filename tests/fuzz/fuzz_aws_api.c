/* Every AWS response parser on the same bytes: STS credentials, both error
 * shapes, Secrets Manager GetSecretValue and KMS Decrypt.  A parser that
 * fails leaves nothing behind (the kv is empty). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct aws_secret_config kms = {.kind = AWS_KMS,
						     .value_key = "plaintext"};
	struct errmsg err;
	struct aws_creds creds;
	char version[256];
	struct kv kv;

	memset(&kv, 0, sizeof(kv));
	if (aws_sts_parse(data, size, &creds, &err) == 0)
		aws_creds_clear(&creds);
	(void)aws_error(400, data, size, true, &err);
	(void)aws_error(400, data, size, false, &err);
	if (aws_sm_parse(data, size, &kv, version, sizeof(version), &err) < 0 &&
	    kv.count != 0)
		abort();
	kv_clear(&kv);
	if (aws_kms_parse(&kms, data, size, &kv, &err) < 0 && kv.count != 0)
		abort();
	kv_clear(&kv);
	return 0;
}
