/* Durations as written in the config: "90s", "15m", "1h30m". */
#include <errno.h>
#include <stdio.h>
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

/* The largest unit that divides usec, for messages: "100ms", "10m". */
static void duration_show(uint64_t usec, char *buf, size_t size)
{
	size_t i;

	for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
		if (usec % duration_units[i].usec == 0 && usec != 0)
			break;
	if (i == sizeof(duration_units) / sizeof(duration_units[0]))
		i--;
	(void)snprintf(buf, size, "%llu%s",
		       (unsigned long long)(usec / duration_units[i].usec),
		       duration_units[i].unit);
}

int config_duration_field(const json_t *obj, const char *path, const char *key,
			  uint64_t min, uint64_t max, uint64_t *ret,
			  struct errmsg *err)
{
	const json_t *v = json_object_get(obj, key);
	char lo[24], hi[24];
	uint64_t usec;

	if (v == NULL)
		return 0;
	if (!json_is_string(v) ||
	    config_parse_duration(json_string_value(v), &usec) < 0)
		return errmsg_set(err, -EINVAL,
				  "%s.%s: expected a duration like \"5s\"",
				  path, key);
	if (usec < min || usec > max) {
		duration_show(min, lo, sizeof(lo));
		duration_show(max, hi, sizeof(hi));
		return errmsg_set(err, -EINVAL, "%s.%s: must be from %s to %s",
				  path, key, lo, hi);
	}
	*ret = usec;
	return 0;
}
