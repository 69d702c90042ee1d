"""Stage 3: install the runtime lock, hashes required, build dependencies from the build lock."""

from __future__ import annotations

from typing import ClassVar

from ..errors import Problem
from ..installer import Pip
from .base import Context

__all__ = ["Install"]


class Install:
    """pip, hermetic: index from the spec only, hashed runtime lock, hashed build constraints."""

    name: ClassVar[str] = "install"

    def problems(self, ctx: Context) -> list[Problem]:
        reason = Pip.version_problem()
        return [Problem("pip", reason)] if reason else []

    def skip_reason(self, ctx: Context) -> str | None:
        return None

    def run(self, ctx: Context) -> str:
        Pip(ctx.spec, ctx.runner, tool_python=ctx.tool_python).install_lock(ctx.env_python)
        count = len(ctx.preflight.runtime) if ctx.preflight else len(ctx.spec.requirements.pins)
        return f"{count} distributions"
