/* libFuzzer target for the audit log verifier (broker/audit.c): any file
 * content must verify or be reported broken with a message naming the
 * line, never crash or read past the data.  The input is also replayed as
 * a second file after a valid one, so the cross-file link is fuzzed too.
 *
 * tests/fuzz/replay.c replays corpus/audit/ as a plain test. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char valid[] =
    "{\"seq\":1,\"time\":\"2026-12-04T16:00:00.000000Z\",\"event\":\"x\","
    "\"prev\":"
    "\"0000000000000000000000000000000000000000000000000000000000000000"
    "\"}\n";

static int memfile(const void *data, size_t size, char *path, size_t len)
{
	int fd = memfd_create("audit", MFD_CLOEXEC);

	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	(void)snprintf(path, len, "/proc/self/fd/%d", fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char p1[64], p2[64];
	const char *paths[2] = {p1, p2};
	struct audit_verify_result res;
	struct errmsg err = {{0}};
	int fd1, fd2, r;

	fd1 = memfile(valid, sizeof(valid) - 1, p1, sizeof(p1));
	fd2 = memfile(data, size, p2, sizeof(p2));
	r = audit_verify(paths + 1, 1, "", &res, &err);
	if (r < 0 && (res.broken_line == 0 && r == -EBADMSG))
		abort(); /* broken without saying where */
	r = audit_verify(paths, 2, "", &res, &err);
	if (memchr(err.text, '\0', sizeof(err.text)) == NULL)
		abort();
	(void)r;
	close(fd1);
	close(fd2);
	return 0;
}
