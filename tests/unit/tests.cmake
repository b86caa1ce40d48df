# One line per module suite.
