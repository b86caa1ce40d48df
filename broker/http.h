/* The HTTPS client the backends talk to their upstreams with.  It is a
 * table (struct http_transport_ops) so tests can put a scripted transport
 * in its place.  The libcurl implementation only speaks https, always
 * verifies the peer (TLS 1.2 at least), bounds every request in time and
 * caps the response body; bodies and secret header values stay in struct
 * secret, and libcurl's own copies are wiped when it frees them. */
#ifndef CREDBROKER_HTTP_H
#define CREDBROKER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "secret.h"

#define HTTP_MAX_HEADERS 16
#define HTTP_DEFAULT_MAX_BODY (1024 * 1024)

/* One request header: value or, for a token, secret_value. */
struct http_header {
	const char *name;
	const struct secret *secret_value;
	const char *value;
};

struct http_request {
	const char *method; /* GET, POST, PUT, DELETE, LIST */
	const char *url;    /* https://... */
	const struct http_header *headers;
	size_t header_count;	   /* at most HTTP_MAX_HEADERS */
	const struct secret *body; /* NULL for none */
	const char *content_type;  /* with body */
};

struct http_response {
	long status;
	struct secret *body; /* owned by the caller; never NULL
			      * after success */
};

struct http_tls {
	const char *ca_file; /* NULL: the system's trust store */
	const char *ca_dir;
	const char *cert_file; /* client certificate, with key_file */
	const char *key_file;
	const char *pinned_pubkey; /* "sha256//BASE64[;sha256//...]" */
	const char *server_name;   /* SNI and certificate name, when the
				    * URL's host is an address */
};

struct http_config {
	uint64_t connect_timeout_usec;
	uint64_t total_timeout_usec;
	size_t max_body; /* 0: HTTP_DEFAULT_MAX_BODY */
	struct http_tls tls;
};

struct http_transport;

struct http_transport_ops {
	/* Sends req and waits for the whole response, within the configured
	 * timeouts.  Any HTTP status is a success (resp->status tells);
	 * errors are transport failures: -ETIMEDOUT, -ECONNREFUSED,
	 * -ECONNRESET, -EHOSTUNREACH, -EPERM (TLS verification or pin),
	 * -EPROTO (TLS handshake), -EMSGSIZE (body over the cap), -EINVAL (a
	 * URL that is not https, too many headers), -ENOMEM, -EIO.  Safe to
	 * call from several threads at once. */
	int (*perform)(struct http_transport *t, const struct http_request *req,
		       struct http_response *resp, struct errmsg *err);
	/* NULL-safe. */
	void (*destroy)(struct http_transport *t);
};

struct http_transport {
	const struct http_transport_ops *ops;
};

/* The libcurl transport.  cfg is copied.  Returns 0, -EINVAL for a config
 * libcurl refuses, -ENOMEM. */
int http_curl_new(const struct http_config *cfg, struct http_transport **ret,
		  struct errmsg *err) __attribute__((warn_unused_result));

#endif
