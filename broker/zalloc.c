#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "zalloc.h"

struct zalloc_header {
	size_t size;
	max_align_t align;
};

static struct zalloc_header *zalloc_header_of(void *p)
{
	return (struct zalloc_header *)((char *)p -
					offsetof(struct zalloc_header, align));
}

void *zalloc_malloc(size_t size)
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

void *zalloc_calloc(size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		return NULL;
	p = zalloc_malloc(nmemb * size);
	if (p != NULL)
		memset(p, 0, nmemb * size);
	return p;
}

void *zalloc_realloc(void *p, size_t size)
{
	size_t old;
	void *q;

	if (p == NULL)
		return zalloc_malloc(size);
	old = zalloc_header_of(p)->size;
	q = zalloc_malloc(size);
	if (q == NULL)
		return NULL;
	memcpy(q, p, old < size ? old : size);
	zalloc_free(p);
	return q;
}

char *zalloc_strdup(const char *s)
{
	size_t len = strlen(s) + 1;
	char *p = zalloc_malloc(len);

	if (p != NULL)
		memcpy(p, s, len);
	return p;
}

void zalloc_free(void *p)
{
	struct zalloc_header *h;

	if (p == NULL)
		return;
	h = zalloc_header_of(p);
	secret_wipe(p, h->size);
	free(h);
}
