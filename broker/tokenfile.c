/* Reading the service-account token file. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenfile.h"

static const char jwt_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

/* A JWT is three base64url parts: anything else is not a token, and must
 * not reach a request body unescaped. */
static int token_trim_check(struct secret *jwt)
{
	size_t len, i;
	char *p = secret_expose(jwt, &len);

	while (len > 0 && strchr(" \t\r\n", p[len - 1]) != NULL)
		len--;
	for (i = 0; i < len; i++)
		if (p[i] == '\0' || strchr(jwt_alphabet, p[i]) == NULL)
			return -EINVAL;
	return len == 0 ? -EINVAL : secret_set_len(jwt, len);
}

int token_file_read(const char *path, const char *what, struct secret **ret,
		    struct errmsg *err)
{
	struct secret *jwt = NULL;
	struct stat st;
	ssize_t n;
	int fd, r;

	/* O_NONBLOCK: a FIFO in its place must not stall the caller in
	 * open(2); a regular file reads the same either way. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errmsg_set(err, -errno, "%s: cannot open %s: %s", what,
				  path, strerror(errno));
	r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0 && (!S_ISREG(st.st_mode) || st.st_size > TOKEN_FILE_MAX))
		r = -EINVAL;
	if (r == 0)
		r = secret_new((size_t)st.st_size, &jwt);
	if (r == 0) {
		n = read(fd, secret_expose(jwt, NULL), (size_t)st.st_size);
		r = n < 0 ? -errno : secret_set_len(jwt, (size_t)n);
	}
	close(fd);
	if (r < 0) {
		secret_free(jwt);
		return errmsg_set(err, r, "%s: %s: not a readable token", what,
				  path);
	}
	if (token_trim_check(jwt) < 0) {
		secret_free(jwt);
		return errmsg_set(err, -EINVAL, "%s: %s does not hold a JWT",
				  what, path);
	}
	*ret = jwt;
	return 0;
}
