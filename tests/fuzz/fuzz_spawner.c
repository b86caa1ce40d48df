/* The hook spawner's two decoders on arbitrary messages.  Besides not
 * crashing: a request that decodes encodes back to the same bytes (the
 * encoder checks what the decoder checks), and a reply that decodes has a
 * NUL-terminated printable text and a result in range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spawner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spawner_request req;
	struct spawner_reply reply;
	struct errmsg err;
	char *msg = malloc(size + 1), *again = NULL;
	size_t len = 0, i;

	if (msg == NULL)
		return 0;
	memcpy(msg, data, size);
	if (spawner_request_decode(msg, size, &req, &err) == 0) {
		if (spawner_request_encode(req.id, req.timeout_usec, req.argv,
					   req.envp, &again, &len, &err) < 0 ||
		    len != size || memcmp(again, data, size) != 0)
			abort();
		free(again);
	}
	if (spawner_reply_decode(msg, size, &reply, &err) == 0) {
		if (reply.result > 0 || reply.result < -4095 ||
		    memchr(reply.text, '\0', sizeof(reply.text)) == NULL)
			abort();
		for (i = 0; reply.text[i] != '\0'; i++)
			if (reply.text[i] < 0x20 || reply.text[i] > 0x7e)
				abort();
	}
	free(msg);
	return 0;
}
