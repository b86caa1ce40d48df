/* Secret memory in the manner of OpenSSH's key shielding and libsodium's
 * guarded allocations: secret bytes live only in anonymous mappings that
 * hold nothing else, so that MADV_DONTDUMP and mlock apply to them alone,
 * and every byte is wiped before it is reused or goes back to the kernel.
 *
 * Small secrets (a password, a key, a rendered file) share slabs: one
 * SECRET_SLAB_SIZE mapping cut into chunks of one size class.  A mapping
 * per secret cost a locked page for a few dozen bytes, 40 KiB per
 * PostgreSQL lease, and ran into an 8 MiB RLIMIT_MEMLOCK at about 200
 * leases, after which secrets were no longer locked.  Larger secrets keep a
 * mapping of their own. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"

#define SECRET_SLAB_SIZE (16 * 1024)
#define SECRET_CLASS_MIN 32
#define SECRET_CLASS_COUNT 7 /* 32, 64, ... 2048 bytes */
#define SECRET_SMALL_MAX (SECRET_CLASS_MIN << (SECRET_CLASS_COUNT - 1))
#define SECRET_SLAB_CHUNKS_MAX (SECRET_SLAB_SIZE / SECRET_CLASS_MIN)
#define SECRET_SLAB_WORDS (SECRET_SLAB_CHUNKS_MAX / 64)

/* One mapping of SECRET_SLAB_SIZE bytes cut into chunks of one class. */
struct secret_slab {
	struct secret_slab *prev, *next;
	unsigned char *base;
	size_t chunk;
	size_t chunks;
	size_t used;
	bool locked;
	uint64_t busy[SECRET_SLAB_WORDS]; /* bit i: chunk i is handed out */
};

struct secret {
	void *map; /* a chunk of slab, or a page-aligned mapping */
	size_t map_size;
	size_t capacity;
	size_t len;
	bool locked; /* own mapping only; a slab records its own */
	struct secret_slab *slab;
};

static atomic_int secret_mlock_warned;

/* The slabs of each class, those with a free chunk first.  slab_lock
 * protects the lists and every slab's bitmap and count. */
static pthread_mutex_t secret_slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct secret_slab *secret_slabs[SECRET_CLASS_COUNT];

void secret_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		explicit_bzero(p, len);
}

/* mlock is best effort: containers often run with a small RLIMIT_MEMLOCK.
 * The pages are still excluded from dumps; say so once. */
static bool secret_lock(void *map, size_t size)
{
	if (mlock(map, size) == 0)
		return true;
	if (atomic_exchange(&secret_mlock_warned, 1) == 0)
		log_warn("event=mlock_failed detail=\"secret pages stay "
			 "excluded from core dumps but may be swapped\"");
	return false;
}

/* An anonymous mapping for secrets only: not dumped, not inherited by a
 * child (hooks fork), locked when the limit allows. */
static void *secret_map(size_t size, bool *locked)
{
	void *map = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (map == MAP_FAILED)
		return NULL;
	(void)madvise(map, size, MADV_DONTDUMP);
	(void)madvise(map, size, MADV_WIPEONFORK);
	*locked = secret_lock(map, size);
	return map;
}

static void secret_unmap(void *map, size_t size, bool locked)
{
	if (locked)
		(void)munlock(map, size);
	(void)munmap(map, size);
}

static size_t secret_class(size_t capacity)
{
	size_t c = 0;

	while ((size_t)SECRET_CLASS_MIN << c < capacity)
		c++;
	return c;
}

static void secret_slab_unlink(struct secret_slab **head,
			       struct secret_slab *slab)
{
	if (slab->prev != NULL)
		slab->prev->next = slab->next;
	else
		*head = slab->next;
	if (slab->next != NULL)
		slab->next->prev = slab->prev;
	slab->prev = slab->next = NULL;
}

static void secret_slab_push(struct secret_slab **head,
			     struct secret_slab *slab)
{
	slab->prev = NULL;
	slab->next = *head;
	if (*head != NULL)
		(*head)->prev = slab;
	*head = slab;
}

static struct secret_slab *secret_slab_new(size_t chunk)
{
	struct secret_slab *slab = calloc(1, sizeof(*slab));

	if (slab == NULL)
		return NULL;
	slab->base = secret_map(SECRET_SLAB_SIZE, &slab->locked);
	if (slab->base == NULL) {
		free(slab);
		return NULL;
	}
	slab->chunk = chunk;
	slab->chunks = SECRET_SLAB_SIZE / chunk;
	return slab;
}

/* A free chunk of the class of capacity, zero-filled (a fresh mapping, or
 * wiped when it was given back).  Caller holds secret_slab_lock. */
static void *secret_slab_take(size_t capacity, struct secret_slab **ret)
{
	size_t cls = secret_class(capacity), w, bit;
	struct secret_slab **head = &secret_slabs[cls];
	struct secret_slab *slab = *head;

	if (slab == NULL || slab->used == slab->chunks) {
		slab = secret_slab_new((size_t)SECRET_CLASS_MIN << cls);
		if (slab == NULL)
			return NULL;
		secret_slab_push(head, slab);
	}
	for (w = 0; ~slab->busy[w] == 0; w++)
		;
	bit = (size_t)__builtin_ctzll(~slab->busy[w]);
	slab->busy[w] |= 1ULL << bit;
	/* A full slab goes last, so the head always has room if any does. */
	if (++slab->used == slab->chunks && slab->next != NULL) {
		struct secret_slab *last = slab->next;

		while (last->next != NULL)
			last = last->next;
		secret_slab_unlink(head, slab);
		last->next = slab;
		slab->prev = last;
	}
	*ret = slab;
	return slab->base + (w * 64 + bit) * slab->chunk;
}

/* Gives a wiped chunk back; an empty slab is unmapped.  Caller holds
 * secret_slab_lock. */
static void secret_slab_give(struct secret_slab *slab, void *chunk)
{
	size_t idx =
	    (size_t)((unsigned char *)chunk - slab->base) / slab->chunk;
	struct secret_slab **head = &secret_slabs[secret_class(slab->chunk)];

	slab->busy[idx / 64] &= ~(1ULL << (idx % 64));
	slab->used--;
	secret_slab_unlink(head, slab);
	if (slab->used == 0) {
		secret_unmap(slab->base, SECRET_SLAB_SIZE, slab->locked);
		free(slab);
		return;
	}
	secret_slab_push(head, slab);
}

int secret_new(size_t capacity, struct secret **ret)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct secret *s;
	int r = -EMSGSIZE;

	if (capacity > SECRET_MAX_LEN)
		return r;
	r = -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return r;
	if (capacity <= SECRET_SMALL_MAX) {
		pthread_mutex_lock(&secret_slab_lock);
		s->map = secret_slab_take(capacity, &s->slab);
		pthread_mutex_unlock(&secret_slab_lock);
		if (s->map != NULL)
			s->map_size = s->slab->chunk;
	} else {
		s->map_size = (capacity + page - 1) & ~(page - 1);
		s->map = secret_map(s->map_size, &s->locked);
	}
	if (s->map == NULL) {
		free(s);
		return r;
	}
	s->capacity = capacity;
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
	if (s->slab != NULL) {
		pthread_mutex_lock(&secret_slab_lock);
		secret_slab_give(s->slab, s->map);
		pthread_mutex_unlock(&secret_slab_lock);
	} else {
		secret_unmap(s->map, s->map_size, s->locked);
	}
	free(s);
}
