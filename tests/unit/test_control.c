#include <errno.h>
#include <time.h>
#include <poll.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "control.h"

static char dir[32];
static char path[100];

static json_t *echo_handler(void *arg, const struct control_peer *peer,
			    const json_t *req)
{
	(void)arg;
	return json_pack("{s:b, s:O, s:i, s:s}", "ok", 1, "cmd",
			 json_object_get(req, "cmd"), "uid", (int)peer->uid,
			 "comm", peer->comm);
}

static struct control *start(void)
{
	struct errmsg err = {{0}};
	struct control *c;

	snprintf(dir, sizeof(dir), "/tmp/cb-ctl-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	ck_assert_int_eq(
	    control_start(path, NULL, 0, echo_handler, NULL, &c, &err), 0);
	return c;
}

static void stop(struct control *c)
{
	control_stop(c);
	ck_assert_int_eq(access(path, F_OK), -1);
	rmdir(dir);
}

static int raw_connect(void)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)),
			 0);
	return fd;
}

static json_t *raw_exchange(const char *bytes, size_t len)
{
	char buf[4096];
	ssize_t n, got = 0;
	int fd = raw_connect();

	if (len > 0)
		ck_assert_int_eq(send(fd, bytes, len, MSG_NOSIGNAL),
				 (ssize_t)len);
	shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	return json_loads(buf, 0, NULL);
}

START_TEST(test_control_round_trip_and_mode)
{
	struct control *c = start();
	struct errmsg err = {{0}};
	json_t *req = json_pack("{s:s}", "cmd", "status"), *reply = NULL;
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(control_call(path, req, 2000, &reply, &err), 0);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "cmd")),
			 "status");
	ck_assert_int_eq(json_integer_value(json_object_get(reply, "uid")),
			 (int)getuid());
	ck_assert_str_eq(json_string_value(json_object_get(reply, "comm")),
			 "test_control");
	json_decref(req);
	json_decref(reply);
	stop(c);
}
END_TEST

START_TEST(test_control_rejects_bad_requests)
{
	struct control *c = start();
	char *big = malloc(CONTROL_MAX_MSG + 10);
	json_t *reply;

	reply = raw_exchange("not json\n", 9);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "error")),
			 "request is not a JSON object");
	json_decref(reply);
	reply = raw_exchange("{\"cmd\":\"x\"", 10);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "error")),
			 "no complete request line");
	json_decref(reply);
	memset(big, 'a', CONTROL_MAX_MSG + 10);
	reply = raw_exchange(big, CONTROL_MAX_MSG + 10);
	ck_assert_str_eq(json_string_value(json_object_get(reply, "error")),
			 "request too large");
	json_decref(reply);
	free(big);
	stop(c);
}
END_TEST

START_TEST(test_control_slow_client_does_not_block_others)
{
	struct control *c = start();
	struct errmsg err = {{0}};
	json_t *req = json_pack("{s:s}", "cmd", "ls"), *reply = NULL;
	int idle = raw_connect();

	/* idle sends nothing; a responder must still get through. */
	ck_assert_int_eq(control_call(path, req, 2000, &reply, &err), 0);
	ck_assert(json_is_true(json_object_get(reply, "ok")));
	json_decref(reply);
	json_decref(req);
	close(idle);
	stop(c);
}
END_TEST

/* CONTROL_MAX_CLIENTS connections that send nothing hold every slot: a
 * responder's revoke still gets in at once (not after the silent ones'
 * CONTROL_READ_TIMEOUT_MS), because the client silent longest is cut off
 * to make room; the others keep their slots. */
