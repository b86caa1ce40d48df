/* Durations as written in the config: "90s", "15m", "1h30m". */
#include <errno.h>
#include <string.h>

#include "config.h"

static const struct {
	const char *unit;
	uint64_t usec;
} duration_units[] = {
    {"d", 24ULL * 3600 * 1000000},
    {"h", 3600ULL * 1000000},
    {"m", 60ULL * 1000000},
    {"s", 1000000},
    {"ms", 1000},
};

/* The index of the unit at *p (advancing *p past it), or -EINVAL. */
static int duration_unit(const char **p)
{
	size_t n = strspn(*p, "abcdefghijklmnopqrstuvwxyz"), i;

	for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]);
	     i++) {
		if (strlen(duration_units[i].unit) == n &&
		    strncmp(*p, duration_units[i].unit, n) == 0) {
			*p += n;
			return (int)i;
		}
	}
	return -EINVAL;
}

/* Units must appear largest first and at most once ("1h30m", not "30m1h"
 * or "1m1m"), which catches most typos. */
int config_parse_duration(const char *text, uint64_t *usec)
{
	const char *p = text;
	uint64_t total = 0, n, part;
	int unit, last = -1;

	if (*p == '\0')
		return -EINVAL;
	while (*p != '\0') {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (n = 0; *p >= '0' && *p <= '9'; p++) {
			if (n > (UINT64_MAX - 9) / 10)
				return -EINVAL;
			n = n * 10 + (uint64_t)(*p - '0');
		}
		unit = duration_unit(&p);
		if (unit < 0 || unit <= last)
			return -EINVAL;
		last = unit;
		if (n > UINT64_MAX / duration_units[unit].usec)
			return -EINVAL;
		part = n * duration_units[unit].usec;
		if (part > UINT64_MAX - total)
			return -EINVAL;
		total += part;
	}
	*usec = total;
	return 0;
}
