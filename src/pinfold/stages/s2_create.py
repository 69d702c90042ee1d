"""Stage 2: create the virtualenv, empty: no seed packages, so nothing is downloaded.

The environment then holds exactly the runtime lock (pip and setuptools only if the
lock pins them); pinfold's own pip installs into it from outside. An update starts
from a hard-link clone of the current environment instead.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import Problem
from .base import Context

__all__ = ["Create"]


class Create:
    """``virtualenv --no-seed`` for the target interpreter."""

    name: ClassVar[str] = "create"

    def problems(self, ctx: Context) -> list[Problem]:
        return []

    def skip_reason(self, ctx: Context) -> str | None:
        return None

    def run(self, ctx: Context) -> str:
        assert ctx.interpreter is not None
        if ctx.base is not None:
            from ..envdir import Environments

            count = Environments(ctx.spec.path).clone(ctx.base, ctx.env_dir)
            return f"{ctx.env_dir.name}: {count} files hard-linked from {ctx.base.name}"
        ctx.runner.run(
            [ctx.tool_python, "-m", "virtualenv", "--quiet", "--no-seed", "--no-periodic-update",
             "--python", ctx.interpreter.executable, str(ctx.env_dir)],
            what="creating the virtualenv",
        )
        return f"{ctx.env_dir.name} for {ctx.interpreter.executable}"
