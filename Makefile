# Wraps CMake.  `make` builds build/credbroker, `make demo` runs the main
# job against a throwaway PostgreSQL, `make test` runs every test (a normal
# build and an ASan+UBSan build).  Each installs missing Debian packages
# first through scripts/install-deps.
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
JOBS ?= $(shell nproc)
DEMO_SECONDS ?= 0
CTEST_ARGS ?=

.PHONY: all deps build test test-asan demo clean

all: build

deps:
	@sh scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DCB_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(BUILD_DIR) && ctest --output-on-failure $(CTEST_ARGS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure $(CTEST_ARGS)

demo: build
	@DEMO_SECONDS=$(DEMO_SECONDS) python3 scripts/demo.py

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
