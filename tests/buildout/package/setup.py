from setuptools import setup

setup(name="mypkg", version="1.0", package_dir={"": "src"}, packages=["mypkg"])
