"""Stage 3: install the runtime lock, hashes required, build dependencies from the build lock."""

from __future__ import annotations

from typing import ClassVar

from packaging.utils import canonicalize_name

from ..errors import Problem
from ..installers import OnStep, installer_for
from ..locks import split_pin
from ..results import Plan
from ..tools import MIN_PIP, tool_problem
from .base import Context, Stage

__all__ = ["ApplyPlan", "InstallLock"]


class _Installing(Stage):
    """pip or uv, hermetic: index from the spec only, hashed runtime lock, hashed build constraints."""

    name: ClassVar[str] = "install"

    def problems(self, ctx: Context) -> list[Problem]:
        installer = installer_for(ctx.spec, ctx.runner)
        problems = [Problem(installer.name, reason) for reason in installer.problems()]
        # The probes run pinfold's pip (`pip check`) whatever the installer.
        if installer.name != "pip" and (reason := tool_problem("pip", MIN_PIP)):
            problems.append(Problem("pip", reason))
        return problems


    def steps(self, ctx: Context, total: int) -> OnStep:
        """Turn the backend's steps into progress of ``total`` distributions."""
        def step(done: int, item: str) -> None:
            self.progress(ctx, min(done, total), total, unit="distributions", item=item)
        return step


class InstallLock(_Installing):
    """A full build: the whole runtime lock into the new, empty environment."""

    def run(self, ctx: Context) -> str:
        count = len(ctx.preflight.runtime) if ctx.preflight else len(ctx.spec.requirements.pins)
        installer = installer_for(ctx.spec, ctx.runner, preflight=ctx.preflight,
                                  on_step=self.steps(ctx, count), hashes=ctx.hashes,
                                  interpreter=ctx.interpreter)
        self.progress(ctx, 0, count, unit="distributions", item=f"starting {installer.name}")
        pending = installer.install_lock(ctx.env_python)
        done = f"{count} distributions with {installer.name}"
        if pending is None:
            return done
        if not ctx.spec.compile:  # no compile stage to overlap (it only writes a plan): here
            return f"{done}; {pending()}"
        # The rest of uv's RECORD check (the shipped bytecode was checked already) reads the
        # installed files in this process while the compile stage's interpreter byte-compiles
        # them: the build waits for the longer of the two, not for both in turn.
        ctx.start_check(pending)
        return f"{done}; their RECORD check goes on in the background, beside the compile stage"


class ApplyPlan(_Installing):
    """An update: into the clone, uninstall what the plan removes, install what it moves."""

    def __init__(self, plan: Plan) -> None:
        #: The update's pin diff.
        self.plan = plan

    def run(self, ctx: Context) -> str:
        installer = installer_for(ctx.spec, ctx.runner, preflight=ctx.preflight,
                                  on_step=self.steps(ctx, len(self.plan.install)),
                                  hashes=ctx.hashes)
        installer.uninstall(ctx.env_python, list(self.plan.remove))
        # The pins that apply to this interpreter (a lock for several targets may pin a name
        # once per target): pre-flight chose them.
        applying = ctx.preflight.runtime if ctx.preflight is not None else ctx.spec.requirements.pins
        by_name = {p.name: p for p in applying}
        moved = [by_name[canonicalize_name(split_pin(p)[0])] for p in self.plan.install]
        installer.install_pins(ctx.env_python, moved)
        parts = [f"+{p}" for p in self.plan.install] + [f"-{n}" for n in self.plan.remove]
        changed = " ".join(parts) if parts else "no distribution changed"
        return f"update with {installer.name}: {changed}"
