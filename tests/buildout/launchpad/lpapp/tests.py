import os
import unittest


class LpTest(unittest.TestCase):
    def test_config(self):
        import lpapp
        self.assertEqual(lpapp.VALUE, 42)

    def test_runner_environment(self):
        # [test] environment = testenv
        self.assertEqual(os.environ.get("LPCONFIG"), "testrunner")
        self.assertEqual(os.environ.get("LP_PERSISTENT_TEST_SERVICES"), "0")

    def test_runner_initialization(self):
        # [test] initialization, run before the runner imports this module
        import lpapp
        self.assertEqual(lpapp.CONFIG, "testrunner-initialized")

    def test_lazr_config(self):
        import lazr_config
        self.assertTrue(lazr_config.__version__.startswith("2.2."))