START_TEST(test_control_silent_clients_cannot_starve_revoke)
{
	struct control *c = start();
	struct errmsg err = {{0}};
	json_t *req = json_pack("{s:s, s:b}", "cmd", "revoke", "all", 1);
	json_t *reply = NULL;
	int silent[CONTROL_MAX_CLIENTS], i;
	struct timespec t0, t1;
	struct pollfd pfd;
	char buf[256];
	double took;

	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		silent[i] = raw_connect();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(control_call(path, req, 3000, &reply, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	took = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert(json_is_true(json_object_get(reply, "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(reply, "cmd")),
			 "revoke");
	ck_assert_double_lt(took, CONTROL_READ_TIMEOUT_MS / 1000.0 / 2);
	/* The first silent client was cut off: end of stream at once. */
	pfd = (struct pollfd){.fd = silent[0], .events = POLLIN};
	ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
	ck_assert_int_ge(read(silent[0], buf, sizeof(buf)), 0);
	/* The others are still waited for. */
	pfd.fd = silent[1];
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		close(silent[i]);
	json_decref(reply);
	json_decref(req);
	stop(c);
}
END_TEST

/* A client that trickles a byte every 300 ms never completes a line: the
 * read timeout bounds the whole request, so it loses its slot after
 * CONTROL_READ_TIMEOUT_MS, not after 64 KiB of bytes (days). */
START_TEST(test_control_trickling_client_is_cut)
{
	struct control *c = start();
	struct pollfd pfd;
	struct timespec t0, t1;
	char byte = 'x', buf[256];
	double waited;
	int fd = raw_connect(), closed = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!closed) {
		if (send(fd, &byte, 1, MSG_NOSIGNAL) != 1)
			break;
		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 300) == 1)
			closed = read(fd, buf, sizeof(buf)) >= 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ck_assert_msg(t1.tv_sec - t0.tv_sec < 20,
			      "a trickling client kept its slot for 20 s");
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	waited = (double)(t1.tv_sec - t0.tv_sec) +
		 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_double_ge(waited, CONTROL_READ_TIMEOUT_MS / 1000.0 - 0.5);
	ck_assert_double_le(waited, CONTROL_READ_TIMEOUT_MS / 1000.0 + 3.0);
	close(fd);
	stop(c);
}
END_TEST

START_TEST(test_control_denies_other_uid)
{
	struct control *c = start();
	int status;
	pid_t pid;

	/* Open the mode so that only SO_PEERCRED stands in the way. */
	ck_assert_int_eq(chmod(path, 0666), 0);
	ck_assert_int_eq(chmod(dir, 0755), 0);
	pid = fork();
	if (pid == 0) {
		struct errmsg err = {{0}};
		json_t *req = json_pack("{s:s}", "cmd", "revoke"), *reply;

		if (setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(3);
		if (control_call(path, req, 2000, &reply, &err) < 0)
			_exit(4);
		_exit(strcmp(json_string_value(json_object_get(reply, "error")),
			     "permission denied") == 0
			  ? 0
			  : 5);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	stop(c);
}
END_TEST

START_TEST(test_control_socket_path_checks)
{
	struct errmsg err = {{0}};
	struct control *c = start(), *c2;
	int fd;

	/* A live broker's socket is not stolen. */
	ck_assert_int_eq(
	    control_start(path, NULL, 0, echo_handler, NULL, &c2, &err),
	    -EADDRINUSE);
	control_stop(c);
	/* A regular file in the way is refused. */
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	ck_assert_int_eq(
	    control_start(path, NULL, 0, echo_handler, NULL, &c2, &err),
	    -EEXIST);
	ck_assert_ptr_nonnull(strstr(err.text, "not a socket"));
	unlink(path);
	rmdir(dir);
	ck_assert_int_eq(control_call(path, NULL, 100, NULL, &err), -ENOENT);
}
END_TEST

START_TEST(test_control_listed_responder_gets_in)
{
	static const uid_t responders[] = {65534};
	struct errmsg err = {{0}};
	unsigned char acl[128];
	struct control *c;
	struct stat st;
	int status;
	pid_t pid;

	snprintf(dir, sizeof(dir), "/tmp/cb-ctl-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/run/control.sock", dir);
	/* The missing parent directory is created. */
	ck_assert_int_eq(
	    control_start(path, responders, 1, echo_handler, NULL, &c, &err),
	    0);
	ck_assert_int_eq(stat(path, &st), 0);
	/* Nobody else: the group bits show the ACL mask of the user entry. */
	ck_assert_int_eq(st.st_mode & 0707, 0600);
	ck_assert_int_eq(
	    getxattr(path, "system.posix_acl_access", acl, sizeof(acl)),
	    4 + 5 * 8);
	/* A uid that is neither listed nor root: the kernel refuses it. */
	pid = fork();
	if (pid == 0) {
		if (setresgid(65533, 65533, 65533) < 0 ||
		    setresuid(65533, 65533, 65533) < 0)
			_exit(3);
		_exit(control_call(path, NULL, 2000, NULL, &err) == -EACCES
			  ? 0
			  : 4);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	pid = fork();
	if (pid == 0) {
		json_t *req = json_pack("{s:s}", "cmd", "status"), *reply;

		if (setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(3);
		if (control_call(path, req, 2000, &reply, &err) < 0)
			_exit(4);
		_exit(json_is_true(json_object_get(reply, "ok")) ? 0 : 5);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	control_stop(c);
	snprintf(path, sizeof(path), "%s/run", dir);
	rmdir(path);
	rmdir(dir);
}
END_TEST

static Suite *control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_control_round_trip_and_mode);
	tcase_add_test(tc, test_control_rejects_bad_requests);
	tcase_add_test(tc, test_control_slow_client_does_not_block_others);
	tcase_add_test(tc, test_control_trickling_client_is_cut);
	tcase_add_test(tc, test_control_silent_clients_cannot_starve_revoke);
	tcase_add_test(tc, test_control_denies_other_uid);
	tcase_add_test(tc, test_control_socket_path_checks);
	tcase_add_test(tc, test_control_listed_responder_gets_in);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(control_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
