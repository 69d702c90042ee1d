"""What every stage shares: the context it reads and writes, and the stage protocol."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..changes import Plan
from ..errors import Problem
from ..index import ArtifactIndex
from ..interpreter import Interpreter
from ..preflight import PreflightReport
from ..runner import Runner
from ..spec import Spec
from ..target import Target

__all__ = ["Context", "Stage"]


@dataclass(kw_only=True)
class Context:
    """One build's shared state. Stages fill in what later stages need."""

    spec: Spec
    runner: Runner
    index: ArtifactIndex
    #: The directory being built (a new versioned directory, or an existing one for `check`).
    env_dir: Path
    interpreter: Interpreter | None = None
    preflight: PreflightReport | None = None
    #: What this build does; for an update, ``plan.current`` is cloned and only the diff applied.
    plan: Plan | None = None
    #: The Python running pinfold (its pip installs into the environment).
    tool_python: str = sys.executable
    #: Findings that do not fail the build, shown to the user.
    warnings: list[str] = field(default_factory=list)
    #: Stage outputs for the result and for later stages (e.g. plugin caches written).
    facts: dict[str, Any] = field(default_factory=dict)
    #: For an environment without bytecode (``compile: false``): a temporary folder where
    #: the final stages keep the bytecode of what they import (see :class:`Target`).
    pycache: Path | None = None

    @property
    def base(self) -> Path | None:
        """The environment this build updates (a hard-link clone of it), or None for a full build."""
        return self.plan.current if self.plan is not None and self.plan.mode == "update" else None

    @property
    def env_python(self) -> Path:
        """The environment's interpreter."""
        return self.env_dir / "bin" / "python"

    @property
    def target(self) -> Target:
        """The environment's interpreter as the final stages run it."""
        return Target(self.env_python, self.pycache)


class Stage(Protocol):
    """One step of the build."""

    #: Short name shown in progress lines and JSON.
    name: ClassVar[str]

    def problems(self, ctx: Context) -> list[Problem]:
        """What makes this stage impossible, found before anything is touched."""
        ...

    def skip_reason(self, ctx: Context) -> str | None:
        """Why the stage has nothing to do in this build, or None."""
        ...

    def run(self, ctx: Context) -> str:
        """Do the work; return a one-line detail for the progress line."""
        ...
