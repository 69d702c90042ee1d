"""``pinfold lock``: both locks, runtime and build dependencies, compiled from env.yaml's needs.

The steps are one module each: ``needs`` (read env.yaml's needs, record them in the
locks, tell a stale lock), ``resolve`` (pip-compile against one source), ``builddeps``
(ask each sdist's build backend what it needs), ``writer`` (deterministic files,
written atomically), ``diff`` (what changed), and ``run`` (the order of it all).

The names below are loaded on first use (PEP 562): a build imports ``locking.needs`` to
refuse a stale lock, and must not pay for ``lock``'s imports (``build``, ``tarfile``,
``zipfile``: a quarter of a build's start-up) that only ``pinfold lock`` uses. (The module
is ``run``, not ``lock``: a submodule of that name would bind itself over the function
whenever something imported it directly.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .diff import LockChanges, Move
    from .errors import LockError, StaleLockError
    from .run import CheckReport, LockOptions, LockReport, check_locks, lock

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

#: Where each name lives.
_HOME = {"LockChanges": "diff", "Move": "diff", "LockError": "errors", "StaleLockError": "errors",
         "CheckReport": "run", "LockOptions": "run", "LockReport": "run", "check_locks": "run",
         "lock": "run"}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
