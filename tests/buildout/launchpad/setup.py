from setuptools import setup

setup(name="lpapp", version="1.0", packages=["lpapp"], install_requires=["twisted", "lazr.config"])
