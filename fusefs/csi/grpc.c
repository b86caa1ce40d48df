/* A unary-only gRPC server on libnghttp2.  The accept loop runs on the
 * caller's thread; each connection gets its own thread that drives one
 * nghttp2 server session over a non-blocking socket with poll() and
 * deadlines.  Requests are collected per stream (capped), handlers run at
 * END_STREAM on the connection's thread, and every response is either
 * HEADERS + one framed message + trailers, or "trailers-only" for errors.
 * Request bytes are wiped before they are freed and never logged. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "grpc.h"
#include "unixsock.h"
#include "log.h"

#define GRPC_PREFIX 5				/* flag + 32-bit length */
#define GRPC_WINDOW (1024 * 1024)		/* per stream */
#define GRPC_CONN_WINDOW (8 * 1024 * 1024)	/* per connection */
#define GRPC_HELLO_TIMEOUT_US (10 * 1000000ULL) /* until the first frame */
#define GRPC_IO_TIMEOUT_US (30 * 1000000ULL)	/* no progress, work pending */
#define GRPC_IDLE_TIMEOUT_US (300 * 1000000ULL) /* no stream open */

struct grpc_server {
	int listen_fd;
	int stop_fd; /* eventfd: never read, so it wakes every poller */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const struct grpc_method *methods;
	size_t n_methods;
	void *arg;
	atomic_size_t buffered; /* request bytes held, all connections */
	pthread_mutex_t lock;	/* protects conns */
	pthread_cond_t idle;
	unsigned conns;
};

struct grpc_conn {
	struct grpc_server *srv;
	int fd;
	nghttp2_session *h2;
	uint64_t last_io;	  /* monotonic µs of the last byte moved */
	bool hello;		  /* a valid frame arrived */
	unsigned streams;	  /* open streams with our state */
	struct grpc_stream *head; /* them, so none leaks at the end */
};

struct grpc_stream {
	struct grpc_stream *prev, *next;
	int32_t id;
	const struct grpc_method *method;
	char path[GRPC_MAX_PATH];
	bool path_too_long;
	bool is_post;
	bool ct_ok;
	bool answered;	    /* response submitted: later DATA is dropped */
	bool remote_closed; /* END_STREAM received */
	size_t header_bytes;
	uint8_t *buf; /* framed request */
	size_t len, cap;
	uint8_t *out; /* framed response */
	size_t out_len, out_off;
};

static uint64_t grpc_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

size_t grpc_percent_encode(const char *in, char *out, size_t out_size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	unsigned char ch;

	for (; *in != '\0'; in++) {
		ch = (unsigned char)*in;
		if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
			if (o + 1 >= out_size)
				break;
			out[o++] = (char)ch;
			continue;
		}
		if (o + 3 >= out_size)
			break;
		out[o++] = '%';
		out[o++] = hex[ch >> 4];
		out[o++] = hex[ch & 0xf];
	}
	out[o] = '\0';
	return o;
}

/* "application/grpc", optionally followed by "+proto" or ";params". */
static bool grpc_content_type_ok(const uint8_t *v, size_t len)
{
	static const char ct[] = "application/grpc";
	const size_t n = sizeof(ct) - 1;

	if (len < n || memcmp(v, ct, n) != 0)
		return false;
	return len == n || v[n] == '+' || v[n] == ';';
}

static void grpc_wipe_free(uint8_t *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

static void grpc_stream_drop_request(struct grpc_conn *c,
				     struct grpc_stream *st)
{
	atomic_fetch_sub(&c->srv->buffered, st->len);
	grpc_wipe_free(st->buf, st->cap);
	st->buf = NULL;
	st->len = st->cap = 0;
}

static void grpc_stream_free(struct grpc_conn *c, struct grpc_stream *st)
{
	if (st->prev != NULL)
		st->prev->next = st->next;
	else
		c->head = st->next;
	if (st->next != NULL)
		st->next->prev = st->prev;
	c->streams--;
	grpc_stream_drop_request(c, st);
	grpc_wipe_free(st->out, st->out_len);
	free(st);
}

#define GRPC_NV(n, v, vlen)                                                    \
	{                                                                      \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen),         \
		    NGHTTP2_NV_FLAG_NONE                                       \
	}

/* Submits HEADERS (plus data when prd is set); a failure to queue means the
 * session is out of memory, which ends the connection. */
