"""``pinfold lock``: both locks, runtime and build dependencies, compiled from env.yaml's needs.

The steps are one module each: ``needs`` (read env.yaml's needs, record them in the
locks, tell a stale lock), ``resolve`` (pip-compile against one source), ``builddeps``
(ask each sdist's build backend what it needs), ``writer`` (deterministic files,
written atomically), ``diff`` (what changed), and ``lock`` (the order of it all).
"""

from __future__ import annotations

from .diff import LockChanges, Move
from .errors import LockError, StaleLockError
from .lock import CheckReport, LockOptions, LockReport, check_locks, lock

__all__ = [
    "CheckReport",
    "LockChanges",
    "LockError",
    "LockOptions",
    "LockReport",
    "Move",
    "StaleLockError",
    "check_locks",
    "lock",
]
