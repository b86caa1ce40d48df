/* Time, injectable so unit tests never sleep.  Monotonic microseconds drive
 * every deadline; wall-clock microseconds since the epoch are only for what
 * upstreams are told (VALID UNTIL, expiry fields) and for humans. */
#ifndef CREDBROKER_CLOCK_H
#define CREDBROKER_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define USEC_PER_SEC 1000000ULL

struct clock {
	uint64_t (*mono)(void *arg);
	int64_t (*wall)(void *arg);
	void *arg;
};

/* The process clock (CLOCK_MONOTONIC, CLOCK_REALTIME). */
const struct clock *clock_system(void);

static inline uint64_t clock_mono(const struct clock *c)
{
	return c->mono(c->arg);
}

static inline int64_t clock_wall(const struct clock *c)
{
	return c->wall(c->arg);
}

/* Formats wall microseconds as RFC 3339 UTC with milliseconds
 * ("2026-12-04T14:30:00.123Z") into buf (at least 32 bytes). */
void clock_format_rfc3339(int64_t wall_usec, char *buf, size_t size);
/* The same with microseconds ("2026-12-04T14:30:00.123456Z"). */
void clock_format_rfc3339_usec(int64_t wall_usec, char *buf, size_t size);

#endif
