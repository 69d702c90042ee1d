"""Stage 1: know the interpreter, and prove the index can serve both locks."""

from __future__ import annotations

from typing import ClassVar

from ..interpreter import inspect_interpreter
from ..preflight import preflight
from .base import Context, Stage

__all__ = ["Preflight"]


class Preflight(Stage):
    """Every pin has a fitting artifact whose hash is in the lock; nothing is created."""

    name: ClassVar[str] = "preflight"

    def run(self, ctx: Context) -> str:
        if ctx.interpreter is None:
            ctx.interpreter = inspect_interpreter(ctx.spec.python, ctx.runner)
        ctx.preflight = found = preflight(ctx.spec, ctx.interpreter, ctx.index)
        sdists = f", {len(found.from_source)} from source" if found.from_source else ""
        return (f"{len(found.runtime)} runtime + {len(found.build)} build pins in "
                f"{ctx.index.describe()}{sdists}; Python {ctx.interpreter.version}")
