# One line per integration test.
cb_py_test(e2e_issue postgres integration/test_e2e_issue.py)
cb_py_test(e2e_rotation postgres integration/test_e2e_rotation.py)
cb_py_test(e2e_revoke ir integration/test_e2e_revoke.py)
cb_py_test(e2e_access fuse integration/test_e2e_access.py)
cb_py_test(e2e_outage postgres integration/test_e2e_outage.py)
cb_py_test(e2e_startup_errors core integration/test_e2e_startup_errors.py)
cb_py_test(e2e_shutdown postgres integration/test_e2e_shutdown.py)
cb_py_test(e2e_vault vault integration/test_e2e_vault.py)
# The Vault simulator checked with a client no one here wrote: Debian's
# python3-hvac, which only /usr/bin/python3 has.
add_test(NAME vaultsim_hvac COMMAND /usr/bin/python3
	${CMAKE_CURRENT_SOURCE_DIR}/sim/test_vaultsim_hvac.py)
set_tests_properties(vaultsim_hvac PROPERTIES LABELS vault TIMEOUT 300
	ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
cb_py_test(e2e_ir ir integration/test_e2e_ir.py)
cb_py_test(e2e_csi fuse integration/test_e2e_csi.py)
cb_py_test(inject_golden k8s integration/test_inject_golden.py)
cb_py_test(k8s_manifests k8s integration/test_k8s_manifests.py)
# The Pod Security checker and the manifest validator have suites of their
# own.
add_test(NAME psa_checker COMMAND ${Python3_EXECUTABLE}
	${CMAKE_SOURCE_DIR}/tests/tools/test_psa_restricted.py)
set_tests_properties(psa_checker PROPERTIES LABELS k8s)
add_test(NAME manifest_validator COMMAND sh -c
	"cd '${CMAKE_SOURCE_DIR}/tests/node' && { [ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null; } && node --test test_validate_manifests.mjs")
set_tests_properties(manifest_validator PROPERTIES LABELS k8s TIMEOUT 300)
cb_py_test(webhook k8s integration/test_webhook.py)
set_tests_properties(webhook PROPERTIES SKIP_RETURN_CODE 77)
cb_py_test(sigv4_botocore aws integration/test_sigv4_botocore.py)
cb_py_test(e2e_aws aws integration/test_e2e_aws.py)
cb_py_test(faultproxy_moto aws sim/test_faultproxy_moto.py)
cb_py_test(e2e_vault_faults vault integration/test_e2e_vault_faults.py)
cb_py_test(e2e_hardening hardening integration/test_e2e_hardening.py)
cb_py_test(e2e_load hardening integration/test_e2e_load.py)
cb_py_test(e2e_faults hardening integration/test_e2e_faults.py)
