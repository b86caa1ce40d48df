# One line per module suite.
cb_unit_test(test_secret core cb_core)
cb_unit_test(test_store core cb_core)
cb_unit_test(test_scheduler core cb_core)
cb_unit_test(test_render core cb_core)
cb_unit_test(test_control core cb_control)
# test_postgres runs under with_pg.py (a throwaway PostgreSQL).
add_executable(test_postgres unit/test_postgres.c)
target_link_libraries(test_postgres PRIVATE cb_backends PkgConfig::CHECK)
add_test(NAME test_postgres COMMAND ${Python3_EXECUTABLE}
	${CMAKE_CURRENT_SOURCE_DIR}/integration/with_pg.py --
	$<TARGET_FILE:test_postgres>)
set_tests_properties(test_postgres PROPERTIES LABELS postgres TIMEOUT 300
	ENVIRONMENT "CK_DEFAULT_TIMEOUT=60;PYTHONDONTWRITEBYTECODE=1")
cb_unit_test(test_config core cb_broker)
# The suite puts fake backend types in front of the real registry.
target_link_options(test_config PRIVATE -Wl,--wrap=backend_find)
target_compile_definitions(test_config PRIVATE
	CB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
cb_unit_test(test_fs fuse cb_fusefs)
target_compile_definitions(test_fs PRIVATE CB_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
	CB_PYTHON="${Python3_EXECUTABLE}")
# 77: /dev/fuse is absent (the test says so), not a failure.
set_tests_properties(test_fs PROPERTIES SKIP_RETURN_CODE 77)
cb_unit_test(test_broker core cb_broker)
target_link_options(test_broker PRIVATE -Wl,--wrap=backend_find)
cb_unit_test(test_vault_api vault cb_backends)
target_compile_definitions(test_vault_api PRIVATE
	CB_SAMPLES_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/vault_api")
# test_http runs under https_fixture.py (a real TLS server on loopback).
add_executable(test_http unit/test_http.c)
target_link_libraries(test_http PRIVATE cb_http PkgConfig::CHECK)
add_test(NAME test_http COMMAND ${Python3_EXECUTABLE}
	${CMAKE_CURRENT_SOURCE_DIR}/sim/https_fixture.py --
	$<TARGET_FILE:test_http>)
set_tests_properties(test_http PROPERTIES LABELS core TIMEOUT 120
	ENVIRONMENT "CK_DEFAULT_TIMEOUT=60;PYTHONDONTWRITEBYTECODE=1")
cb_unit_test(test_vault vault cb_backends)
cb_unit_test(test_vault_config vault cb_backends)
add_test(NAME check_samples COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/check_samples.sh)
set_tests_properties(check_samples PROPERTIES LABELS vault
	ENVIRONMENT "CB_SHARED_DIR=${CB_SHARED_DIR}")
cb_unit_test(test_audit ir cb_broker)
# test_hooks runs under https_fixture.py (a real TLS server on loopback).
add_executable(test_hooks unit/test_hooks.c)
target_link_libraries(test_hooks PRIVATE cb_hooks PkgConfig::CHECK)
add_test(NAME test_hooks COMMAND ${Python3_EXECUTABLE}
	${CMAKE_CURRENT_SOURCE_DIR}/sim/https_fixture.py --
	$<TARGET_FILE:test_hooks>)
set_tests_properties(test_hooks PROPERTIES LABELS ir TIMEOUT 120
	ENVIRONMENT "CK_DEFAULT_TIMEOUT=60;PYTHONDONTWRITEBYTECODE=1")
# Root and /dev/fuse (77: skipped, said so).
cb_unit_test(test_csi_node fuse cb_csi_node)
set_tests_properties(test_csi_node PROPERTIES SKIP_RETURN_CODE 77)
# Checked with a real client: @grpc/grpc-js from tests/node (npm ci when
# node_modules is missing).
cb_unit_test(test_grpc fuse cb_grpc)
set_tests_properties(test_grpc PROPERTIES ENVIRONMENT
	"CK_DEFAULT_TIMEOUT=60;CB_NODE_DIR=${CMAKE_SOURCE_DIR}/tests/node")
cb_unit_test(test_csi_msg fuse cb_csi)
cb_unit_test(test_webhook k8s cb_broker)
cb_unit_test(test_sigv4 aws cb_backends)
target_compile_definitions(test_sigv4 PRIVATE
	CB_SIGV4_DIR="${CMAKE_CURRENT_SOURCE_DIR}/data/sigv4")
# A test tool: the signer driven from JSON, for test_sigv4_botocore.py.
add_executable(sigv4_cli ${CMAKE_CURRENT_SOURCE_DIR}/tools/sigv4_cli.c)
target_link_libraries(sigv4_cli PRIVATE cb_backends)
cb_unit_test(test_aws_api aws cb_backends)
target_compile_definitions(test_aws_api PRIVATE
	CB_SAMPLES_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/aws_xml")
cb_unit_test(test_aws aws cb_backends)
cb_unit_test(test_aws_xml aws cb_backends)
target_compile_definitions(test_aws_xml PRIVATE
	CB_SAMPLES_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/aws_xml")
cb_unit_test(test_spawner ir cb_hooks)
cb_unit_test(test_seccomp hardening cb_broker)
