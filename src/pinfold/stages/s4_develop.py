"""Stage 4: install the ``develop`` trees editable, under the same hermetic rules."""

from __future__ import annotations

from typing import ClassVar

from ..errors import Problem
from ..installers import installer_for
from .base import Context

__all__ = ["Develop"]


class Develop:
    """Buildout's ``develop``: local source trees, editable, built with the build lock."""

    name: ClassVar[str] = "develop"

    def problems(self, ctx: Context) -> list[Problem]:
        return []

    def skip_reason(self, ctx: Context) -> str | None:
        if not ctx.spec.develop:
            return "no develop trees"
        # Editable installs point at the trees: the clone of an update still has them.
        return "kept from the current environment" if ctx.base is not None else None

    def run(self, ctx: Context) -> str:
        trees = list(ctx.spec.develop)
        installer = installer_for(ctx.spec, ctx.runner, preflight=ctx.preflight)
        installer.install_editable(ctx.env_python, trees)
        return ", ".join(t.name for t in trees)
