/* The STS XML reader on arbitrary bytes, for the paths the AWS backend
 * reads and a few short ones that small inputs can reach.  Besides not
 * crashing: a text is never longer than the input, is NUL-terminated valid
 * UTF-8 without NUL bytes, and every failure carries an "xml: " message
 * with one of the documented errors. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws_xml.h"

#define STS "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Well-formed UTF-8 (the reader checked every byte it copied). */
static bool utf8_ok(const unsigned char *p, size_t len)
{
	size_t i = 0, n, k;

	while (i < len) {
		n = p[i] < 0x80 ? 1 : p[i] < 0xe0 ? 2 : p[i] < 0xf0 ? 3 : 4;
		if (p[i] == 0 || (p[i] >= 0x80 && p[i] < 0xc2) || p[i] > 0xf4 ||
		    n > len - i)
			return false;
		for (k = 1; k < n; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

static void check_text(const struct secret *text, size_t size)
{
	size_t len;
	const unsigned char *p = secret_expose(text, &len);

	if (len > size || p[len] != '\0' || !utf8_ok(p, len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {
	    STS "/Credentials/SessionToken",
	    STS "/Credentials/SecretAccessKey",
	    STS "/Credentials/AccessKeyId",
	    STS "/Credentials/Expiration",
	    "ErrorResponse/Error/Code",
	    "ErrorResponse/Error/Message",
	    "r/a",
	    "r/c",
	    "a/b",
	    "a",
	};
	bool wellformed = false, toobig = false;
	struct secret *text;
	struct errmsg err;
	size_t i;
	int r;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		text = NULL;
		err.text[0] = '\0';
		r = aws_xml_text(data, size, paths[i], &text, &err);
		if (r == 0) {
			check_text(text, size);
			secret_free(text);
		} else if (text != NULL || strncmp(err.text, "xml: ", 5) != 0 ||
			   (r != -ENOENT && r != -EBADMSG && r != -EMSGSIZE &&
			    r != -ENOMEM)) {
			abort();
		}
		wellformed |= r == 0 || r == -ENOENT;
		toobig |= r == -EMSGSIZE;
	}
	/* -EMSGSIZE is about the document (depth, names), not a path. */
	if (wellformed && toobig && size < SECRET_MAX_LEN)
		abort();
	return 0;
}
