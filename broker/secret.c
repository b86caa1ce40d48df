/* Secret memory in the manner of OpenSSH's key shielding and libsodium's
 * guarded allocations: each secret gets its own anonymous mapping so that
 * MADV_DONTDUMP and mlock apply to nothing else, and the pages are wiped
 * before they go back to the kernel. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"

struct secret {
	void *map; /* page-aligned mapping of map_size bytes */
	size_t map_size;
	size_t capacity;
	size_t len;
	int locked;
};

static atomic_int secret_mlock_warned;

void secret_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		explicit_bzero(p, len);
}

/* mlock is best effort: containers often run with a small RLIMIT_MEMLOCK.
 * The pages are still excluded from dumps; say so once. */
static int secret_lock(void *map, size_t size)
{
	if (mlock(map, size) == 0)
		return 1;
	if (atomic_exchange(&secret_mlock_warned, 1) == 0)
		log_warn("event=mlock_failed detail=\"secret pages stay "
			 "excluded from core dumps but may be swapped\"");
	return 0;
}

int secret_new(size_t capacity, struct secret **ret)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct secret *s;
	size_t size;

	if (capacity > SECRET_MAX_LEN)
		return -EMSGSIZE;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	size = (capacity + page) & ~(page - 1); /* at least one page */
	s->map = mmap(NULL, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->map == MAP_FAILED) {
		free(s);
		return -ENOMEM;
	}
	(void)madvise(s->map, size, MADV_DONTDUMP);
	(void)madvise(s->map, size, MADV_WIPEONFORK);
	s->map_size = size;
	s->capacity = capacity;
	s->locked = secret_lock(s->map, size);
	*ret = s;
	return 0;
}

int secret_from(const void *buf, size_t len, struct secret **ret)
{
	struct secret *s;
	int r;

	r = secret_new(len, &s);
	if (r < 0)
		return r;
	if (len > 0)
		memcpy(s->map, buf, len);
	s->len = len;
	*ret = s;
	return 0;
}

void *secret_expose(const struct secret *s, size_t *len)
{
	if (len != NULL)
		*len = s->len;
	return s->map;
}

size_t secret_len(const struct secret *s)
{
	return s->len;
}

size_t secret_capacity(const struct secret *s)
{
	return s->capacity;
}

int secret_set_len(struct secret *s, size_t len)
{
	if (len > s->capacity)
		return -EMSGSIZE;
	s->len = len;
	return 0;
}

void secret_free(struct secret *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s->map, s->map_size);
	if (s->locked)
		(void)munlock(s->map, s->map_size);
	(void)munmap(s->map, s->map_size);
	free(s);
}
