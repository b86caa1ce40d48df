/* The control socket: a Unix stream socket (mode 0600) answering
 * responders.  Each connection carries one request line and gets one reply
 * line, both JSON objects of at most CONTROL_MAX_MSG bytes.  The peer's uid
 * (SO_PEERCRED) must be root or in the allowlist.  Each connection is served
 * on its own thread (at most CONTROL_MAX_CLIENTS at once, each with a read
 * timeout), so one slow client never blocks another.  With every slot
 * taken, a new client evicts the one that has been waiting longest without
 * sending a whole request: only clients whose commands run can make the
 * socket busy. */
#ifndef CREDBROKER_CONTROL_H
#define CREDBROKER_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "errmsg.h"

#define CONTROL_MAX_MSG (64 * 1024)	/* a request */
#define CONTROL_MAX_REPLY (1024 * 1024) /* a reply (status of 256 secrets) */
#define CONTROL_MAX_CLIENTS 16
#define CONTROL_MAX_ALLOWED 64 /* responder uids */
#define CONTROL_READ_TIMEOUT_MS 5000

struct control_peer {
	uid_t uid;
	pid_t pid;
	char comm[32];
};

/* Handles one request; returns a new reply object (never NULL on success:
 * return an {"ok":false,"error":...} object for refusals).  Also called
 * with request NULL for a peer refused by uid, so that the refusal can be
 * audited; that call's return value is dropped. */
typedef json_t *(*control_handler)(void *arg, const struct control_peer *peer,
				   const json_t *request);

struct control;

/* Binds path (replacing a stale socket, refusing anything else that is not a
 * socket), mode 0600, starts accepting.  allowed (at most
 * CONTROL_MAX_ALLOWED) lists the uids besides root and our own that may
 * connect: each gets a POSIX ACL entry on the socket (a filesystem without
 * ACLs is an error), and SO_PEERCRED is checked on every connection.
 * Returns 0 or -errno with err set. */
int control_start(const char *path, const uid_t *allowed, size_t allowed_count,
		  control_handler handler, void *arg, struct control **ret,
		  struct errmsg *err) __attribute__((warn_unused_result));
/* Stops accepting, waits for running handlers, removes the socket.
 * NULL-safe. */
void control_stop(struct control *c);

/* Serves one connection's request, as each connection's thread does: reads
 * one line from fd (at most CONTROL_MAX_MSG bytes, all within timeout_ms),
 * parses it and passes it to handler.  Returns the reply to send (owned by
 * the caller): the handler's, or a refusal object for a request that is
 * too large, incomplete or not a JSON object; NULL only when out of memory.
 * Sends nothing and does not check the peer.  Exported for
 * tests/fuzz/fuzz_control.c, which drives it without a listening socket. */
json_t *control_serve(int fd, const struct control_peer *peer,
		      control_handler handler, void *arg, int timeout_ms);

/* Client side: sends request to the socket at path and returns the reply in
 * *reply (owned by the caller).  Returns 0, -ENOENT/-ECONNREFUSED when no
 * broker listens, -EPROTO for a malformed reply, -ETIMEDOUT. */
int control_call(const char *path, const json_t *request, int timeout_ms,
		 json_t **reply, struct errmsg *err)
    __attribute__((warn_unused_result));

#endif
