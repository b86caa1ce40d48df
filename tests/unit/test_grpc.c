/* fusefs/csi/grpc.c against a real client (@grpc/grpc-js, run with node)
 * and against a small nghttp2 client written here for what grpc-js will not
 * send: garbage, oversized, compressed and mis-framed messages. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <nghttp2/nghttp2.h>

#include "grpc.h"

#define INVALID_MESSAGE "bad volume_id: 100% wrong, caf\xc3\xa9 \xe2\x9c\x93"

static char dir[32];
static char sock_path[100];
static struct grpc_server *server;
static pthread_t server_thread;
static int server_rc;

static int echo_handler(void *arg, const uint8_t *req, size_t len,
			uint8_t **resp, size_t *resp_len, char *msg,
			size_t msg_size)
{
	uint8_t *p = NULL;

	if (len > 0) {
		p = malloc(len);
		if (p == NULL)
			return GRPC_RESOURCE_EXHAUSTED;
		memcpy(p, req, len);
	}
	*resp = p;
	*resp_len = len;
	return GRPC_OK;
}

static int invalid_handler(void *arg, const uint8_t *req, size_t len,
			   uint8_t **resp, size_t *resp_len, char *msg,
			   size_t msg_size)
{
	(void)snprintf(msg, msg_size, "%s", INVALID_MESSAGE);
	return GRPC_INVALID_ARGUMENT;
}

static const struct grpc_method methods[] = {
    {"/test.Echo/Echo", echo_handler},
    {"/test.Echo/Invalid", invalid_handler},
};

static void *server_main(void *arg)
{
	server_rc = grpc_server_run(server);
	return NULL;
}

static void start(void)
{
	struct errmsg err = {{0}};
	struct stat st;

	(void)snprintf(dir, sizeof(dir), "/tmp/cb-grpc-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(sock_path, sizeof(sock_path), "%s/csi.sock", dir);
	ck_assert_int_eq(
	    grpc_server_new(sock_path, methods, 2, NULL, &server, &err), 0);
	ck_assert_int_eq(stat(sock_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(
	    pthread_create(&server_thread, NULL, server_main, NULL), 0);
}

static void stop(void)
{
	grpc_server_stop(server);
	ck_assert_int_eq(pthread_join(server_thread, NULL), 0);
	ck_assert_int_eq(server_rc, 0);
	grpc_server_free(server);
	ck_assert_int_eq(access(sock_path, F_OK), -1);
	(void)rmdir(dir);
}

static int raw_connect(void)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd;

	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)),
			 0);
	return fd;
}

/* Forks and execs argv; returns the exit status, or -1. */
static int run(char *const argv[])
{
	pid_t pid;
	int status;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --- a small nghttp2 client ------------------------------------------- */

struct h2_call {
	const uint8_t *body;
	size_t body_len, body_off;
	int32_t id;
	int http_status;
	int grpc_status; /* -1: none */
	char grpc_message[512];
	uint8_t *data;
	size_t len;
	bool closed;
	uint32_t rst_code;
};

static ssize_t h2_read_body(nghttp2_session *h2, int32_t id, uint8_t *buf,
			    size_t length, uint32_t *flags,
			    nghttp2_data_source *src, void *user)
{
	struct h2_call *c = src->ptr;
	size_t n = c->body_len - c->body_off;

	if (n > length)
		n = length;
	if (n > 0)
		memcpy(buf, c->body + c->body_off, n);
	c->body_off += n;
	if (c->body_off == c->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int h2_on_header(nghttp2_session *h2, const nghttp2_frame *frame,
			const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen, uint8_t flags,
			void *user)
{
	struct h2_call *c = user;
	char v[512];

	(void)snprintf(v, sizeof(v), "%.*s", (int)valuelen, value);
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		c->http_status = (int)strtol(v, NULL, 10);
	else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
		c->grpc_status = (int)strtol(v, NULL, 10);
	else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
		(void)snprintf(c->grpc_message, sizeof(c->grpc_message), "%s",
			       v);
	return 0;
}

static int h2_on_data(nghttp2_session *h2, uint8_t flags, int32_t id,
		      const uint8_t *data, size_t len, void *user)
{
	struct h2_call *c = user;

	c->data = realloc(c->data, c->len + len);
	ck_assert_ptr_nonnull(c->data);
	memcpy(c->data + c->len, data, len);
	c->len += len;
	return 0;
}

static int h2_on_close(nghttp2_session *h2, int32_t id, uint32_t code,
		       void *user)
{
	struct h2_call *c = user;

	if (id == c->id) {
		c->closed = true;
		c->rst_code = code;
	}
	return 0;
}

static nghttp2_session *h2_client(struct h2_call *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *h2;

	ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb,
								  h2_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_close);
	ck_assert_int_eq(nghttp2_session_client_new(&h2, cb, c), 0);
	nghttp2_session_callbacks_del(cb);
	ck_assert_int_eq(
	    nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, NULL, 0), 0);
	return h2;
}

/* Drives the session over fd until the call's stream closes, the server
 * closes, or 10 s pass. */
static void h2_pump(nghttp2_session *h2, int fd, struct h2_call *c)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	const uint8_t *out;
	uint8_t in[65536];
	ssize_t n, w;

	while (!c->closed) {
		while ((n = nghttp2_session_mem_send(h2, &out)) > 0) {
			for (; n > 0; n -= w, out += w) {
				w = send(fd, out, (size_t)n, MSG_NOSIGNAL);
				if (w < 0)
					return; /* server went away */
			}
		}
		ck_assert_int_ge(n, 0);
		if (c->closed || poll(&pfd, 1, 10000) <= 0)
			return;
		n = read(fd, in, sizeof(in));
		if (n <= 0)
			return;
		ck_assert_int_eq(nghttp2_session_mem_recv(h2, in, (size_t)n),
				 n);
	}
}

