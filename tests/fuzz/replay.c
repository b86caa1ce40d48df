/* Replays a fuzz target's corpus as a plain test, so a build without clang
 * still re-runs every kept input (systemd's and wireguard-tools' practice).
 * Usage: NAME_replay DIR...; each regular file is one input.  An input
 * that crashes the target (abort, a signal, a sanitizer report) kills the
 * process and fails the test; its name is on stderr just before.  A file
 * that cannot be read fails it too: a kept crash must never be skipped. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(int dirfd, const char *name)
{
	struct stat st;
	uint8_t *buf;
	ssize_t n;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	buf = malloc((size_t)st.st_size + 1);
	n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n < 0 || n != st.st_size) {
		free(buf);
		return -1;
	}
	fprintf(stderr, "replay: %s\n", name);
	(void)LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 1;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	struct dirent *de;
	DIR *dir;
	int i, r;

	for (i = 1; i < argc; i++) {
		dir = opendir(argv[i]);
		if (dir == NULL) {
			perror(argv[i]);
			return 1;
		}
		while ((de = readdir(dir)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			r = replay_file(dirfd(dir), de->d_name);
			if (r < 0) {
				fprintf(stderr, "cannot read %s/%s\n", argv[i],
					de->d_name);
				closedir(dir);
				return 1;
			}
			count += (unsigned)r;
		}
		closedir(dir);
	}
	printf("replayed %u inputs\n", count);
	return count > 0 ? 0 : 1;
}
