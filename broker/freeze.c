#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "freeze.h"

int freeze_load(const char *path, json_t **frozen, struct errmsg *err)
{
	json_error_t jerr;
	json_t *root, *list;
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno != ENOENT)
			return errmsg_set(err, -errno, "state_file: %s: %s",
					  path, strerror(errno));
		*frozen = json_object();
		return *frozen == NULL ? -ENOMEM : 0;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > FREEZE_MAX_BYTES)
		return errmsg_set(err, -EINVAL,
				  "state_file: %s is not a "
				  "credbroker state file",
				  path);
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	list = json_object_get(root, "frozen");
	if (!json_is_object(list)) {
		json_decref(root);
		return errmsg_set(err, -EINVAL,
				  "state_file: %s is not a "
				  "credbroker state file",
				  path);
	}
	*frozen = json_incref(list);
	json_decref(root);
	return 0;
}

static int freeze_write(int fd, const char *text)
{
	size_t len = strlen(text);
	ssize_t n;

	while (len > 0) {
		n = write(fd, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		text += n;
		len -= (size_t)n;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

int freeze_save(const char *path, const json_t *frozen, struct errmsg *err)
{
	char tmp[4200], *text = NULL;
	json_t *root;
	size_t n;
	int fd = -1, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return errmsg_set(err, -ENAMETOOLONG,
				  "state_file: path too "
				  "long");
	root = json_pack("{s:O}", "frozen", frozen);
	/* Into our own buffer, not jansson's allocator's. */
	n = root ? json_dumpb(root, NULL, 0, JSON_INDENT(1) | JSON_SORT_KEYS)
		 : 0;
	/* A file the next start would refuse to load must not replace one it
	 * can (only a list loaded from a tampered file gets this large). */
	if (n > FREEZE_MAX_BYTES) {
		json_decref(root);
		return errmsg_set(err, -EMSGSIZE,
				  "state_file: %s: the freeze list would pass "
				  "%d bytes",
				  path, FREEZE_MAX_BYTES);
	}
	text = n > 0 ? malloc(n + 1) : NULL;
	if (text != NULL) {
		(void)json_dumpb(root, text, n,
				 JSON_INDENT(1) | JSON_SORT_KEYS);
		text[n] = '\0';
	}
	json_decref(root);
	if (text == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	r = fd < 0 ? -errno : freeze_write(fd, text);
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlink(tmp);
		(void)errmsg_set(err, r, "state_file: cannot write %s: %s",
				 path, strerror(-r));
	}
	free(text);
	return r;
}
