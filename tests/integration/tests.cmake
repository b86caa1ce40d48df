# One line per integration test.
cb_py_test(e2e_issue postgres integration/test_e2e_issue.py)
cb_py_test(e2e_rotation postgres integration/test_e2e_rotation.py)
cb_py_test(e2e_revoke ir integration/test_e2e_revoke.py)
cb_py_test(e2e_access fuse integration/test_e2e_access.py)
cb_py_test(e2e_outage postgres integration/test_e2e_outage.py)
cb_py_test(e2e_startup_errors core integration/test_e2e_startup_errors.py)
cb_py_test(e2e_shutdown postgres integration/test_e2e_shutdown.py)