static int grpc_submit(struct grpc_conn *c, struct grpc_stream *st,
		       const nghttp2_nv *nv, size_t n,
		       const nghttp2_data_provider *prd)
{
	int rv;

	st->answered = true;
	grpc_stream_drop_request(c, st);
	rv = nghttp2_submit_response(c->h2, st->id, nv, n, prd);
	if (rv == 0)
		return 0;
	return rv == NGHTTP2_ERR_NOMEM ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* A bare HTTP error (405, 415): no gRPC status, the client maps it. */
static int grpc_respond_http(struct grpc_conn *c, struct grpc_stream *st,
			     const char *code)
{
	nghttp2_nv nv[] = {GRPC_NV(":status", code, 3)};

	return grpc_submit(c, st, nv, 1, NULL);
}

/* A "trailers-only" response: status and message in the only HEADERS. */
static int grpc_respond_status(struct grpc_conn *c, struct grpc_stream *st,
			       int status, const char *msg)
{
	char code[12], enc[GRPC_MAX_STATUS_MSG * 3 + 1];
	nghttp2_nv nv[] = {
	    GRPC_NV(":status", "200", 3),
	    GRPC_NV("content-type", "application/grpc", 16),
	    GRPC_NV("grpc-status", code, 0),
	    GRPC_NV("grpc-message", enc, 0),
	};
	size_t n = 3;

	nv[2].valuelen = (size_t)snprintf(code, sizeof(code), "%d", status);
	if (msg != NULL && msg[0] != '\0') {
		nv[3].valuelen = grpc_percent_encode(msg, enc, sizeof(enc));
		n = 4;
	}
	return grpc_submit(c, st, nv, n, NULL);
}

static ssize_t grpc_read_response(nghttp2_session *h2, int32_t id, uint8_t *buf,
				  size_t length, uint32_t *data_flags,
				  nghttp2_data_source *source, void *user)
{
	static const nghttp2_nv trailer[] = {GRPC_NV("grpc-status", "0", 1)};
	struct grpc_stream *st = source->ptr;
	size_t n = st->out_len - st->out_off;

	if (n > length)
		n = length;
	memcpy(buf, st->out + st->out_off, n);
	st->out_off += n;
	if (st->out_off == st->out_len) {
		*data_flags |=
		    NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(h2, id, trailer, 1) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

static int grpc_respond_message(struct grpc_conn *c, struct grpc_stream *st,
				uint8_t *resp, size_t resp_len)
{
	nghttp2_nv nv[] = {
	    GRPC_NV(":status", "200", 3),
	    GRPC_NV("content-type", "application/grpc", 16),
	};
	nghttp2_data_provider prd = {.source = {.ptr = st},
				     .read_callback = grpc_read_response};

	if (resp_len > GRPC_MAX_MSG) {
		grpc_wipe_free(resp, resp_len);
		return grpc_respond_status(c, st, GRPC_RESOURCE_EXHAUSTED,
					   "response message too large");
	}
	st->out = malloc(GRPC_PREFIX + resp_len);
	if (st->out == NULL) {
		grpc_wipe_free(resp, resp_len);
		return grpc_respond_status(c, st, GRPC_RESOURCE_EXHAUSTED,
					   "out of memory");
	}
	st->out[0] = 0;
	st->out[1] = (uint8_t)(resp_len >> 24);
	st->out[2] = (uint8_t)(resp_len >> 16);
	st->out[3] = (uint8_t)(resp_len >> 8);
	st->out[4] = (uint8_t)resp_len;
	if (resp_len > 0)
		memcpy(st->out + GRPC_PREFIX, resp, resp_len);
	st->out_len = GRPC_PREFIX + resp_len;
	grpc_wipe_free(resp, resp_len);
	return grpc_submit(c, st, nv, 2, &prd);
}

/* The request is complete: unframe it, run the handler, answer. */
static int grpc_stream_finish(struct grpc_conn *c, struct grpc_stream *st)
{
	char msg[GRPC_MAX_STATUS_MSG] = "";
	uint8_t *resp = NULL;
	size_t resp_len = 0, mlen;
	int status;

	if (st->answered)
		return 0;
	if (st->len < GRPC_PREFIX)
		return grpc_respond_status(c, st, GRPC_INTERNAL,
					   "missing request message");
	if (st->buf[0] != 0)
		return grpc_respond_status(c, st, GRPC_UNIMPLEMENTED,
					   "compression not supported");
	mlen = (size_t)st->buf[1] << 24 | (size_t)st->buf[2] << 16 |
	       (size_t)st->buf[3] << 8 | (size_t)st->buf[4];
	if (mlen != st->len - GRPC_PREFIX)
		return grpc_respond_status(c, st, GRPC_INTERNAL,
					   "message length does not match "
					   "the data");
	status = st->method->fn(c->srv->arg, st->buf + GRPC_PREFIX, mlen, &resp,
				&resp_len, msg, sizeof(msg));
	msg[sizeof(msg) - 1] = '\0';
	if (status == GRPC_OK)
		return grpc_respond_message(c, st, resp, resp_len);
	grpc_wipe_free(resp, resp_len);
	if (status < 0 || status > 16)
		return grpc_respond_status(c, st, GRPC_INTERNAL,
					   "internal error");
	return grpc_respond_status(c, st, status, msg);
}

static const struct grpc_method *grpc_find(const struct grpc_server *s,
					   const char *path)
{
	size_t i;

	for (i = 0; i < s->n_methods; i++)
		if (strcmp(s->methods[i].path, path) == 0)
			return &s->methods[i];
	return NULL;
}

/* The request's HEADERS are in: refuse early what can never succeed, so
 * its body is not buffered. */
static int grpc_stream_check(struct grpc_conn *c, struct grpc_stream *st)
{
	char msg[GRPC_MAX_PATH + 32];

	if (!st->is_post)
		return grpc_respond_http(c, st, "405");
	if (!st->ct_ok)
		return grpc_respond_http(c, st, "415");
	st->method = st->path_too_long ? NULL : grpc_find(c->srv, st->path);
	if (st->method != NULL)
		return 0;
	(void)snprintf(msg, sizeof(msg), "unknown method %s",
		       st->path_too_long ? "(too long)" : st->path);
	return grpc_respond_status(c, st, GRPC_UNIMPLEMENTED, msg);
}

static int grpc_on_begin_headers(nghttp2_session *h2,
				 const nghttp2_frame *frame, void *user)
{
	struct grpc_conn *c = user;
	struct grpc_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->id = frame->hd.stream_id;
	if (nghttp2_session_set_stream_user_data(h2, st->id, st) != 0) {
		free(st);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->next = c->head;
	if (c->head != NULL)
		c->head->prev = st;
	c->head = st;
	c->streams++;
	return 0;
}

static int grpc_on_header(nghttp2_session *h2, const nghttp2_frame *frame,
			  const uint8_t *name, size_t namelen,
			  const uint8_t *value, size_t valuelen, uint8_t flags,
			  void *user)
{
	struct grpc_stream *st;

	st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (frame->hd.type != NGHTTP2_HEADERS || st == NULL)
		return 0;
	/* RFC 9113's accounting: name + value + 32 per field. */
	st->header_bytes += namelen + valuelen + 32;
	if (st->header_bytes > GRPC_MAX_HEADER_LIST)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
		st->is_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
	} else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
		st->path_too_long = valuelen >= sizeof(st->path);
		if (!st->path_too_long) {
			memcpy(st->path, value, valuelen);
			st->path[valuelen] = '\0';
		}
	} else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
		st->ct_ok = grpc_content_type_ok(value, valuelen);
	}
	return 0;
}

static int grpc_on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id,
			      const uint8_t *data, size_t len, void *user)
{
	struct grpc_conn *c = user;
	struct grpc_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	size_t cap;
	uint8_t *p;

	if (st == NULL || st->answered || len == 0)
		return 0;
	if (len > GRPC_PREFIX + GRPC_MAX_MSG - st->len)
		return grpc_respond_status(c, st, GRPC_RESOURCE_EXHAUSTED,
					   "request message larger than "
					   "4194304 bytes");
	if (atomic_fetch_add(&c->srv->buffered, len) + len >
	    GRPC_MAX_BUFFERED) {
		atomic_fetch_sub(&c->srv->buffered, len);
		return grpc_respond_status(c, st, GRPC_RESOURCE_EXHAUSTED,
					   "server busy");
	}
	if (st->len + len > st->cap) {
		cap = st->cap < 16384 ? 16384 : st->cap * 2;
		while (cap < st->len + len)
			cap *= 2;
		if (cap > GRPC_PREFIX + GRPC_MAX_MSG)
			cap = GRPC_PREFIX + GRPC_MAX_MSG;
		/* Not realloc: the old copy of the token must be wiped. */
		p = malloc(cap);
		if (p == NULL) {
			atomic_fetch_sub(&c->srv->buffered, len);
			return grpc_respond_status(
			    c, st, GRPC_RESOURCE_EXHAUSTED, "out of memory");
		}
		if (st->len > 0)
			memcpy(p, st->buf, st->len);
		grpc_wipe_free(st->buf, st->cap);
		st->buf = p;
		st->cap = cap;
	}
	memcpy(st->buf + st->len, data, len);
	st->len += len;
	return 0;
}

