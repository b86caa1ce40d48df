/* A target that aborts on any input starting with "a kept crash": with
 * tests/fuzz/selftest/ as its corpus, the replay test must fail (the test
 * has WILL_FAIL), which shows that a kept crash input fails the build. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char crash[] = "a kept crash";

	if (size >= sizeof(crash) - 1 &&
	    memcmp(data, crash, sizeof(crash) - 1) == 0)
		abort();
	return 0;
}
