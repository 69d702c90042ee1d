"""Stage 3: install the runtime lock, hashes required, build dependencies from the build lock."""

from __future__ import annotations

from typing import ClassVar

from packaging.utils import canonicalize_name

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
        pip = Pip(ctx.spec, ctx.runner, tool_python=ctx.tool_python)
        if ctx.base is not None and ctx.plan is not None:
            pip.uninstall(ctx.env_python, list(ctx.plan.remove))
            by_name = ctx.spec.requirements.by_name()
            moved = [by_name[canonicalize_name(p.split("==")[0])] for p in ctx.plan.install]
            pip.install_pins(ctx.env_python, moved)
            parts = [f"+{p}" for p in ctx.plan.install] + [f"-{n}" for n in ctx.plan.remove]
            return "update: " + (" ".join(parts) if parts else "no distribution changed")
        pip.install_lock(ctx.env_python)
        count = len(ctx.preflight.runtime) if ctx.preflight else len(ctx.spec.requirements.pins)
        return f"{count} distributions"
