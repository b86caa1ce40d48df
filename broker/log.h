/* One line per event on stderr, "ts=... level=... " followed by the caller's
 * key=value pairs.  Never pass a secret value to these functions. */
#ifndef CREDBROKER_LOG_H
#define CREDBROKER_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN };

void log_init(const char *progname, enum log_level level);
/* Parses "debug", "info" or "warn"; returns 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *ret);
bool log_enabled(enum log_level level);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn appends err="strerror(errno)"; log_warnx does not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log at warn level and exit with the given status. */
void fatalx(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#endif