#define NV(n, v)                                                               \
	{                                                                      \
		(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v),          \
		    NGHTTP2_NV_FLAG_NONE                                       \
	}

/* One request on a new connection.  body is sent as is (already framed,
 * or not, as the test wants); extra, when set, is one more header value. */
static void h2_request_extra(const char *method, const char *path,
			     const char *ct, const char *extra,
			     const uint8_t *body, size_t body_len,
			     struct h2_call *c)
{
	nghttp2_nv nv[] = {
	    NV(":method", method),
	    NV(":scheme", "http"),
	    NV(":authority", "localhost"),
	    NV(":path", path),
	    NV("content-type", ct),
	    NV("te", "trailers"),
	    NV("x-extra", extra != NULL ? extra : ""),
	};
	nghttp2_data_provider prd = {.source = {.ptr = c},
				     .read_callback = h2_read_body};
	nghttp2_session *h2;
	int fd = raw_connect();

	memset(c, 0, sizeof(*c));
	c->grpc_status = -1;
	c->body = body;
	c->body_len = body_len;
	h2 = h2_client(c);
	c->id = nghttp2_submit_request(h2, NULL, nv, extra != NULL ? 7 : 6,
				       &prd, NULL);
	ck_assert_int_gt(c->id, 0);
	h2_pump(h2, fd, c);
	nghttp2_session_del(h2);
	close(fd);
}

static void h2_request(const char *method, const char *path, const char *ct,
		       const uint8_t *body, size_t body_len, struct h2_call *c)
{
	h2_request_extra(method, path, ct, NULL, body, body_len, c);
}

static uint8_t *frame(uint8_t flag, uint32_t declared, const void *msg,
		      size_t len)
{
	uint8_t *p = malloc(5 + len);

	ck_assert_ptr_nonnull(p);
	p[0] = flag;
	p[1] = (uint8_t)(declared >> 24);
	p[2] = (uint8_t)(declared >> 16);
	p[3] = (uint8_t)(declared >> 8);
	p[4] = (uint8_t)declared;
	if (len > 0)
		memcpy(p + 5, msg, len);
	return p;
}

