import unittest


class LpTest(unittest.TestCase):
    def test_config(self):
        import lpapp
        self.assertEqual(lpapp.VALUE, 42)
