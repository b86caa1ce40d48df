/* Secret bytes live only here: anonymous mmap'd pages excluded from core
 * dumps (MADV_DONTDUMP), locked in memory when RLIMIT_MEMLOCK allows (one
 * warning otherwise), and wiped with explicit_bzero before they are unmapped.
 * A secret has a capacity fixed at creation and a length <= capacity. */
#ifndef CREDBROKER_SECRET_H
#define CREDBROKER_SECRET_H

#include <stddef.h>

#define SECRET_MAX_LEN (1024 * 1024)

struct secret;

/* A zero-filled secret of the given capacity and length 0.  Returns 0, or
 * -EMSGSIZE past SECRET_MAX_LEN, -ENOMEM. */
int secret_new(size_t capacity, struct secret **ret)
    __attribute__((warn_unused_result));
/* A secret holding a copy of buf[0..len). */
int secret_from(const void *buf, size_t len, struct secret **ret)
    __attribute__((warn_unused_result));
/* The one greppable way to reach the bytes.  The pointer stays valid until
 * secret_free(); *len (when not NULL) receives the length. */
void *secret_expose(const struct secret *s, size_t *len);
size_t secret_len(const struct secret *s);
size_t secret_capacity(const struct secret *s);
/* Sets the length after writing through secret_expose(); -EMSGSIZE when
 * len exceeds the capacity. */
int secret_set_len(struct secret *s, size_t len)
    __attribute__((warn_unused_result));
/* Wipes and unmaps.  NULL-safe. */
void secret_free(struct secret *s);
/* Wipes a stack or heap copy; the compiler may not elide it. */
void secret_wipe(void *p, size_t len);

#endif
