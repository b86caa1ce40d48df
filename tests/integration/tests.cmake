# One line per integration test.
