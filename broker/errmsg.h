/* A short human-readable error that travels beside a -errno return.  It names
 * what was wrong (a JSON path, a file, an upstream status) and never carries
 * secret bytes. */
#ifndef CREDBROKER_ERRMSG_H
#define CREDBROKER_ERRMSG_H

#define ERRMSG_MAX 384

struct errmsg {
	char text[ERRMSG_MAX];
};

/* Formats into e (when e is not NULL); returns r so callers can write
 * "return errmsg_set(err, -EINVAL, ...)". */
int errmsg_set(struct errmsg *e, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the existing text with "prefix: ". */
int errmsg_prefix(struct errmsg *e, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
