/* Allocators that wipe every block when it is freed, for libraries that keep
 * copies of what passes through them (jansson's parsed strings, libcurl's
 * header and body buffers).  free() gets no size, so each block carries its
 * size in front. */
#ifndef CREDBROKER_ZALLOC_H
#define CREDBROKER_ZALLOC_H

#include <stddef.h>

void *zalloc_malloc(size_t size);
void *zalloc_calloc(size_t nmemb, size_t size);
/* Moves the block to a new one and wipes the old, so no stale copy stays
 * behind in memory the C library may hand out again. */
void *zalloc_realloc(void *p, size_t size);
char *zalloc_strdup(const char *s);
/* Wipes and frees.  NULL-safe. */
void zalloc_free(void *p);

#endif
