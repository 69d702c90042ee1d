"""Stage 4: install the ``develop`` trees editable, under the same hermetic rules."""

from __future__ import annotations

from typing import ClassVar

from ..installers import installer_for
from .base import Context, Stage

__all__ = ["Develop", "KeptDevelop"]


class Develop(Stage):
    """Buildout's ``develop``: local source trees, editable, built with the build lock."""

    name: ClassVar[str] = "develop"

    def skip_reason(self, ctx: Context) -> str | None:
        return None if ctx.spec.develop else "no develop trees"

    def run(self, ctx: Context) -> str:
        trees = list(ctx.spec.develop)
        installer = installer_for(ctx.spec, ctx.runner, preflight=ctx.preflight, hashes=ctx.hashes)
        installer.install_editable(ctx.env_python, trees)
        return ", ".join(t.name for t in trees)


class KeptDevelop(Develop):
    """An update: editable installs point at the trees, so the clone still has them."""

    def skip_reason(self, ctx: Context) -> str | None:
        return super().skip_reason(ctx) or "kept from the current environment"
