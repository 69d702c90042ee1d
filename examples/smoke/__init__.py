"""Smoke tests of the example environment, run by the development overlay's bin/test."""