static void echo_ok(const char *text)
{
	size_t len = strlen(text);
	uint8_t *body = frame(0, (uint32_t)len, text, len);
	struct h2_call c;

	h2_request("POST", "/test.Echo/Echo", "application/grpc", body, 5 + len,
		   &c);
	ck_assert(c.closed);
	ck_assert_uint_eq(c.rst_code, 0);
	ck_assert_int_eq(c.http_status, 200);
	ck_assert_int_eq(c.grpc_status, 0);
	ck_assert_uint_eq(c.len, 5 + len);
	ck_assert_mem_eq(c.data, body, 5 + len);
	free(c.data);
	free(body);
}

/* Reads until EOF; true when the server closed within timeout_ms. */
static bool closed_by_server(int fd, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char buf[4096];
	ssize_t n;

	for (;;) {
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return false;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0)
			return false;
	}
}

/* --- tests ------------------------------------------------------------ */

START_TEST(test_grpc_node_client)
{
	const char *node_dir = getenv("CB_NODE_DIR");
	char mods[512], script[512];

	if (node_dir == NULL || node_dir[0] == '\0')
		node_dir = "tests/node";
	(void)snprintf(mods, sizeof(mods), "%s/node_modules/@grpc/grpc-js",
		       node_dir);
	(void)snprintf(script, sizeof(script), "%s/grpc_client.mjs", node_dir);
	if (access(mods, F_OK) < 0) {
		char *npm[] = {"npm",	    "ci",	"--no-audit",
			       "--no-fund", "--prefix", (char *)node_dir,
			       NULL};

		fprintf(stderr, "test_grpc: %s missing, running npm ci\n",
			mods);
		ck_assert_msg(run(npm) == 0, "npm ci --prefix %s failed",
			      node_dir);
		ck_assert_msg(access(mods, F_OK) == 0,
			      "npm ci did not install %s", mods);
	}
	{
		char *node[] = {"node", script, sock_path, NULL};

		ck_assert_msg(run(node) == 0, "node %s failed (see stderr)",
			      script);
	}
}
END_TEST

START_TEST(test_grpc_echo_raw)
{
	echo_ok("hello");
	echo_ok("");
}
END_TEST

START_TEST(test_grpc_garbage_preface_closes_only_that_connection)
{
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
				   "this is not an HTTP/2 preface at all";
	int idle = raw_connect();
	int bad = raw_connect();

	ck_assert_int_eq(write(bad, junk, sizeof(junk) - 1),
			 (ssize_t)(sizeof(junk) - 1));
	echo_ok("while a client sends garbage and another sits idle");
	ck_assert(closed_by_server(bad, 5000));
	echo_ok("after the garbage client was dropped");
	close(bad);
	close(idle); /* stop() also proves an idle connection ends on stop */
}
END_TEST

START_TEST(test_grpc_idle_connection_does_not_block_stop)
{
	int idle = raw_connect();

	echo_ok("x");
	stop(); /* joins run(): the idle connection must not hold it */
	ck_assert(closed_by_server(idle, 5000));
	close(idle);
	start(); /* for the fixture's teardown */
}
END_TEST

START_TEST(test_grpc_too_large_refused)
{
	const size_t len = 5 * 1024 * 1024;
	uint8_t *msg = calloc(1, len), *body;
	struct h2_call c;

	ck_assert_ptr_nonnull(msg);
	body = frame(0, (uint32_t)len, msg, len);
	h2_request("POST", "/test.Echo/Echo", "application/grpc", body, 5 + len,
		   &c);
	/* Trailers-only status 8, then RST_STREAM(NO_ERROR) so the client
	 * stops sending the rest. */
	ck_assert(c.closed);
	ck_assert_int_eq(c.http_status, 200);
	ck_assert_int_eq(c.grpc_status, GRPC_RESOURCE_EXHAUSTED);
	ck_assert_uint_eq(c.len, 0);
	free(c.data);
	free(body);
	free(msg);
	echo_ok("the server is still fine");
}
END_TEST

