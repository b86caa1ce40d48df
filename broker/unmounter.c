/* The unmount helper process. */
#include <errno.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unmounter.h"

#define UNMOUNTER_WAIT_MS 5000
#define UNMOUNTER_FD 3

struct unmounter {
	pid_t pid;
	int sock;
};

/* Keeps CAP_SYS_ADMIN (effective and permitted) and nothing else, in the
 * bounding set too, and no way to gain more. */
static void unmounter_keep_sys_admin(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	int cap;

	for (cap = 0; cap < 64; cap++)
		if (cap != CAP_SYS_ADMIN)
			(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = 1U << CAP_SYS_ADMIN;
	(void)syscall(SYS_capset, &hdr, data);
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

static void unmounter_main(int sock, const char *path)
{
	unsigned char cmd, answer;
	ssize_t n;

	/* Terminal signals go to the whole process group: this process
	 * waits for the broker instead, so the mount goes when it does. */
	(void)signal(SIGTERM, SIG_IGN);
	(void)signal(SIGINT, SIG_IGN);
	(void)signal(SIGHUP, SIG_IGN);
	(void)prctl(PR_SET_NAME, "cb-unmount", 0, 0, 0);
	if (dup2(sock, UNMOUNTER_FD) < 0)
		_exit(1);
	(void)syscall(SYS_close_range, UNMOUNTER_FD + 1, ~0U, 0);
	unmounter_keep_sys_admin();
	do
		n = read(UNMOUNTER_FD, &cmd, 1);
	while (n < 0 && errno == EINTR);
	/* A mount already gone (EINVAL, ENOENT) is what was asked for. */
	if (umount2(path, MNT_DETACH) == 0 || errno == EINVAL ||
	    errno == ENOENT)
		answer = 0;
	else
		answer = (unsigned char)errno;
	/* The broker may be gone already: nobody to tell then. */
	if (n == 1 && write(UNMOUNTER_FD, &answer, 1) != 1)
		_exit(1);
	_exit(0);
}

int unmounter_start(const char *path, struct unmounter **ret,
		    struct errmsg *err)
{
	struct unmounter *u = calloc(1, sizeof(*u));
	int sv[2];

	if (u == NULL)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		free(u);
		return errmsg_set(err, -errno, "unmounter: socketpair: %s",
				  strerror(errno));
	}
	u->pid = fork();
	if (u->pid < 0) {
		int r = -errno;

		close(sv[0]);
		close(sv[1]);
		free(u);
		return errmsg_set(err, r, "unmounter: fork: %s", strerror(-r));
	}
	if (u->pid == 0) {
		/* The child's copy: nothing in it points there any more. */
		free(u);
		unmounter_main(sv[1], path);
	}
	close(sv[1]);
	u->sock = sv[0];
	*ret = u;
	return 0;
}

int unmounter_pid(const struct unmounter *u)
{
	return u->pid;
}

int unmounter_detach(struct unmounter *u, struct errmsg *err)
{
	struct pollfd p = {.fd = u->sock, .events = POLLIN};
	unsigned char cmd = 'u', answer = 0;
	ssize_t n;
	int r;

	if (send(u->sock, &cmd, 1, MSG_NOSIGNAL) != 1)
		return errmsg_set(err, -errno, "unmounter: %s",
				  strerror(errno));
	do
		r = poll(&p, 1, UNMOUNTER_WAIT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return errmsg_set(err, -ETIMEDOUT,
				  "unmounter: no answer within %d ms",
				  UNMOUNTER_WAIT_MS);
	n = read(u->sock, &answer, 1);
	if (n != 1)
		return errmsg_set(err, -EPIPE, "unmounter: gone");
	if (answer != 0)
		return errmsg_set(err, -answer, "unmounter: umount2: %s",
				  strerror(answer));
	return 0;
}

void unmounter_free(struct unmounter *u)
{
	if (u == NULL)
		return;
	close(u->sock);
	while (waitpid(u->pid, NULL, 0) < 0 && errno == EINTR)
		;
	free(u);
}
