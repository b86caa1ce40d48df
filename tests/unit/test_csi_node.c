/* The CSI node plugin's volume work on a real kernel: FUSE mounted at a
 * pod's target in a temporary pods tree, the descriptor handed over only
 * to the broker's uid, bounded waits, idempotent publish and unpublish,
 * and paths the pod could have bent refused.  Needs root and /dev/fuse
 * (exit 77 otherwise). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "node.h"

#define POD "0c1d2e3f-aaaa-bbbb-cccc-1234567890ab"
#define BROKER 65534

static char root[] = "/tmp/cb-csi-XXXXXX";
static char pods[256], target[600], sockpath[600], handoff[400];

static void mkdirs(const char *path, mode_t mode)
{
	char buf[512], *p;

	(void)snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		(void)mkdir(buf, 0755);
		*p = '/';
	}
	ck_assert(mkdir(buf, mode) == 0 || errno == EEXIST);
	ck_assert_int_eq(chmod(buf, mode), 0);
}

static void setup(void)
{
	char dir[400];

	(void)snprintf(root, sizeof(root), "/tmp/cb-csi-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	ck_assert_int_eq(chmod(root, 0755), 0);
	(void)snprintf(pods, sizeof(pods), "%s/pods", root);
	(void)snprintf(dir, sizeof(dir),
		       "%s/" POD "/volumes/kubernetes.io~csi/secrets", pods);
	mkdirs(dir, 0750);
	(void)snprintf(target, sizeof(target), "%s/mount", dir);
	(void)snprintf(handoff, sizeof(handoff),
		       "%s/" POD "/volumes/kubernetes.io~empty-dir/handoff",
		       pods);
	mkdirs(handoff, 0777);
	(void)snprintf(sockpath, sizeof(sockpath), "%s/" CSI_HANDOFF_SOCKET,
		       handoff);
}

/* Removes the tree, whatever a failed test left mounted. */
static void teardown(void)
{
	char path[600];
	static const char *const dirs[] = {
	    "/pods/" POD "/volumes/kubernetes.io~csi/secrets/mount",
	    "/pods/" POD "/volumes/kubernetes.io~csi/secrets",
	    "/pods/" POD "/volumes/kubernetes.io~csi",
	    "/pods/" POD "/volumes/kubernetes.io~empty-dir/handoff",
	    "/pods/" POD "/volumes/kubernetes.io~empty-dir",
	    "/pods/" POD "/volumes",
	    ("/pods/" POD),
	    "/pods",
	    "/elsewhere",
	    ""};
	size_t i;

	(void)umount2(target, MNT_DETACH);
	(void)unlink(sockpath);
	(void)unlink(handoff);
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s%s", root, dirs[i]);
		(void)rmdir(path);
	}
}

static struct csi_node *node(uint64_t timeout_usec)
{
	struct csi_node_config cfg;
	struct csi_node *n = NULL;
	struct errmsg err;

	memset(&cfg, 0, sizeof(cfg));
	(void)snprintf(cfg.pods_dir, sizeof(cfg.pods_dir), "%s", pods);
	cfg.handoff_timeout_usec = timeout_usec;
	ck_assert_msg(csi_node_new(&cfg, &n, &err) == 0, "%s", err.text);
	return n;
}

static struct csi_publish request(const char *volume_id)
{
	static const char payload[] = "{\"pod\":{\"name\":\"ws-1\"}}";
	struct csi_publish p = {volume_id, target,  "handoff",
				BROKER,	   payload, sizeof(payload) - 1};

	return p;
}

/* How many times path is in /proc/mounts as a fuse.credbroker mount
 * (our test paths hold no character /proc/mounts would escape). */
static int mounts_of(const char *path)
{
	char line[1024], want[700];
	FILE *f = fopen("/proc/mounts", "re");
	int n = 0;

	ck_assert_ptr_nonnull(f);
	(void)snprintf(want, sizeof(want), " %s fuse.credbroker ", path);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, want) != NULL)
			n++;
	fclose(f);
	return n;
}

/* In a child running as uid: connects to the hand-off socket and receives
 * the descriptor.  Exit 0: got a /dev/fuse descriptor and the payload;
 * 10: connected but got nothing; other: failed earlier. */