static int grpc_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
			      void *user)
{
	struct grpc_conn *c = user;
	struct grpc_stream *st;
	int rv = 0;

	c->hello = true;
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (st == NULL)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS &&
	    frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		rv = grpc_stream_check(c, st);
	if (rv == 0 && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		st->remote_closed = true;
		rv = grpc_stream_finish(c, st);
	}
	return rv;
}

/* We answered before the client finished sending: tell it to stop
 * (RFC 9113 8.1: RST_STREAM with NO_ERROR). */
static int grpc_on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame,
			      void *user)
{
	struct grpc_stream *st;

	if ((frame->hd.type != NGHTTP2_HEADERS &&
	     frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (st != NULL && !st->remote_closed)
		(void)nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, st->id,
						NGHTTP2_NO_ERROR);
	return 0;
}

static int grpc_on_stream_close(nghttp2_session *h2, int32_t id,
				uint32_t error_code, void *user)
{
	struct grpc_conn *c = user;
	struct grpc_stream *st = nghttp2_session_get_stream_user_data(h2, id);

	if (st == NULL)
		return 0;
	(void)nghttp2_session_set_stream_user_data(h2, id, NULL);
	grpc_stream_free(c, st);
	return 0;
}

static ssize_t grpc_send_cb(nghttp2_session *h2, const uint8_t *data,
			    size_t len, int flags, void *user)
{
	struct grpc_conn *c = user;
	ssize_t n;

	n = send(c->fd, data, len, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR
			   ? NGHTTP2_ERR_WOULDBLOCK
			   : NGHTTP2_ERR_CALLBACK_FAILURE;
	c->last_io = grpc_now();
	return n;
}

static ssize_t grpc_recv_cb(nghttp2_session *h2, uint8_t *buf, size_t len,
			    int flags, void *user)
{
	struct grpc_conn *c = user;
	ssize_t n;

	n = recv(c->fd, buf, len, 0);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR
			   ? NGHTTP2_ERR_WOULDBLOCK
			   : NGHTTP2_ERR_CALLBACK_FAILURE;
	if (n == 0)
		return NGHTTP2_ERR_EOF;
	c->last_io = grpc_now();
	return n;
}

static int grpc_session_new(struct grpc_conn *c)
{
	const nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GRPC_MAX_STREAMS},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GRPC_MAX_HEADER_LIST},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GRPC_WINDOW},
	};
	nghttp2_session_callbacks *cb;
	int rv;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -ENOMEM;
	nghttp2_session_callbacks_set_send_callback(cb, grpc_send_cb);
	nghttp2_session_callbacks_set_recv_callback(cb, grpc_recv_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(
	    cb, grpc_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, grpc_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
	    cb, grpc_on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(
	    cb, grpc_on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(
	    cb, grpc_on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(
	    cb, grpc_on_stream_close);
	rv = nghttp2_session_server_new(&c->h2, cb, c);
	nghttp2_session_callbacks_del(cb);
	if (rv != 0)
		return -ENOMEM;
	rv = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv,
				     sizeof(iv) / sizeof(iv[0]));
	if (rv == 0)
		rv = nghttp2_session_set_local_window_size(
		    c->h2, NGHTTP2_FLAG_NONE, 0, GRPC_CONN_WINDOW);
	return rv == 0 ? 0 : -ENOMEM;
}

/* How long the connection may sit without moving a byte. */
static uint64_t grpc_conn_deadline(const struct grpc_conn *c)
{
	if (!c->hello)
		return c->last_io + GRPC_HELLO_TIMEOUT_US;
	if (c->streams > 0 || nghttp2_session_want_write(c->h2))
		return c->last_io + GRPC_IO_TIMEOUT_US;
	return c->last_io + GRPC_IDLE_TIMEOUT_US;
}

/* Ends the session politely: GOAWAY, flushed as far as the socket takes
 * it without waiting. */
static void grpc_conn_goaway(struct grpc_conn *c)
{
	(void)nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
	(void)nghttp2_session_send(c->h2);
}

/* Returns 0 when the peer or a deadline ended the connection, 1 on stop,
 * or an nghttp2 error code. */
static int grpc_conn_loop(struct grpc_conn *c)
{
	struct pollfd pfd[2] = {{.fd = c->fd}, {.fd = c->srv->stop_fd}};
	uint64_t now, deadline;
	int rv;

	pfd[1].events = POLLIN;
	while (nghttp2_session_want_read(c->h2) ||
	       nghttp2_session_want_write(c->h2)) {
		rv = nghttp2_session_send(c->h2);
		if (rv != 0)
			return rv;
		pfd[0].events = POLLIN;
		if (nghttp2_session_want_write(c->h2))
			pfd[0].events |= POLLOUT;
		now = grpc_now();
		deadline = grpc_conn_deadline(c);
		if (now >= deadline)
			return 0;
		rv = poll(pfd, 2, (int)((deadline - now) / 1000 + 1));
		if (rv < 0 && errno != EINTR)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		if (rv <= 0)
			continue;
		if (pfd[1].revents != 0)
			return 1;
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			rv = nghttp2_session_recv(c->h2);
			if (rv != 0)
				return rv == NGHTTP2_ERR_EOF ? 0 : rv;
		}
	}
	return 0;
}

static void *grpc_conn_thread(void *arg)
{
	struct grpc_conn *c = arg;
	struct grpc_server *s = c->srv;
	int rv;

	c->last_io = grpc_now();
	if (grpc_session_new(c) < 0) {
		log_warnx("event=grpc_conn_failed err=\"out of memory\"");
	} else {
		rv = grpc_conn_loop(c);
		if (rv < 0)
			log_debug("event=grpc_conn_closed err=\"%s\"",
				  nghttp2_strerror(rv));
		else
			grpc_conn_goaway(c);
	}
	/* nghttp2_session_del frees its streams without callbacks. */
	while (c->head != NULL)
		grpc_stream_free(c, c->head);
	nghttp2_session_del(c->h2);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&s->lock);
	s->conns--;
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void grpc_accept_one(struct grpc_server *s)
{
	struct grpc_conn *c;
	pthread_t thread;
	int fd;

	fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->conns >= GRPC_MAX_CONNS) {
		pthread_mutex_unlock(&s->lock);
		log_warnx("event=grpc_busy conns=%d", GRPC_MAX_CONNS);
		close(fd);
		return;
	}
	s->conns++;
	pthread_mutex_unlock(&s->lock);
	c = calloc(1, sizeof(*c));
	if (c != NULL) {
		c->srv = s;
		c->fd = fd;
		if (pthread_create(&thread, NULL, grpc_conn_thread, c) == 0) {
			pthread_detach(thread);
			return;
		}
	}
	free(c);
	close(fd);
	pthread_mutex_lock(&s->lock);
	s->conns--;
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
}

