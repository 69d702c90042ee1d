"""Stage 2: create the virtualenv, empty: no seed packages, so nothing is downloaded.

The environment then holds exactly the runtime lock (pip and setuptools only if the
lock pins them); pinfold's own pip installs into it from outside. An update starts
from a hard-link clone of the current environment instead.

virtualenv's output depends on the interpreter and the destination only: once a build has
proven that what it wrote relocates exactly (:mod:`pinfold.venvcache`), later builds write
it from that template (milliseconds instead of virtualenv's 0.2-0.3 s).
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path
from typing import ClassVar

from ..envdir import Environments
from ..manifest import BOOKKEEPING
from ..venvcache import keep_template, template_key, written_from_template
from .base import Context, Stage

__all__ = ["CloneCurrent", "CreateFresh"]


class CreateFresh(Stage):
    """``virtualenv --no-seed`` for the target interpreter (a full build)."""

    name: ClassVar[str] = "create"

    def run(self, ctx: Context) -> str:
        interp = ctx.interpreter
        assert interp is not None
        key = template_key(interp.executable, f"{interp.implementation} {interp.version} {interp.abi}",
                           version("virtualenv"))
        if written_from_template(key, ctx.env_dir):
            return f"{ctx.env_dir.name} for {interp.executable} (virtualenv's, from the template cache)"
        # virtualenv is a dependency of pinfold: it runs from pinfold's own interpreter.
        ctx.runner.run(
            [sys.executable, "-m", "virtualenv", "--quiet", "--no-seed", "--no-periodic-update",
             "--python", interp.executable, str(ctx.env_dir)],
            what="creating the virtualenv",
        )
        keep_template(key, ctx.env_dir, BOOKKEEPING)
        return f"{ctx.env_dir.name} for {interp.executable}"


class CloneCurrent(Stage):
    """A hard-link clone of the current environment (an update)."""

    name: ClassVar[str] = "create"

    def __init__(self, base: Path) -> None:
        #: The environment this update starts from.
        self.base = base

    def run(self, ctx: Context) -> str:
        count = Environments(ctx.spec.path).clone(self.base, ctx.env_dir, ctx.hashes)
        return f"{ctx.env_dir.name}: {count} files hard-linked from {self.base.name}"
