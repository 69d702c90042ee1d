import os

os.environ.setdefault("LPSITE", "loaded")
