"""What every installer backend shares: the protocol and the pins file.

pip.py and uv.py import from here (and the index flags from :mod:`pinfold.index`), and
the package's ``__init__`` imports them: one direction, no cycle.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar, Protocol

from ..locks import Pin

__all__ = ["Installer", "OnStep", "pins_file"]

#: What a backend reports while it installs, read from the installer's own output lines:
#: how many distributions are done so far, and what it does now ("building foo (sdist)").
OnStep = Callable[[int, str], None]


class Installer(Protocol):
    """What the install and develop stages need from an installer backend."""

    #: ``pip`` or ``uv``, as in env.yaml.
    name: ClassVar[str]

    def problems(self) -> list[str]:
        """Why this backend cannot be used (e.g. a too-old tool), found before anything is built."""
        ...

    def install_lock(self, python: Path) -> None:
        """Install the runtime lock into the environment of ``python``, hashes required."""
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
def pins_file(pins: list[Pin]) -> Iterator[Path]:
    """A temporary requirements file of ``pins`` with their hashes (an update's moved pins)."""
    with tempfile.TemporaryDirectory(prefix="pinfold-") as tmp:
        reqs = Path(tmp) / "update.txt"
        reqs.write_text("".join(p.requirement_line() + "\n" for p in pins), encoding="utf-8")
        yield reqs
