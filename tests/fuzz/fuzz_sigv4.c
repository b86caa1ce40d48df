/* SigV4 canonicalisation on arbitrary requests.  The input is the
 * request: method, path and query on the first three lines, then header
 * lines "name:value" up to an empty line, then the body.  Besides not
 * crashing: signing the same request twice gives the same header, and the
 * cached signer agrees with the uncached one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of the input, NUL-terminated in place. */
static char *next_line(char **p, char *end)
{
	char *line = *p, *nl;

	if (line >= end)
		return NULL;
	nl = memchr(line, '\n', (size_t)(end - line));
	if (nl == NULL)
		nl = end;
	*nl = '\0';
	*p = nl + 1;
	return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sigv4_signer *signer;
	struct sigv4_header headers[SIGV4_MAX_HEADERS + 1];
	struct sigv4_request req;
	struct sigv4_key key;
	struct secret *sk = NULL;
	struct errmsg err;
	char *buf = malloc(size + 1), *p, *end, *line, *colon;
	char a1[2048], a2[2048], a3[2048];
	size_t n = 0;
	int r1, r2, r3;

	if (buf == NULL)
		return 0;
	if (signer == NULL && sigv4_signer_new(&signer) < 0)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	p = buf;
	end = buf + size;
	memset(&req, 0, sizeof(req));
	req.method = next_line(&p, end);
	req.path = next_line(&p, end);
	req.query = next_line(&p, end);
	if (req.method == NULL || req.path == NULL || req.query == NULL)
		goto out;
	while ((line = next_line(&p, end)) != NULL && line[0] != '\0' &&
	       n <= SIGV4_MAX_HEADERS) {
		colon = strchr(line, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		headers[n].name = line;
		headers[n].value = colon + 1;
		n++;
	}
	req.headers = headers;
	req.header_count = n;
	req.body = p < end ? p : "";
	req.body_len = p < end ? (size_t)(end - p) : 0;
	if (secret_from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 40, &sk) <
	    0)
		goto out;
	key.access_key_id = "AKIDEXAMPLE";
	key.secret_access_key = sk;
	r1 = sigv4_authorization(&req, "20150830T123600Z", "us-east-1",
				 "service", &key, a1, sizeof(a1), &err);
	r2 = sigv4_sign(signer, &req, "20150830T123600Z", "us-east-1",
			"service", &key, a2, sizeof(a2), &err);
	r3 = sigv4_sign(signer, &req, "20150830T123600Z", "us-east-1",
			"service", &key, a3, sizeof(a3), &err);
	if (r1 != r2 || r2 != r3 ||
	    (r1 == 0 && (strcmp(a1, a2) != 0 || strcmp(a2, a3) != 0)))
		abort();
out:
	secret_free(sk);
	free(buf);
	return 0;
}
