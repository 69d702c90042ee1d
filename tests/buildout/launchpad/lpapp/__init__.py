VALUE = 42
# Set by the test runner's initialization (buildout.cfg [test]); None elsewhere.
CONFIG = None
