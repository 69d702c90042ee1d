"""Stage 7: Twisted plugin caches, regenerated at build time so they can never go stale.

Runs after every install step (pip gives files the install time, so anything installed
later would make a cache stale), and after the scripts stage: nothing after it writes.
Which packages: ``twisted.plugins`` when Twisted is installed, every package whose
``__init__`` calls ``pluginPackagePaths``, and those in ``final.plugin_caches.packages``.
Without this, the first ``getPlugins()`` of a consumer imports every plugin module, and one
that imports the reactor breaks ``installReactor`` (the seed bug).
See :mod:`pinfold.plugincache` for freshness.

The same interpreter gathers what this build's probes would otherwise start interpreters
(each importing Twisted again) for: the plugin-hygiene children, forked from it before it
imports any plugin module and run once the caches are written, and the list of installed
distributions for the lock probe. Both are kept in the stage's output for the probes stage.
It also starts the pip-check, consumer-bootstrap, import, script and command probes early (see
:meth:`PluginCaches.run`); the scripts stage runs before this one so that the generated scripts'
probes can start with them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from ..errors import BuildError
from ..plugincache import PluginPackages, regenerate, script_paths, skip_reason, twisted_installed
from ..probes import Probe, run_probe
from ..probes.consumers import consumer_probes
from ..probes.environment import pip_check_probe
from ..probes.plugins import BOOTSTRAP, HYGIENE_TIMEOUT, bootstrap_probe
from ..results import PluginCachesOutput
from .base import Context, Stage

__all__ = ["PluginCaches"]


def _inside(path: Path, env_dir: Path) -> bool:
    return path.resolve().is_relative_to(env_dir.resolve())


class PluginCaches(Stage):
    """Remove, regenerate, validate; then prove every cache fresh with a read-only test."""

    name: ClassVar[str] = "plugins"

    def skip_reason(self, ctx: Context) -> str | None:
        return skip_reason(ctx.spec, ctx.env_dir)

    def run(self, ctx: Context) -> str:
        probes = ctx.spec.final.probes
        # Probes whose evidence nothing between here and the probes stage can change (this is
        # the last stage that writes: the scripts stage ran before it) start now, so that they
        # overlap this stage's single interpreter: pip-check (it reads the installed metadata
        # only) at once; consumer-bootstrap and the consumer probes (the `imports`, `scripts`
        # and `commands`, and the generated scripts' probes: each a fresh process, as always)
        # as soon as every cache is written and final. The probes stage reports them.
        # As many at a time as the probes stage runs (each mostly waits for its interpreter).
        pool = ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 2)),
                                  thread_name_prefix="pinfold-probe")
        try:
            if probes.enabled:
                self._start(ctx, pool, pip_check_probe(ctx.runner, ctx.env_python))
            return self._regenerate(ctx, pool)
        except BaseException:
            # Nothing started here outlives a failed stage: its results would never be read.
            pool.shutdown(wait=True, cancel_futures=True)
            ctx.started_probes.clear()
            raise
        finally:
            pool.shutdown(wait=False)

    @staticmethod
    def _start(ctx: Context, pool: ThreadPoolExecutor, probe: Probe) -> None:
        ctx.started_probes[probe.name] = pool.submit(run_probe, probe)

    def _regenerate(self, ctx: Context, pool: ThreadPoolExecutor) -> str:
        # With the scripts' extra_paths first on sys.path: their plugin folders get caches too.
        extra = script_paths(ctx.spec.scripts)
        target = replace(ctx.target, paths=extra)
        probes = ctx.spec.final.probes
        twisted = probes.enabled and twisted_installed(ctx.env_dir, ctx.spec.develop)
        # The probes stage runs the Twisted probes only with Twisted, and lists distributions
        # with the environment's own sys.path (no extra_paths first): gather only what it uses.
        hygiene = (HYGIENE_TIMEOUT, os.cpu_count() or 2) if twisted else None
        told: list[tuple[str, ...]] = []

        def module(done: int, total: int, name: str) -> None:
            self.progress(ctx, done, total, unit="modules", item=f"imported {name}" if name else "")

        def caches(packages: tuple[str, ...]) -> None:
            if told:
                return
            told.append(packages)
            if twisted:
                self._start(ctx, pool, bootstrap_probe(ctx.runner, target, probes.reactor,
                                                       PluginPackages(packages, exact=True)))
            if probes.enabled:  # what a consumer runs may look its plugins up: after the caches
                found = consumer_probes(ctx.runner, ctx.target, ctx.env_dir, ctx.spec)
                for probe in sorted(found, key=lambda p: -p.weight):  # as run_probes orders them
                    self._start(ctx, pool, probe)

        done = regenerate(ctx.runner, target, PluginPackages(ctx.spec.final.plugin_caches.packages),
                          hygiene=hygiene, distributions=probes.enabled and not extra,
                          on_module=module, on_caches=caches)
        if told and told[0] != done.packages:  # not what the result says: the probes stage runs it
            started = ctx.started_probes.pop(BOOTSTRAP, None)
            if started is not None:
                started.result()
        if done.freshness.problems:
            raise BuildError("plugin caches: not fresh right after regeneration (something changed "
                             "the plugin folders meanwhile?)", done.freshness.problems)
        outside = [c.path for c in done.caches if not _inside(c.path, ctx.env_dir)]
        ctx.warnings += [f"plugin cache written outside the environment (a develop tree): {p}"
                         for p in outside if not any(p.is_relative_to(e) for e in extra)]
        margins = [f.margin for f in done.freshness.folders if f.margin is not None]
        # The read-only freshness test passed; the probes stage reports it, not repeats it.
        written = PluginCachesOutput(packages=done.packages, caches=done.caches, removed=done.removed,
                                     fresh=True, margin=min(margins, default=None),
                                     hygiene=done.hygiene, distributions=done.distributions)
        ctx.outputs = replace(ctx.outputs, plugin_caches=written)
        modules = sum(c.modules for c in done.caches)
        raised = sum(c.raised > 0 for c in done.caches)
        note = f"; mtime raised past the newest module on {raised}" if raised else ""
        return (f"{len(done.caches)} cache(s) for {modules} plugin modules in "
                f"{', '.join(done.packages)}; fresh{note}")
