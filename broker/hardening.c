#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <signal.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <jansson.h>

#include "hardening.h"
#include "zalloc.h"

int hardening_apply(void)
{
	struct rlimit no_core = {0, 0};
	int r = 0;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		r = -errno;
	if (setrlimit(RLIMIT_CORE, &no_core) < 0 && r == 0)
		r = -errno;
	umask(077);
	json_set_alloc_funcs(zalloc_malloc, zalloc_free);
	return r;
}

void hardening_block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int hardening_last_cap(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	char buf[16] = "";
	long v;

	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	v = strtol(buf, NULL, 10);
	return v > 0 && v < 64 ? (int)v : 40;
}

bool hardening_privileged(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return (data[0].effective & (1U << CAP_SYS_ADMIN)) != 0;
}

/* Without CAP_IPC_LOCK, mlock is bounded by RLIMIT_MEMLOCK (64 KiB in
 * many containers): raise it while raising is still allowed, so secret
 * pages stay locked after the drop. */
static void hardening_reserve_memlock(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_MEMLOCK, &lim) < 0 ||
	    lim.rlim_cur == RLIM_INFINITY ||
	    lim.rlim_cur >= HARDENING_MEMLOCK_BYTES)
		return;
	lim.rlim_cur = HARDENING_MEMLOCK_BYTES;
	if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < lim.rlim_cur)
		lim.rlim_max = lim.rlim_cur;
	(void)setrlimit(RLIMIT_MEMLOCK, &lim);
}

int hardening_drop_privileges(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	int cap, last = hardening_last_cap(), r = 0;

	hardening_reserve_memlock();
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	/* The bounding set needs CAP_SETPCAP to shrink; without it there is
	 * nothing to gain from it either. */
	for (cap = 0; cap <= last; cap++)
		(void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		r = -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 && r == 0)
		r = -errno;
	return r;
}
