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
