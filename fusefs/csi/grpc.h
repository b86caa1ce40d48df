/* A minimal gRPC server: unary calls only, HTTP/2 cleartext with prior
 * knowledge (what kubelet speaks to a CSI plugin) on a Unix socket, with
 * libnghttp2 for the framing.  Each connection is served on its own thread
 * (at most GRPC_MAX_CONNS at once) with I/O deadlines, so an idle or slow
 * client never blocks another; malformed HTTP/2 closes that connection only.
 * Request bodies are never logged: CSI requests carry service-account
 * tokens. */
#ifndef CREDBROKER_GRPC_H
#define CREDBROKER_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define GRPC_MAX_MSG (4 * 1024 * 1024) /* one message, either way */
#define GRPC_MAX_CONNS 16
#define GRPC_MAX_STREAMS 16	   /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define GRPC_MAX_HEADER_LIST 16384 /* one request's header block */
#define GRPC_MAX_BUFFERED (32 * 1024 * 1024) /* all requests, server-wide */
#define GRPC_MAX_PATH 256
#define GRPC_MAX_STATUS_MSG 256

/* The status codes this server and its handlers use (grpc/doc/statuscodes). */
enum grpc_status {
	GRPC_OK = 0,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
};

/* A unary handler.  req/len is the request message (unframed; req is never
 * NULL, len may be 0), valid only during the call.  Returns a grpc_status.
 * On GRPC_OK it sets *resp to a malloc'd message (NULL with *resp_len 0 for
 * an empty one) that the server frees.  On any other status *resp is
 * ignored (and freed if set) and msg (msg_size bytes, starts empty) may hold
 * a short reason for the client: never secret bytes.  A negative return is
 * sent as GRPC_INTERNAL.  Handlers run on connection threads, possibly
 * several at once: arg must be safe to share. */
typedef int (*grpc_handler)(void *arg, const uint8_t *req, size_t len,
			    uint8_t **resp, size_t *resp_len, char *msg,
			    size_t msg_size);

struct grpc_method {
	const char *path; /* "/csi.v1.Node/NodePublishVolume" */
	grpc_handler fn;
};

struct grpc_server;

/* Binds socket_path (mode 0600; a stale socket is replaced, a live one or
 * anything that is not a socket is refused).  A "unix://" prefix is
 * accepted and stripped.  methods (n entries) must outlive the server; it
 * is not copied.  Returns 0 and *ret, or -errno with err set. */
int grpc_server_new(const char *socket_path, const struct grpc_method *methods,
		    size_t n, void *arg, struct grpc_server **ret,
		    struct errmsg *err) __attribute__((warn_unused_result));
/* Accepts and serves connections on the calling thread until
 * grpc_server_stop; then waits for every connection thread to finish
 * (each ends its connection with GOAWAY) and returns 0, or -errno if the
 * accept loop failed.  Call once. */
int grpc_server_run(struct grpc_server *s) __attribute__((warn_unused_result));
/* Makes grpc_server_run return.  Safe from another thread or a signal
 * handler (it only writes an eventfd).  May be called before run. */
void grpc_server_stop(struct grpc_server *s);
/* Closes and removes the socket, frees s.  Call after grpc_server_run has
 * returned (or without ever running it).  NULL-safe. */
void grpc_server_free(struct grpc_server *s);

/* Percent-encodes a grpc-message value (gRPC over HTTP/2: bytes outside
 * 0x20..0x7e and '%' become %XX).  Truncates to fit out (out_size > 0),
 * never splitting an escape.  Returns the length written.  Exposed for
 * tests. */
size_t grpc_percent_encode(const char *in, char *out, size_t out_size);

#endif
