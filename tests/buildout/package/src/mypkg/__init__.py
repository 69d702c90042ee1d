import os

MODE = os.environ.get("MYPKG_MODE", "plain")
