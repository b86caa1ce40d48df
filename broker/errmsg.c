#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errmsg.h"

int errmsg_set(struct errmsg *e, int r, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return r;
	va_start(ap, fmt);
	(void)vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return r;
}

int errmsg_prefix(struct errmsg *e, int r, const char *fmt, ...)
{
	char old[ERRMSG_MAX];
	va_list ap;
	int n;

	if (e == NULL)
		return r;
	memcpy(old, e->text, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	va_start(ap, fmt);
	n = vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n + 3 < sizeof(e->text)) {
		size_t room = sizeof(e->text) - (size_t)n - 3;
		size_t len = strnlen(old, room);

		memcpy(e->text + n, ": ", 2);
		memcpy(e->text + n + 2, old, len);
		e->text[n + 2 + len] = '\0';
	}
	return r;
}
