#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
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
