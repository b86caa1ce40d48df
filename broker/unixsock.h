/* A listening Unix stream socket at a path, shared by the control socket
 * and the CSI plugin's gRPC endpoint: a socket left by a server that died
 * is replaced, a live server's socket or anything that is not a socket is
 * refused, and the socket is created 0600 (under a tight umask, so there
 * is no moment when it is more open). */
#ifndef CREDBROKER_UNIXSOCK_H
#define CREDBROKER_UNIXSOCK_H

#include "errmsg.h"

/* Binds and listens (non-blocking, close-on-exec).  what names the socket
 * in messages ("control.socket", "grpc").  Returns the descriptor, or
 * -ENAMETOOLONG, -EEXIST (not a socket), -EADDRINUSE (a live server), or
 * -errno with err set. */
int unixsock_listen(const char *path, int backlog, const char *what,
		    struct errmsg *err) __attribute__((warn_unused_result));

#endif
