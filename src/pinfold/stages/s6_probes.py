"""Stage 6: sanity probes (filled in by the final-stages work)."""

from __future__ import annotations

from typing import ClassVar

from ..errors import Problem
from .base import Context

__all__ = ["Probes"]


class Probes:
    """Placeholder during development: always skipped."""

    name: ClassVar[str] = "probes"

    def problems(self, ctx: Context) -> list[Problem]:
        return []

    def skip_reason(self, ctx: Context) -> str | None:
        return "not implemented yet"

    def run(self, ctx: Context) -> str:
        return ""
