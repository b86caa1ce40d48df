/* libFuzzer target for the freeze list loader (broker/freeze.c): any
 * state_file content must load as an object or be refused with a message,
 * never crash or read past the data; what loads must save and load back
 * unchanged, so that a broker never writes a freeze list it cannot read at
 * its next start (the freeze would be lost, or the broker not start).
 *
 * tests/fuzz/replay.c replays corpus/freeze/ as a plain test. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "freeze.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char saved[128];

static void cleanup(void)
{
	char tmp[160];

	(void)snprintf(tmp, sizeof(tmp), "%s.tmp", saved);
	(void)unlink(tmp);
	(void)unlink(saved);
	(void)rmdir(dir);
}

static void setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	(void)snprintf(dir, sizeof(dir), "%s/cb-fuzz-freeze-XXXXXX",
		       access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL)
		abort();
	(void)snprintf(saved, sizeof(saved), "%s/state.json", dir);
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errmsg err = {{0}};
	json_t *frozen = NULL, *again = NULL;
	char path[64];
	int fd, r;

	setup();
	fd = memfd_create("state", MFD_CLOEXEC);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = freeze_load(path, &frozen, &err);
	close(fd);
	if (r < 0) {
		if (frozen != NULL || err.text[0] == '\0')
			abort(); /* *frozen set on failure, or no message */
		return 0;
	}
	if (!json_is_object(frozen))
		abort();
	/* What loaded saves (or is refused as too large, writing nothing),
	 * and loads back the same. */
	r = freeze_save(saved, frozen, &err);
	if (r == -EMSGSIZE && access(saved, F_OK) < 0) {
		json_decref(frozen);
		return 0;
	}
	if (r < 0 || freeze_load(saved, &again, &err) < 0 ||
	    !json_equal(frozen, again))
		abort();
	json_decref(again);
	json_decref(frozen);
	(void)unlink(saved);
	return 0;
}
