#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <jansson.h>

#include "hardening.h"
#include "secret.h"

/* jansson's free() gets no size, so each block carries its size in front;
 * a freed block is wiped, because it may have held a parsed token. */
struct zalloc_header {
	size_t size;
	max_align_t align;
};

static void *zalloc_malloc(size_t size)
{
	struct zalloc_header *h;

	if (size > SIZE_MAX - sizeof(*h))
		return NULL;
	h = malloc(sizeof(*h) + size);
	if (h == NULL)
		return NULL;
	h->size = size;
	return &h->align;
}

static void zalloc_free(void *p)
{
	struct zalloc_header *h;

	if (p == NULL)
		return;
	h = (struct zalloc_header *)((char *)p -
				     offsetof(struct zalloc_header, align));
	secret_wipe(p, h->size);
	free(h);
}

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
