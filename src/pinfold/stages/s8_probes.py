"""Stage 8: sanity probes, the last stage of a build and all of ``pinfold check``.

Probes the environment the way its consumers use it: Twisted plugin caches fresh,
each plugin module harmless on import, ``installReactor`` working with read-only plugin
folders, ``pip check``, exactly the lock installed, and the imports, console scripts
and commands listed in env.yaml, and that each generated script (``scripts:``) resolves.
``pinfold check`` also compares the tree with the manifest its build recorded (``files``;
a build writes the manifest after its probes, so it has none to compare with yet).
They run in parallel; any failure fails the stage with :class:`ProbeError`, which keeps
every result for the report.

In a build, some evidence is already there: the plugins stage's interpreter ran the
hygiene children and listed the distributions, and it started pip-check,
consumer-bootstrap and the imports early (``ctx.started_probes``); this stage judges and
reports those like the others. ``pinfold check`` runs every probe here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import ClassVar

from ..errors import ProbeError, Problem
from ..plugincache import PluginPackages, script_paths, twisted_installed
from ..probes import Probe, environment, files, plugins, run_probes
from ..probes.consumers import consumer_probes
from ..probes.environment import Expected
from ..record import read_record
from ..results import ProbesOutput
from .base import Context, Stage

__all__ = ["Probes", "plan"]


def _expected(ctx: Context) -> Callable[[], Expected]:
    """What the lock probe compares with: the pins of this build, or those the environment recorded."""
    spec = ctx.spec
    if ctx.preflight is not None:  # building: pre-flight knows the pins that apply
        return partial(Expected.from_pins, ctx.preflight.runtime, spec.requirements, spec.develop)
    record = read_record(ctx.env_dir)
    if record is not None:
        return partial(Expected.from_state, record)
    return partial(Expected.from_lock, ctx.runner, ctx.env_python, spec.requirements, spec.develop)


def _started(ctx: Context, probe: Probe) -> Probe:
    """``probe``, or the same probe an earlier stage of this build started (see s7_plugins)."""
    started = ctx.started_probes.pop(probe.name, None)
    return probe if started is None else replace(probe, started=started)


def _files(env_dir: Path) -> Probe:
    return Probe("files", partial(files.files_match, env_dir), weight=2)


def plan(ctx: Context, *, files_only: bool = False) -> list[Probe]:
    """The probes for this environment, in report order (Twisted ones only with Twisted).

    ``files_only``: the files probe alone (``pinfold check --files``).
    """
    if files_only:
        return [_files(ctx.env_dir)]
    spec, options = ctx.spec, ctx.spec.final.probes
    target, runner = ctx.target, ctx.runner
    # The Twisted probes see the plugin folders of the scripts' extra_paths too.
    plugin_target = replace(target, paths=script_paths(spec.scripts))
    caches = ctx.outputs.plugin_caches
    # The plugins stage of this build found the plugin packages already: no second scan.
    packages = (PluginPackages(caches.packages, exact=True) if caches is not None
                else PluginPackages(spec.final.plugin_caches.packages))
    jobs = os.cpu_count() or 2
    probes: list[Probe] = []
    if twisted_installed(ctx.env_dir, spec.develop):
        fresh = (partial(plugins.freshness_checked, caches) if caches is not None and caches.fresh
                 else partial(plugins.freshness, runner, plugin_target, packages))
        # This build's plugins stage ran the hygiene children already (see s7_plugins).
        hygiene = (partial(plugins.hygiene_judged, caches.hygiene, options.allow_reactor_import)
                   if caches is not None and caches.hygiene is not None
                   else partial(plugins.hygiene, runner, plugin_target, packages,
                                options.allow_reactor_import, jobs=jobs))
        probes += [
            Probe("plugin-caches", fresh),
            Probe("plugin-hygiene", hygiene, weight=5),
            _started(ctx, plugins.bootstrap_probe(runner, plugin_target, options.reactor, packages)),
        ]
    if ctx.preflight is None:  # checking a finished environment: it has a manifest
        probes.append(_files(ctx.env_dir))
    probes += [
        _started(ctx, environment.pip_check_probe(runner, ctx.env_python)),
        Probe("lock", partial(environment.lock_match, runner, target, _expected(ctx),
                              None if caches is None else caches.distributions), weight=2),
    ]
    # Named once for both stages (the plugins stage of a build starts them early).
    probes += [_started(ctx, p) for p in consumer_probes(runner, target, ctx.env_dir, spec)]
    return probes


class Probes(Stage):
    """Run every probe in parallel; fail with all their results if any fails."""

    name: ClassVar[str] = "probes"

    def __init__(self, *, files_only: bool = False) -> None:
        #: Only the files probe (``pinfold check --files``): it runs even with the probes disabled.
        self.files_only = files_only

    def skip_reason(self, ctx: Context) -> str | None:
        if self.files_only or ctx.spec.final.probes.enabled:
            return None
        return "disabled (final.probes.enabled is false)"

    def run(self, ctx: Context) -> str:
        probes = plan(ctx, files_only=self.files_only)

        def done(count: int, total: int, slowest: str) -> None:
            self.progress(ctx, count, total, unit="probes", item=f"running {slowest}" if slowest else "")

        self.progress(ctx, 0, len(probes), unit="probes")
        results = run_probes(probes, on_done=done)
        ctx.outputs = replace(ctx.outputs, probes=ProbesOutput(results=tuple(results)))
        ctx.warnings += [f"probe {r.name}: {line}" for r in results if r.status == "warn"
                         for line in r.evidence or (r.summary,)]
        failed = [r for r in results if r.status == "fail"]
        if failed:
            problems = [Problem(r.name, r.summary) for r in failed]
            raise ProbeError(f"{len(failed)} of {len(results)} probes failed: "
                             f"{', '.join(r.name for r in failed)}", problems, results=results,
                             tip="the evidence is listed under each failed probe "
                                 "(--json and --junit-xml keep it too)")
        warned = sum(r.status == "warn" for r in results)
        busy = sum(r.seconds for r in results)
        note = f", {warned} with warnings" if warned else ""
        return f"{len(results)} probes passed{note} ({busy:.1f}s of probe time in parallel)"
