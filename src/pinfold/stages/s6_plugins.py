"""Stage 6: Twisted plugin caches, regenerated at build time so they can never go stale.

Runs after every install step (pip gives files the install time, so anything installed
later would make a cache stale). Which packages: ``twisted.plugins`` when Twisted is
installed, every package whose ``__init__`` calls ``pluginPackagePaths``, and those in
``final.plugin_caches.packages``. Without this, the first ``getPlugins()`` of a consumer
imports every plugin module, and one that imports the reactor breaks
``installReactor`` (the seed bug). See :mod:`pinfold.plugincache` for freshness.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from ..errors import BuildError
from ..plugincache import PluginPackages, regenerate, script_paths, twisted_installed
from ..results import PluginCachesOutput
from .base import Context, Stage

__all__ = ["PluginCaches"]


def _inside(path: Path, env_dir: Path) -> bool:
    return path.resolve().is_relative_to(env_dir.resolve())


class PluginCaches(Stage):
    """Remove, regenerate, validate; then prove every cache fresh with a read-only test."""

    name: ClassVar[str] = "plugins"

    def skip_reason(self, ctx: Context) -> str | None:
        options = ctx.spec.final.plugin_caches
        if not options.enabled:
            return "disabled (final.plugin_caches.enabled is false)"
        if not options.packages and not twisted_installed(ctx.env_dir, ctx.spec.develop):
            return "Twisted is not installed and final.plugin_caches.packages lists nothing"
        return None

    def run(self, ctx: Context) -> str:
        # With the scripts' extra_paths first on sys.path: their plugin folders get caches too.
        target = replace(ctx.target, paths=script_paths(ctx.spec.scripts))
        done = regenerate(ctx.runner, target, PluginPackages(ctx.spec.final.plugin_caches.packages))
        if done.freshness.problems:
            raise BuildError("plugin caches: not fresh right after regeneration (something changed "
                             "the plugin folders meanwhile?)", done.freshness.problems)
        outside = [c.path for c in done.caches if not _inside(c.path, ctx.env_dir)]
        extra = script_paths(ctx.spec.scripts)
        ctx.warnings += [f"plugin cache written outside the environment (a develop tree): {p}"
                         for p in outside if not any(p.is_relative_to(e) for e in extra)]
        margins = [f.margin for f in done.freshness.folders if f.margin is not None]
        # The read-only freshness test passed; the probes stage reports it, not repeats it.
        written = PluginCachesOutput(packages=done.packages, caches=done.caches, removed=done.removed,
                                     fresh=True, margin=min(margins, default=None))
        ctx.outputs = replace(ctx.outputs, plugin_caches=written)
        modules = sum(c.modules for c in done.caches)
        raised = sum(c.raised > 0 for c in done.caches)
        note = f"; mtime raised past the newest module on {raised}" if raised else ""
        return (f"{len(done.caches)} cache(s) for {modules} plugin modules in "
                f"{', '.join(done.packages)}; fresh{note}")
