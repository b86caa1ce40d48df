/* Logging in the OpenBSD log.c shape, one key=value line per event on stderr
 * (what Kubernetes collects).  Helpers below the top level return errors and
 * let their caller log once. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

static const char *log_progname = "credbroker";
static enum log_level log_min_level = LOG_LEVEL_INFO;

void log_init(const char *progname, enum log_level level)
{
	log_progname = progname;
	log_min_level = level;
}

int log_level_parse(const char *name, enum log_level *ret)
{
	static const char *const names[] = {"debug", "info", "warn"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool log_enabled(enum log_level level)
{
	return level >= log_min_level;
}

/* One write per line so lines from several threads never interleave. */
static void log_vline(const char *level, const char *suffix, const char *fmt,
		      va_list ap) __attribute__((format(printf, 3, 0)));

static void log_vline(const char *level, const char *suffix, const char *fmt,
		      va_list ap)
{
	char line[2048], ts[40];
	struct timespec now;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &now);
	clock_format_rfc3339((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000,
			     ts, sizeof(ts));
	n = snprintf(line, sizeof(line), "ts=%s level=%s prog=%s ", ts, level,
		     log_progname);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m < 0)
		return;
	n = (size_t)(n + m) >= sizeof(line) ? (int)sizeof(line) - 1 : n + m;
	if (suffix != NULL) {
		m = snprintf(line + n, sizeof(line) - n, " err=\"%s\"", suffix);
		if (m > 0)
			n = (size_t)(n + m) >= sizeof(line)
				? (int)sizeof(line) - 1
				: n + m;
	}
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)fwrite(line, 1, n, stderr);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	va_start(ap, fmt);
	log_vline("debug", NULL, fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	va_start(ap, fmt);
	log_vline("info", NULL, fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	char buf[128];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vline("warn", strerror_r(saved, buf, sizeof(buf)), fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline("warn", NULL, fmt, ap);
	va_end(ap);
}

void fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline("fatal", NULL, fmt, ap);
	va_end(ap);
	exit(status);
}
