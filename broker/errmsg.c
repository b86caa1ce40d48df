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
	if (n >= 0 && (size_t)n < sizeof(e->text))
		(void)snprintf(e->text + n, sizeof(e->text) - n, ": %s", old);
	return r;
}
