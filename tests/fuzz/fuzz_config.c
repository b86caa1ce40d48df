/* libFuzzer target for the config parser (broker/config.c): any input must
 * either parse or fail with a message, never crash, leak or read past len.
 * The real backend registry is linked, so the postgres parse hooks are
 * fuzzed through it too.
 *
 * tests/fuzz/replay.c replays corpus/config/ as a plain test; wire it with
 * cb_fuzz_target(fuzz_config core cb_broker). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;
	int r;

	r = config_parse((const char *)data, size, &c, &err);
	if (r == 0) {
		config_free(c);
	} else if (c != NULL ||
		   memchr(err.text, '\0', sizeof(err.text)) == NULL) {
		abort(); /* *ret set on failure, or an unterminated message */
	}
	return 0;
}
