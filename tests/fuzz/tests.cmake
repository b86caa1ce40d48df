# cb_fuzz_target(NAME LABEL LIBS...): tests/fuzz/NAME.c.  Every build
# replays the corpus in tests/fuzz/corpus/<NAME without fuzz_> as a plain
# test; with -DCB_FUZZ=ON (clang) it also builds the libFuzzer binary that
# `make fuzz` runs.
function(cb_fuzz_target name label)
	string(REGEX REPLACE "^fuzz_" "" corpus ${name})
	add_executable(${name}_replay fuzz/${name}.c fuzz/replay.c)
	target_link_libraries(${name}_replay PRIVATE ${ARGN})
	add_test(NAME ${name}_replay COMMAND ${name}_replay
		${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${corpus})
	set_tests_properties(${name}_replay PROPERTIES LABELS "${label};hardening")
	if(CB_FUZZ)
		add_executable(${name} fuzz/${name}.c)
		target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
		target_link_options(${name} PRIVATE -fsanitize=fuzzer)
		target_link_libraries(${name} PRIVATE ${ARGN})
	endif()
endfunction()

# The replay fails on a crashing input: a target that aborts on the kept
# crash in fuzz/selftest/ must make its replay exit non-zero, naming it.
add_executable(replay_selftest fuzz/replay_selftest.c fuzz/replay.c)
add_test(NAME replay_selftest COMMAND sh -c
	"out=$(\"$0\" \"$1\" 2>&1) && exit 1; echo \"$out\" | tail -1 | grep -q 'replay: crash-replay_selftest-abort'"
	$<TARGET_FILE:replay_selftest> ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/selftest)
set_tests_properties(replay_selftest PROPERTIES LABELS hardening)

cb_fuzz_target(fuzz_render core cb_core)
cb_fuzz_target(fuzz_config core cb_broker)
cb_fuzz_target(fuzz_vault_api vault cb_backends)
cb_fuzz_target(fuzz_audit ir cb_broker)
cb_fuzz_target(fuzz_csi_msg fuse cb_csi)
cb_fuzz_target(fuzz_webhook k8s cb_broker)
cb_fuzz_target(fuzz_aws_xml aws cb_backends)
cb_fuzz_target(fuzz_aws_api aws cb_backends)
cb_fuzz_target(fuzz_sigv4 aws cb_backends)
cb_fuzz_target(fuzz_spawner ir cb_hooks)
cb_fuzz_target(fuzz_freeze ir cb_broker)
# The broker behind the socket gets a fake backend, as in test_broker.
cb_fuzz_target(fuzz_control ir cb_broker)
target_link_options(fuzz_control_replay PRIVATE -Wl,--wrap=backend_find)
if(CB_FUZZ)
	target_link_options(fuzz_control PRIVATE -Wl,--wrap=backend_find)
endif()
