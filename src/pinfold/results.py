"""What builds and checks report: progress events, stage reports, the result.

Apart from :mod:`pinfold.pipeline` so that the no-op fast path (:mod:`pinfold.uptodate`)
can return a :class:`BuildResult` without importing the pipeline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["BuildResult", "StageEvent", "StageReport"]


@dataclass(frozen=True, slots=True)
class StageEvent:
    """Progress: a stage started, finished or was skipped."""

    stage: str
    kind: Literal["start", "done", "skip"]
    seconds: float = 0.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StageReport:
    """How one stage went."""

    name: str
    status: Literal["ok", "skipped"]
    seconds: float
    detail: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildResult:
    """What ``build`` or ``check`` did."""

    spec_file: Path
    #: ``path`` from env.yaml (a symlink) and the directory it points to.
    path: Path
    env_dir: Path
    #: True when nothing had changed and nothing was rebuilt.
    up_to_date: bool
    stages: tuple[StageReport, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings)."""
        data = asdict(self)
        for key in ("spec_file", "path", "env_dir"):
            data[key] = str(data[key])
        return data
