from setuptools import find_namespace_packages, setup

setup(name="my.app", version="1.0", package_dir={"": "src"}, packages=find_namespace_packages("src"))
