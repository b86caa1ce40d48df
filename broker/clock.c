#include <stdio.h>
#include <time.h>

#include "clock.h"

static uint64_t clock_system_mono(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static int64_t clock_system_wall(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const struct clock system_clock = {
    .mono = clock_system_mono,
    .wall = clock_system_wall,
    .arg = NULL,
};

const struct clock *clock_system(void)
{
	return &system_clock;
}

void clock_format_rfc3339(int64_t wall_usec, char *buf, size_t size)
{
	time_t secs = (time_t)(wall_usec / 1000000);
	int msec = (int)((wall_usec % 1000000) / 1000);
	struct tm tm;

	if (wall_usec < 0 || gmtime_r(&secs, &tm) == NULL) {
		(void)snprintf(buf, size, "invalid");
		return;
	}
	(void)snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		       tm.tm_min, tm.tm_sec, msec);
}

void clock_format_rfc3339_usec(int64_t wall_usec, char *buf, size_t size)
{
	time_t secs = (time_t)(wall_usec / 1000000);
	int usec = (int)(wall_usec % 1000000);
	struct tm tm;

	if (wall_usec < 0 || gmtime_r(&secs, &tm) == NULL) {
		(void)snprintf(buf, size, "invalid");
		return;
	}
	(void)snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
		       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		       tm.tm_min, tm.tm_sec, usec);
}
