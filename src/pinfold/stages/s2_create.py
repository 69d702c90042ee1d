"""Stage 2: create the virtualenv, empty: no seed packages, so nothing is downloaded.

The environment then holds exactly the runtime lock (pip and setuptools only if the
lock pins them); pinfold's own pip installs into it from outside. An update starts
from a hard-link clone of the current environment instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

from ..envdir import Environments
from .base import Context, Stage

__all__ = ["CloneCurrent", "CreateFresh"]


class CreateFresh(Stage):
    """``virtualenv --no-seed`` for the target interpreter (a full build)."""

    name: ClassVar[str] = "create"

    def run(self, ctx: Context) -> str:
        assert ctx.interpreter is not None
        # virtualenv is a dependency of pinfold: it runs from pinfold's own interpreter.
        ctx.runner.run(
            [sys.executable, "-m", "virtualenv", "--quiet", "--no-seed", "--no-periodic-update",
             "--python", ctx.interpreter.executable, str(ctx.env_dir)],
            what="creating the virtualenv",
        )
        return f"{ctx.env_dir.name} for {ctx.interpreter.executable}"


class CloneCurrent(Stage):
    """A hard-link clone of the current environment (an update)."""

    name: ClassVar[str] = "create"

    def __init__(self, base: Path) -> None:
        #: The environment this update starts from.
        self.base = base

    def run(self, ctx: Context) -> str:
        count = Environments(ctx.spec.path).clone(self.base, ctx.env_dir, ctx.hashes)
        return f"{ctx.env_dir.name}: {count} files hard-linked from {self.base.name}"
