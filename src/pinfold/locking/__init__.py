"""``pinfold lock``: both locks, runtime and build dependencies, compiled from env.yaml's needs.

The steps are one module each: ``needs`` (read env.yaml's needs, record them in the
locks, tell a stale lock), ``resolve`` (pip-compile against one source), ``builddeps``
(ask each sdist's build backend what it needs), ``writer`` (deterministic files,
written atomically), ``diff`` (what changed), and ``lock`` (the order of it all).

The names below are loaded on first use (PEP 562): a build imports ``locking.needs`` to
refuse a stale lock, and must not pay for ``lock``'s imports (``build``, ``tarfile``,
``zipfile``: a quarter of a build's start-up) that only ``pinfold lock`` uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

#: Where each name lives.
_HOME = {"LockChanges": "diff", "Move": "diff", "LockError": "errors", "StaleLockError": "errors",
         "CheckReport": "lock", "LockOptions": "lock", "LockReport": "lock", "check_locks": "lock",
         "lock": "lock"}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{home}")
    # Every name of that module at once: importing the submodule ``lock`` has just bound
    # the module itself to this package's ``lock``, which the function must replace.
    for other, where in _HOME.items():
        if where == home:
            globals()[other] = getattr(module, other)
    return globals()[name]
