/* libFuzzer target for what the API server sends the webhook: any body
 * must give an AdmissionReview answer or a refusal with a message, never a
 * crash or a leak (inject_object walks the pod it carries).
 *
 * tests/fuzz/replay.c replays corpus/webhook/ as a plain test. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errmsg err = {{0}};
	json_t *review = json_loadb((const char *)data, size, 0, NULL), *ans;

	if (review == NULL)
		return 0;
	ans = webhook_review(review, NULL, &err);
	if (ans == NULL && memchr(err.text, '\0', sizeof(err.text)) == NULL)
		abort();
	json_decref(ans);
	json_decref(review);
	return 0;
}
