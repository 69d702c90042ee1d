import unittest


class MypkgTest(unittest.TestCase):
    def test_import(self):
        import mypkg
        self.assertTrue(mypkg.MODE)
