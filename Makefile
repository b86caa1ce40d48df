# Wraps CMake.  `make` builds build/credbroker, `make demo` runs the main
# job against a throwaway PostgreSQL, `make test` runs every test (a normal
# build, an ASan+UBSan build, the valgrind subset MEMCHECK_QUICK, then every
# libFuzzer target for FUZZ_TEST_SECONDS).  `make soak` (not in CI) runs
# one broker under steady rotations and readers for SOAK_SECONDS and fails
# when its RSS, descriptors or threads grow (scripts/soak.py).  `make
# bench` (not in CI, not in `make test`) runs the benchmarks through
# bench/run.py and writes bench/results/ and bench/REPORT.md (BENCH_ARGS:
# e.g. --quick, --only read,rotation, --reps N).  `make memcheck` runs
# every integration suite with the broker under valgrind memcheck (the
# plain build; no error, no definite leak); `make test` runs the
# MEMCHECK_QUICK subset of it (see below).  Each installs missing Debian
# packages first through scripts/install-deps.
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 4
JOBS ?= $(shell nproc)
MAKEFLAGS += --no-print-directory
DEMO_SECONDS ?= 0
SOAK_SECONDS ?= 300
CTEST_ARGS ?=
BENCH_ARGS ?=
# Suites that run no C code of ours (simulators checked with real clients,
# manifest checkers): the sanitizer pass skips them.
NO_C_TESTS = ^(vaultsim_hvac|faultproxy_moto|psa_checker|manifest_validator)$$

.PHONY: all deps build test demo soak bench fuzz clean memcheck

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
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -E '$(NO_C_TESTS)' $(CTEST_ARGS)
	$(call memcheck_run,$(MEMCHECK_QUICK))
	@$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)

demo: build
	@DEMO_SECONDS=$(DEMO_SECONDS) python3 scripts/demo.py

soak: build
	@CB_BUILD_DIR=$(abspath $(BUILD_DIR)) SOAK_SECONDS=$(SOAK_SECONDS) \
		python3 scripts/soak.py

bench: build
	@CB_BUILD_DIR=$(abspath $(BUILD_DIR)) python3 bench/run.py $(BENCH_ARGS)

# Each libFuzzer target for FUZZ_SECONDS, on a scratch copy of its corpus
# (new inputs worth keeping are copied into tests/fuzz/corpus/ by hand); a
# crash stops with its input saved in $(FUZZ_DIR) (crash-*).
fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=Debug \
		-DCB_SANITIZE=ON -DCB_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target $$(sed -n \
		's/^cb_fuzz_target(\(fuzz_[a-z_0-9]*\).*/\1/p' tests/fuzz/tests.cmake)
	@for f in $(FUZZ_DIR)/tests/fuzz_*; do \
		case $$f in *_replay) continue;; esac; \
		name=$$(basename $$f | sed 's/^fuzz_//'); \
		rm -rf $(FUZZ_DIR)/corpus/$$name; \
		mkdir -p $(FUZZ_DIR)/corpus/$$name; \
		cp tests/fuzz/corpus/$$name/* $(FUZZ_DIR)/corpus/$$name/; \
		echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			-artifact_prefix=$(FUZZ_DIR)/ -print_final_stats=1 \
			$(FUZZ_DIR)/corpus/$$name 2>$(FUZZ_DIR)/$$name.log || \
			{ tail -40 $(FUZZ_DIR)/$$name.log; exit 1; }; \
		grep -h "stat::number_of_executed_units" \
			$(FUZZ_DIR)/$$name.log | sed "s/^/  /"; \
	done

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR)

# valgrind memcheck on the integration suites: tests/integration/cbtest.py
# puts CB_BROKER_WRAPPER before every daemon run of the broker (`run`,
# `webhook`; its forked helpers are followed), gives each process a log
# (build/memcheck-logs/SUITE/CLASS.TEST.NAME.PID.log), multiplies the
# suites' waits and ctest's limits by CB_TIMEOUT_SCALE (default 20), sets
# "seccomp": false in the broker's config (valgrind fails seccomp(2) with
# ENOSYS; the allowlist stays tested in the plain and ASan runs) and fails
# a class whose logs show an error or a definite leak.  A few real-time
# tests (credentials of 1-3 s) skip themselves under the wrapper.
# tests/valgrind.supp holds the third-party noise, each entry explained;
# 97 (--error-exitcode) is no exit status of the broker's.
# The full run (MEMCHECK_TESTS) takes about 10 minutes on 2 cores, which
# would take `make test` (about 20 minutes without it) far past its
# budget; `make test` runs MEMCHECK_QUICK instead (about 2 minutes), the
# core paths: issue and FUSE reads (e2e_issue), revoke and the
# freeze list (e2e_revoke), incident response with Vault over TLS, the
# audit log and hooks (e2e_ir).  `make memcheck` before a release, and
# after changing a parser, a backend or the FUSE server.
VALGRIND = valgrind --tool=memcheck --leak-check=full \
	--errors-for-leak-kinds=definite --error-exitcode=97 --track-fds=no \
	--num-callers=30 --suppressions=$(CURDIR)/tests/valgrind.supp
MEMCHECK_TESTS ?= ^(e2e_.*|webhook)$$
MEMCHECK_QUICK ?= ^(e2e_issue|e2e_revoke|e2e_ir)$$

# $(call memcheck_run,REGEX): the ctest suites matching REGEX under it.
memcheck_run = @command -v valgrind >/dev/null || \
		{ echo "memcheck: valgrind is not installed" >&2; exit 1; }; \
	echo "memcheck: ctest -R '$(1)' with the broker under valgrind"; \
	cd $(BUILD_DIR) && CB_BROKER_WRAPPER="$(VALGRIND)" \
		ctest --output-on-failure -R '$(1)' $(CTEST_ARGS)

memcheck: build
	$(call memcheck_run,$(MEMCHECK_TESTS))
