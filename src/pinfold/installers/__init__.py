"""The installer backends behind one small protocol: pip (the default) and uv.

env.yaml's ``installer:`` picks one. Both keep the same guarantees: the index comes
from the spec only, runtime hashes are required, the build lock is applied to every
build environment and fails closed, and the target interpreter is passed explicitly.
Neither byte-compiles: the compile stage does that once, in parallel, for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..runner import Runner
from ..spec import Spec
from .base import Installer, OnStep, PendingCheck, pins_file
from .pip import Pip
from .uv import Uv

if TYPE_CHECKING:
    from ..interpreter import Interpreter
    from ..manifest import HashMemo
    from ..preflight import PreflightReport

__all__ = ["Installer", "OnStep", "PendingCheck", "installer_for", "pins_file"]


def installer_for(spec: Spec, runner: Runner, *, preflight: PreflightReport | None = None,
                  on_step: OnStep | None = None, hashes: HashMemo | None = None,
                  interpreter: Interpreter | None = None) -> Installer:
    """The backend env.yaml asks for. ``preflight`` (the artifacts pre-flight chose) is what
    the uv backend offers uv as its only index; with ``interpreter`` the pip backend keys
    its wheel cache by both. ``on_step`` hears how far an install is. ``hashes``: the
    build's (uv's RECORD check shares them)."""
    if spec.installer == "uv":
        return Uv(spec, runner, preflight=preflight, on_step=on_step, hashes=hashes)
    return Pip(spec, runner, on_step=on_step, preflight=preflight, interpreter=interpreter)
