"""The errors of ``pinfold lock``: each one's text is what the user reads."""

from __future__ import annotations

from ..errors import PinfoldError

__all__ = ["BuildDepsUnavailable", "LockError", "StaleLockError"]


class LockError(PinfoldError):
    """The locks could not be compiled (a need the index cannot satisfy, a conflict, a
    build backend that fails); nothing was written."""


class BuildDepsUnavailable(LockError):
    """An sdist's build requirements cannot be installed together from the index: the one
    failure that trying again without the build lock's old pins can fix."""


class StaleLockError(PinfoldError):
    """``pinfold lock --check``: the locks no longer match env.yaml's needs (exit code 1)."""
