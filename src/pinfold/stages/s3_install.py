"""Stage 3: install the runtime lock, hashes required, build dependencies from the build lock."""

from __future__ import annotations

from typing import ClassVar

from packaging.utils import canonicalize_name

from ..errors import Problem
from ..installers import installer_for, tool_problem
from ..installers.pip import MIN_PIP
from ..locks import split_pin
from .base import Context

__all__ = ["Install"]


class Install:
    """pip or uv, hermetic: index from the spec only, hashed runtime lock, hashed build constraints."""

    name: ClassVar[str] = "install"

    def problems(self, ctx: Context) -> list[Problem]:
        installer = installer_for(ctx.spec, ctx.runner)
        problems = [Problem(installer.name, reason) for reason in installer.problems()]
        # The probes run pinfold's pip (`pip check`) whatever the installer.
        if installer.name != "pip" and (reason := tool_problem("pip", MIN_PIP)):
            problems.append(Problem("pip", reason))
        return problems

    def skip_reason(self, ctx: Context) -> str | None:
        return None

    def run(self, ctx: Context) -> str:
        installer = installer_for(ctx.spec, ctx.runner, preflight=ctx.preflight)
        if ctx.base is not None and ctx.plan is not None:
            installer.uninstall(ctx.env_python, list(ctx.plan.remove))
            by_name = ctx.spec.requirements.by_name()
            moved = [by_name[canonicalize_name(split_pin(p)[0])] for p in ctx.plan.install]
            installer.install_pins(ctx.env_python, moved)
            parts = [f"+{p}" for p in ctx.plan.install] + [f"-{n}" for n in ctx.plan.remove]
            changed = " ".join(parts) if parts else "no distribution changed"
            return f"update with {installer.name}: {changed}"
        installer.install_lock(ctx.env_python)
        count = len(ctx.preflight.runtime) if ctx.preflight else len(ctx.spec.requirements.pins)
        return f"{count} distributions with {installer.name}"
