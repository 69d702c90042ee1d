"""What every stage shares: the context it reads and writes, and the stage protocol."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..errors import Problem
from ..index import LocalIndex, Preflight
from ..interpreter import Interpreter
from ..runner import Runner
from ..spec import Spec

__all__ = ["Context", "Stage"]


@dataclass(kw_only=True)
class Context:
    """One build's shared state. Stages fill in what later stages need."""

    spec: Spec
    runner: Runner
    index: LocalIndex
    #: The directory being built (a new versioned directory, or an existing one for `check`).
    env_dir: Path
    interpreter: Interpreter | None = None
    preflight: Preflight | None = None
    #: The Python running pinfold (its pip installs into the environment).
    tool_python: str = sys.executable
    #: Findings that do not fail the build, shown to the user.
    warnings: list[str] = field(default_factory=list)
    #: Stage outputs for the result and for later stages (e.g. plugin caches written).
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def env_python(self) -> Path:
        """The environment's interpreter."""
        return self.env_dir / "bin" / "python"


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
