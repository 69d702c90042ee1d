"""What every installer backend shares: the protocol and the pins file.

Both backends install a PEP 751 lock (``pylock.toml``) from a requirements file of its
pins, written here: pip 26.3 (``pip install -r pylock.toml``) and uv 0.13.9 (``uv pip
install -r pylock.toml``) both read a pylock, but then fetch each artifact from the
``path`` or ``url`` the file names, whatever ``--no-index --find-links`` say (measured:
a ``url`` to another host is fetched even with ``--no-index``). The index must come
from env.yaml alone, and what is installed must be what pre-flight checked there, so
the pins (hashes and markers included) go to the installer as a hashed requirements
file with env.yaml's index flags, exactly like a requirements lock.

pip.py and uv.py import from here (and the index flags from :mod:`pinfold.index`), and
the package's ``__init__`` imports them: one direction, no cycle.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar, Protocol

from ..locks import Lock, Pin, is_pylock

__all__ = ["Installer", "OnStep", "PendingCheck", "pins_file", "requirements_file"]

#: What a backend reports while it installs, read from the installer's own output lines:
#: how many distributions are done so far, and what it does now ("building foo (sdist)").
OnStep = Callable[[int, str], None]

#: A check of what an install put in place that the backend leaves to its caller, so that
#: it can run while the next stage works (uv's RECORD check of a full install): called, it
#: returns a one-line account of what it checked, or raises :class:`~pinfold.errors.BuildError`
#: naming the files that differ. The environment is not to be trusted before it returned.
PendingCheck = Callable[[], str]


class Installer(Protocol):
    """What the install and develop stages need from an installer backend."""

    #: ``pip`` or ``uv``, as in env.yaml.
    name: ClassVar[str]

    def problems(self) -> list[str]:
        """Why this backend cannot be used (e.g. a too-old tool), found before anything is built."""
        ...

    def install_lock(self, python: Path) -> PendingCheck | None:
        """Install the runtime lock into the environment of ``python``, hashes required; what
        is still to check of it, or None."""
        ...

    def install_pins(self, python: Path, pins: list[Pin]) -> None:
        """Install just these pins (an update): ``--no-deps``, hashes required."""
        ...

    def uninstall(self, python: Path, names: list[str]) -> None:
        """Remove distributions (pins dropped from the lock, or re-hashed)."""
        ...

    def install_editable(self, python: Path, trees: list[Path]) -> None:
        """Install local trees editable; their dependencies must already be in the lock."""
        ...


@contextlib.contextmanager
def pins_file(pins: list[Pin], name: str = "update.txt") -> Iterator[Path]:
    """A temporary requirements file of ``pins`` with their hashes and markers (an update's
    moved pins, or a pylock's)."""
    with tempfile.TemporaryDirectory(prefix="pinfold-") as tmp:
        reqs = Path(tmp) / name
        reqs.write_text("".join(p.requirement_line() + "\n" for p in pins), encoding="utf-8")
        yield reqs


@contextlib.contextmanager
def requirements_file(lock: Lock) -> Iterator[Path]:
    """``lock`` as a pip requirements file: the file itself, or a pylock's pins written as one."""
    if not is_pylock(lock.path):
        yield lock.path
        return
    with pins_file(list(lock.pins), name=lock.path.with_suffix(".txt").name) as reqs:
        yield reqs
