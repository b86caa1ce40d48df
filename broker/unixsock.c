#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unixsock.h"

static int unixsock_clear(const char *path, const struct sockaddr_un *addr,
			  const char *what, struct errmsg *err)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT
			   ? 0
			   : errmsg_set(err, -errno, "%s: cannot stat %s: %s",
					what, path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return errmsg_set(err, -EEXIST,
				  "%s: %s exists and is not a socket", what,
				  path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errmsg_set(err, -errno, "%s: socket: %s", what,
				  strerror(errno));
	r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	close(fd);
	if (r == 0)
		return errmsg_set(err, -EADDRINUSE,
				  "%s: another server is listening on %s", what,
				  path);
	if (unlink(path) < 0)
		return errmsg_set(err, -errno, "%s: cannot remove stale %s: %s",
				  what, path, strerror(errno));
	return 0;
}

int unixsock_listen(const char *path, int backlog, const char *what,
		    struct errmsg *err)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	mode_t old;
	int fd, r;

	if (strlen(path) >= sizeof(addr.sun_path))
		return errmsg_set(err, -ENAMETOOLONG, "%s: path too long: %s",
				  what, path);
	memcpy(addr.sun_path, path, strlen(path) + 1);
	r = unixsock_clear(path, &addr, what, err);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errmsg_set(err, -errno, "%s: socket: %s", what,
				  strerror(errno));
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (r == 0 && (chmod(path, 0600) < 0 || listen(fd, backlog) < 0)) {
		r = -1;
		(void)unlink(path);
	}
	if (r < 0) {
		r = errmsg_set(err, -errno, "%s: cannot listen on %s: %s", what,
			       path, strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}
