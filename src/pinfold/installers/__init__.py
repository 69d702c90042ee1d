"""The installer backends behind one small protocol: pip (the default) and uv.

env.yaml's ``installer:`` picks one. Both keep the same guarantees: the index comes
from the spec only, runtime hashes are required, the build lock is applied to every
build environment and fails closed, and the target interpreter is passed explicitly.
Neither byte-compiles: the compile stage does that once, in parallel, for both.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..locks import Pin
from ..runner import Runner
from ..spec import Spec

if TYPE_CHECKING:
    from ..index import Preflight

__all__ = ["Installer", "installer_for", "tool_problem"]


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


def tool_problem(dist: str, minimum: str, *, why: str = "") -> str | None:
    """Why pinfold's tool environment cannot provide ``dist`` >= ``minimum``, or None."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    fix = "run ./bootstrap.sh to recreate it from requirements/tool.txt"
    try:
        have = Version(version(dist))
    except PackageNotFoundError:
        return f"{why}pinfold's tool environment has no {dist} ({fix})"
    if have < Version(minimum):
        return f"pinfold's tool environment has {dist} {have}; it needs {dist} >= {minimum} ({fix})"
    return None


@contextlib.contextmanager
def pins_file(pins: list[Pin]) -> Iterator[Path]:
    """A temporary requirements file of ``pins`` with their hashes (an update's moved pins)."""
    with tempfile.TemporaryDirectory(prefix="pinfold-") as tmp:
        reqs = Path(tmp) / "update.txt"
        reqs.write_text("".join(p.requirement_line() + "\n" for p in pins), encoding="utf-8")
        yield reqs


def installer_for(spec: Spec, runner: Runner, *, preflight: Preflight | None = None) -> Installer:
    """The backend env.yaml asks for. ``preflight`` (the artifacts pre-flight chose) is what
    the uv backend offers uv as its only index; pip does not need it."""
    if spec.installer == "uv":
        from .uv import Uv

        return Uv(spec, runner, preflight=preflight)
    from .pip import Pip

    return Pip(spec, runner)