START_TEST(test_grpc_largest_message_accepted)
{
	const size_t len = GRPC_MAX_MSG;
	uint8_t *msg = malloc(len), *body;
	struct h2_call c;

	ck_assert_ptr_nonnull(msg);
	memset(msg, 0xa5, len);
	body = frame(0, (uint32_t)len, msg, len);
	h2_request("POST", "/test.Echo/Echo", "application/grpc", body, 5 + len,
		   &c);
	ck_assert_int_eq(c.grpc_status, 0);
	ck_assert_uint_eq(c.len, 5 + len);
	ck_assert(memcmp(c.data, body, 5 + len) == 0);
	free(c.data);
	free(body);
	free(msg);
}
END_TEST

START_TEST(test_grpc_compressed_refused)
{
	uint8_t *body = frame(1, 3, "abc", 3);
	struct h2_call c;

	h2_request("POST", "/test.Echo/Echo", "application/grpc", body, 8, &c);
	ck_assert_int_eq(c.http_status, 200);
	ck_assert_int_eq(c.grpc_status, GRPC_UNIMPLEMENTED);
	ck_assert_str_eq(c.grpc_message, "compression not supported");
	ck_assert_uint_eq(c.len, 0);
	free(c.data);
	free(body);
}
END_TEST

START_TEST(test_grpc_length_mismatch_is_internal)
{
	uint8_t *body = frame(0, 10, "abc", 3);
	struct h2_call c;

	h2_request("POST", "/test.Echo/Echo", "application/grpc", body, 8, &c);
	ck_assert_int_eq(c.grpc_status, GRPC_INTERNAL);
	free(c.data);
	h2_request("POST", "/test.Echo/Echo", "application/grpc", body, 3, &c);
	ck_assert_int_eq(c.grpc_status, GRPC_INTERNAL);
	free(c.data);
	h2_request("POST", "/test.Echo/Echo", "application/grpc", NULL, 0, &c);
	ck_assert_int_eq(c.grpc_status, GRPC_INTERNAL);
	free(c.data);
	free(body);
}
END_TEST

START_TEST(test_grpc_bad_content_type_and_method)
{
	uint8_t *body = frame(0, 1, "a", 1);
	struct h2_call c;

	h2_request("POST", "/test.Echo/Echo", "text/plain", body, 6, &c);
	ck_assert_int_eq(c.http_status, 415);
	ck_assert_int_eq(c.grpc_status, -1);
	free(c.data);
	h2_request("POST", "/test.Echo/Echo", "application/grpcx", body, 6, &c);
	ck_assert_int_eq(c.http_status, 415);
	free(c.data);
	h2_request("POST", "/test.Echo/Echo", "application/grpc+proto", body, 6,
		   &c);
	ck_assert_int_eq(c.grpc_status, 0);
	free(c.data);
	h2_request("GET", "/test.Echo/Echo", "application/grpc", NULL, 0, &c);
	ck_assert_int_eq(c.http_status, 405);
	free(c.data);
	free(body);
}
END_TEST

START_TEST(test_grpc_unknown_path_unimplemented)
{
	uint8_t *body = frame(0, 1, "a", 1);
	struct h2_call c;

	h2_request("POST", "/csi.v1.Controller/CreateVolume",
		   "application/grpc", body, 6, &c);
	ck_assert_int_eq(c.http_status, 200);
	ck_assert_int_eq(c.grpc_status, GRPC_UNIMPLEMENTED);
	ck_assert_str_eq(c.grpc_message,
			 "unknown method /csi.v1.Controller/CreateVolume");
	free(c.data);
	free(body);
}
END_TEST