static int receive_as(uid_t uid)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char data[256] = "";
	struct iovec iov = {data, sizeof(data) - 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *c;
	struct stat st;
	int status, fd, dfd, got;
	pid_t pid = fork();

	if (pid == 0) {
		if (setresgid(uid, uid, uid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(2);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* Kubelet paths pass sun_path's 108 bytes; the broker uses
		 * its own short mount of the emptyDir, the test a
		 * directory descriptor. */
		dfd = open(handoff, O_PATH | O_DIRECTORY | O_CLOEXEC);
		(void)snprintf(addr.sun_path, sizeof(addr.sun_path),
			       "/proc/self/fd/%d/" CSI_HANDOFF_SOCKET, dfd);
		if (fd < 0 ||
		    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
			_exit(3);
		if (recvmsg(fd, &msg, 0) <= 0)
			_exit(10);
		c = CMSG_FIRSTHDR(&msg);
		if (c == NULL || c->cmsg_type != SCM_RIGHTS)
			_exit(10);
		memcpy(&got, CMSG_DATA(c), sizeof(int));
		if (fstat(got, &st) < 0 || !S_ISCHR(st.st_mode) ||
		    st.st_rdev != makedev(10, 229))
			_exit(4);
		_exit(strcmp(data, "{\"pod\":{\"name\":\"ws-1\"}}") == 0 ? 0
									 : 5);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

START_TEST(test_csi_node_publish_handoff_unpublish)
{
	struct csi_node *n = node(10000000);
	struct csi_publish p = request("vol-1");
	struct errmsg err;
	struct stat st;
	int i;

	ck_assert_msg(csi_node_publish(n, &p, &err) == 0, "%s", err.text);
	ck_assert_int_eq(mounts_of(target), 1);
	ck_assert_int_eq(lstat(sockpath, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_uid, BROKER);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	/* Republish: OK, never a second mount. */
	ck_assert_int_eq(csi_node_publish(n, &p, &err), 0);
	ck_assert_int_eq(mounts_of(target), 1);
	/* Root is not the broker: refused without a descriptor. */
	ck_assert_int_eq(receive_as(0), 10);
	ck_assert_int_eq(receive_as(BROKER), 0);
	/* Handed over: the plugin's copy is closed, its socket removed, and
	 * with the (exited) broker's copy gone the mount is dead. */
	for (i = 0; i < 100 && lstat(sockpath, &st) == 0; i++)
		usleep(20000);
	ck_assert_int_eq(lstat(sockpath, &st), -1);
	ck_assert_int_eq(stat(target, &st), -1);
	ck_assert_int_eq(errno, ENOTCONN);
	ck_assert_msg(csi_node_unpublish(n, "vol-1", target, &err) == 0, "%s",
		      err.text);
	ck_assert_int_eq(mounts_of(target), 0);
	ck_assert_int_eq(lstat(target, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	/* Unpublish of what is gone: OK. */
	ck_assert_int_eq(csi_node_unpublish(n, "vol-1", target, &err), 0);
	csi_node_free(n);
}
END_TEST

/* Nobody connects: the descriptor is closed in time, so readers fail at
 * once instead of hanging. */
START_TEST(test_csi_node_no_broker_closes_in_time)
{
	struct csi_node *n = node(300000);
	struct csi_publish p = request("vol-2");
	struct errmsg err;
	struct stat st;

	ck_assert_msg(csi_node_publish(n, &p, &err) == 0, "%s", err.text);
	usleep(800000);
	ck_assert_int_eq(lstat(sockpath, &st), -1);
	ck_assert_int_eq(stat(target, &st), -1);
	ck_assert_int_eq(errno, ENOTCONN);
	ck_assert_int_eq(csi_node_unpublish(n, "vol-2", target, &err), 0);
	ck_assert_int_eq(mounts_of(target), 0);
	csi_node_free(n);
}
END_TEST

/* A plugin restarted while the volume was mounted: the republish is OK and
 * leaves the mount alone; unpublish of an unknown volume still cleans. */
START_TEST(test_csi_node_restart_keeps_mount)
{
	struct csi_node *n = node(10000000);
	struct csi_publish p = request("vol-3");
	struct errmsg err;

	ck_assert_int_eq(csi_node_publish(n, &p, &err), 0);
	ck_assert_int_eq(receive_as(BROKER), 0);
	csi_node_free(n);
	n = node(10000000);
	ck_assert_msg(csi_node_publish(n, &p, &err) == 0, "%s", err.text);
	ck_assert_int_eq(mounts_of(target), 1);
	csi_node_free(n);
	n = node(10000000);
	ck_assert_int_eq(csi_node_unpublish(n, "vol-3", target, &err), 0);
	ck_assert_int_eq(mounts_of(target), 0);
	csi_node_free(n);
}
END_TEST

START_TEST(test_csi_node_refuses_bent_paths)
{
	struct csi_node *n = node(10000000);
	struct csi_publish p = request("vol-4");
	char elsewhere[300], link[600], outside[600];
	struct errmsg err;

	(void)snprintf(outside, sizeof(outside), "%s/other/mount", root);
	p.target_path = outside;
	ck_assert_int_eq(csi_node_publish(n, &p, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.text, "not below"));
	p.target_path = target;
	p.volume_id = "../x";
	ck_assert_int_eq(csi_node_publish(n, &p, &err), -EINVAL);
	p.volume_id = "vol-4";
	p.handoff_volume = "../../x";
	ck_assert_int_eq(csi_node_publish(n, &p, &err), -EINVAL);
	/* The pod swapped its hand-off emptyDir for a symlink: refused, and
	 * nothing stays mounted. */
	(void)snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", root);
	mkdirs(elsewhere, 0777);
	ck_assert_int_eq(rmdir(handoff), 0);
	ck_assert_int_eq(symlink(elsewhere, handoff), 0);
	p.handoff_volume = "handoff";
	ck_assert_int_lt(csi_node_publish(n, &p, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.text, "hand-off volume"));
	ck_assert_int_eq(mounts_of(target), 0);
	(void)snprintf(link, sizeof(link), "%s/" CSI_HANDOFF_SOCKET, elsewhere);
	ck_assert_int_eq(access(link, F_OK), -1);
	csi_node_free(n);
}
END_TEST

static Suite *csi_node_suite(void)
{
	Suite *s = suite_create("csi_node");
	TCase *tc = tcase_create("node");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_csi_node_publish_handoff_unpublish);
	tcase_add_test(tc, test_csi_node_no_broker_closes_in_time);
	tcase_add_test(tc, test_csi_node_restart_keeps_mount);
	tcase_add_test(tc, test_csi_node_refuses_bent_paths);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("SKIP: needs root and /dev/fuse\n");
		return 77;
	}
	sr = srunner_create(csi_node_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
