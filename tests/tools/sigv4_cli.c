/* A test tool: signs one request described as JSON on stdin with the
 * project's SigV4 signer and prints {"canonical", "authorization"}, so
 * tests can compare it with another implementation (botocore).  Test
 * data only: the secret key comes in the JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sigv4.h"

static const char *str(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "";
}

int main(void)
{
	struct sigv4_header headers[SIGV4_MAX_HEADERS];
	char canonical[SIGV4_MAX_CANONICAL], sh[1024], authz[2048];
	json_t *in = json_loadf(stdin, 0, NULL), *h, *out;
	struct sigv4_request req;
	struct sigv4_key key;
	struct secret *secret = NULL;
	struct errmsg err;
	size_t i;

	if (in == NULL)
		return 2;
	memset(&req, 0, sizeof(req));
	json_array_foreach(json_object_get(in, "headers"), i, h)
	{
		if (i >= SIGV4_MAX_HEADERS)
			return 2;
		headers[i].name = json_string_value(json_array_get(h, 0));
		headers[i].value = json_string_value(json_array_get(h, 1));
		req.header_count = i + 1;
	}
	req.method = str(in, "method");
	req.path = str(in, "path");
	req.query = str(in, "query");
	req.headers = headers;
	req.body = str(in, "body");
	req.body_len = strlen(str(in, "body"));
	if (secret_from(str(in, "secret_key"), strlen(str(in, "secret_key")),
			&secret) < 0)
		return 2;
	key.access_key_id = str(in, "access_key");
	key.secret_access_key = secret;
	if (sigv4_canonical_request(&req, canonical, sizeof(canonical), sh,
				    sizeof(sh)) < 0 ||
	    sigv4_authorization(&req, str(in, "date"), str(in, "region"),
				str(in, "service"), &key, authz, sizeof(authz),
				&err) < 0)
		return 1;
	out = json_pack("{s:s, s:s}", "canonical", canonical, "authorization",
			authz);
	(void)json_dumpf(out, stdout, JSON_COMPACT);
	printf("\n");
	json_decref(out);
	json_decref(in);
	secret_free(secret);
	return 0;
}