START_TEST(test_grpc_status_message_percent_encoded)
{
	uint8_t *body = frame(0, 1, "a", 1);
	struct h2_call c;

	h2_request("POST", "/test.Echo/Invalid", "application/grpc", body, 6,
		   &c);
	ck_assert_int_eq(c.grpc_status, GRPC_INVALID_ARGUMENT);
	ck_assert_str_eq(c.grpc_message,
			 "bad volume_id: 100%25 wrong, caf%C3%A9 %E2%9C%93");
	free(c.data);
	free(body);
}
END_TEST

START_TEST(test_grpc_header_list_capped)
{
	uint8_t *body = frame(0, 1, "a", 1);
	char *big = malloc(GRPC_MAX_HEADER_LIST + 1);
	struct h2_call c;

	ck_assert_ptr_nonnull(big);
	memset(big, 'h', GRPC_MAX_HEADER_LIST);
	big[GRPC_MAX_HEADER_LIST] = '\0';
	h2_request_extra("POST", "/test.Echo/Echo", "application/grpc", big,
			 body, 6, &c);
	ck_assert(c.closed);
	ck_assert_uint_ne(c.rst_code, 0);
	ck_assert_int_eq(c.grpc_status, -1);
	free(c.data);
	big[1000] = '\0';
	h2_request_extra("POST", "/test.Echo/Echo", "application/grpc", big,
			 body, 6, &c);
	ck_assert_int_eq(c.grpc_status, 0);
	free(c.data);
	free(big);
	free(body);
}
END_TEST

START_TEST(test_grpc_connections_capped)
{
	int fds[GRPC_MAX_CONNS], extra, i;

	for (i = 0; i < GRPC_MAX_CONNS; i++)
		fds[i] = raw_connect();
	extra = raw_connect();
	ck_assert(closed_by_server(extra, 5000));
	close(extra);
	for (i = 0; i < GRPC_MAX_CONNS; i++)
		close(fds[i]);
}
END_TEST

START_TEST(test_grpc_percent_encode_truncates_whole_escapes)
{
	char out[8];

	ck_assert_uint_eq(grpc_percent_encode("ab\n", out, sizeof(out)), 5);
	ck_assert_str_eq(out, "ab%0A");
	ck_assert_uint_eq(grpc_percent_encode("abcde\n", out, sizeof(out)), 5);
	ck_assert_str_eq(out, "abcde");
}
END_TEST

START_TEST(test_grpc_socket_path_checks)
{
	struct errmsg err = {{0}};
	struct grpc_server *s2 = NULL;
	char file[128];
	int fd;

	ck_assert_int_eq(
	    grpc_server_new(sock_path, methods, 2, NULL, &s2, &err),
	    -EADDRINUSE);
	(void)snprintf(file, sizeof(file), "%s/plain", dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(grpc_server_new(file, methods, 2, NULL, &s2, &err),
			 -EEXIST);
	ck_assert_ptr_null(s2);
	(void)unlink(file);
}
END_TEST

static Suite *grpc_suite(void)
{
	Suite *s = suite_create("grpc");
	TCase *tc = tcase_create("server");

	tcase_add_checked_fixture(tc, start, stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_grpc_node_client);
	tcase_add_test(tc, test_grpc_echo_raw);
	tcase_add_test(tc,
		       test_grpc_garbage_preface_closes_only_that_connection);
	tcase_add_test(tc, test_grpc_idle_connection_does_not_block_stop);
	tcase_add_test(tc, test_grpc_too_large_refused);
	tcase_add_test(tc, test_grpc_largest_message_accepted);
	tcase_add_test(tc, test_grpc_compressed_refused);
	tcase_add_test(tc, test_grpc_length_mismatch_is_internal);
	tcase_add_test(tc, test_grpc_bad_content_type_and_method);
	tcase_add_test(tc, test_grpc_unknown_path_unimplemented);
	tcase_add_test(tc, test_grpc_status_message_percent_encoded);
	tcase_add_test(tc, test_grpc_header_list_capped);
	tcase_add_test(tc, test_grpc_connections_capped);
	tcase_add_test(tc, test_grpc_percent_encode_truncates_whole_escapes);
	tcase_add_test(tc, test_grpc_socket_path_checks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(grpc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