int grpc_server_run(struct grpc_server *s)
{
	struct pollfd pfd[2] = {
	    {.fd = s->listen_fd, .events = POLLIN},
	    {.fd = s->stop_fd, .events = POLLIN},
	};
	int r = 0;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents & POLLIN)
			grpc_accept_one(s);
	}
	/* Connection threads watch stop_fd too; on an accept failure wake
	 * them before waiting. */
	if (r < 0)
		grpc_server_stop(s);
	pthread_mutex_lock(&s->lock);
	while (s->conns > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return r;
}

void grpc_server_stop(struct grpc_server *s)
{
	uint64_t one = 1;
	ssize_t n;

	if (s == NULL)
		return;
	/* Only EAGAIN can fail here: the counter is already non-zero. */
	n = write(s->stop_fd, &one, sizeof(one));
	(void)n;
}

static int grpc_listen(struct grpc_server *s, struct errmsg *err)
{
	s->listen_fd = unixsock_listen(s->path, 64, "grpc", err);
	return s->listen_fd < 0 ? s->listen_fd : 0;
}

int grpc_server_new(const char *socket_path, const struct grpc_method *methods,
		    size_t n, void *arg, struct grpc_server **ret,
		    struct errmsg *err)
{
	struct grpc_server *s;
	int r;

	if (strncmp(socket_path, "unix://", 7) == 0)
		socket_path += 7;
	if (socket_path[0] == '\0' || strlen(socket_path) >= sizeof(s->path))
		return errmsg_set(err, -ENAMETOOLONG,
				  "grpc: socket path empty or too long");
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	s->listen_fd = -1;
	(void)snprintf(s->path, sizeof(s->path), "%s", socket_path);
	s->methods = methods;
	s->n_methods = n;
	s->arg = arg;
	atomic_init(&s->buffered, 0);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_fd < 0) {
		r = errmsg_set(err, -errno, "grpc: eventfd: %s",
			       strerror(errno));
		goto fail;
	}
	r = grpc_listen(s, err);
	if (r < 0)
		goto fail;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	*ret = s;
	return 0;
fail:
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	free(s);
	return r;
}

void grpc_server_free(struct grpc_server *s)
{
	if (s == NULL)
		return;
	close(s->listen_fd);
	(void)unlink(s->path);
	close(s->stop_fd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->idle);
	free(s);
}
