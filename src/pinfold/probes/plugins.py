"""The Twisted probes: cache freshness, plugin hygiene, and a consumer's bootstrap.

Each runs one inside script (:mod:`pinfold.inside`) in the environment's interpreter
and judges its findings here, so the judgement (what fails, what only warns) is typed,
tested pinfold code.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from ..plugincache import PluginPackages, check_freshness
from ..results import PluginCachesOutput
from ..runner import Runner
from ..target import Target, run_inside
from . import Outcome, Probe

__all__ = ["BOOTSTRAP", "HYGIENE_TIMEOUT", "bootstrap", "bootstrap_probe", "freshness", "hygiene",
           "hygiene_judged"]

#: The consumer-bootstrap probe's name.
BOOTSTRAP = "consumer-bootstrap"

#: Seconds a plugin module's import may take in the hygiene probe before its child is killed.
HYGIENE_TIMEOUT = 60.0


def freshness(runner: Runner, target: Target, packages: PluginPackages) -> Outcome:
    """Every cache exists, is readable, lists every module and is strictly newer than each."""
    found = check_freshness(runner, target, packages)
    problems = found.problems
    modules = sum(f.modules for f in found.folders)
    if problems:
        bad = len({p.where for p in problems})
        return Outcome(status="fail", summary=f"{bad} of {len(found.folders)} plugin caches are stale, "
                                              "missing or unreadable: plugins would be imported",
                       evidence=tuple(str(p) for p in problems))
    if not found.folders:
        return Outcome(status="ok", summary="no plugin modules, so no caches needed")
    margin = min(f.margin for f in found.folders if f.margin is not None)
    return Outcome(status="ok", summary=f"{len(found.folders)} cache(s) fresh for {modules} plugin modules "
                                        f"(newest module {margin:.2f}s older than its cache)")


def freshness_checked(written: PluginCachesOutput) -> Outcome:
    """The freshness test this build's plugins stage ran right after writing the caches.

    Nothing runs between the two stages, so repeating it would only cost time;
    ``pinfold check`` runs :func:`freshness` for real.
    """
    caches, margin = written.caches, written.margin
    modules = sum(c.modules for c in caches)
    newest = f", newest module {margin:.2f}s older than its cache" if margin is not None else ""
    return Outcome(status="ok", summary=f"{len(caches)} cache(s) fresh for {modules} plugin modules "
                                        f"(tested by the plugins stage right after writing them{newest})")


def _chain(frames: list[str]) -> str:
    shown = frames if len(frames) <= 6 else [*frames[:2], "...", *frames[-3:]]
    return " -> ".join(shown)


def _judge(module: dict[str, Any], allowed: set[str], fails: list[str], warns: list[str]) -> None:
    name = module["module"]
    if module.get("error"):
        at = f" ({module['where']})" if module.get("where") else ""
        fails.append(f"{name}: fails to import: {module['error']}{at}")
    if module.get("reactor"):
        via = f" via {_chain(module['chain'])}" if module.get("chain") else ""
        text = f"{name}: installs the reactor on import ({module['reactor']}){via}"
        if name in allowed:
            warns.append(f"{text}; allowed by final.probes.allow_reactor_import")
        else:
            fails.append(text)
    threads = module.get("threads") or []
    native = module.get("native_threads", 0)
    if threads or native:
        names = f": {', '.join(threads)}" if threads else ""
        warns.append(f"{name}: starts {max(len(threads), native)} thread(s) on import{names}")


def hygiene(runner: Runner, target: Target, packages: PluginPackages, allowed: Sequence[str], *,
            timeout: float = HYGIENE_TIMEOUT, jobs: int = 2) -> Outcome:
    """Each plugin module imported alone: no reactor installed, no import error, no threads."""
    data = run_inside(runner, target, "hygiene", [f"{timeout:g}", str(jobs), *packages.argv()],
                      what="importing each plugin module alone", timeout=timeout * 10 + 120)
    return hygiene_judged(data, allowed)


def hygiene_judged(data: dict[str, Any], allowed: Sequence[str]) -> Outcome:
    """Judge the hygiene children's findings (``inside/hygiene.py``'s result).

    Called by :func:`hygiene`, and by the probes stage of a build on the findings its
    plugins stage gathered: the same children, forked from the interpreter that had
    just written the caches (see ``inside/regenerate.py``).
    """
    fails: list[str] = list(data["errors"])
    warns: list[str] = []
    modules = sorted(data["modules"], key=lambda m: str(m["module"]))
    allow = set(allowed)
    for module in modules:
        _judge(module, allow, fails, warns)
    by_name = {m["module"]: m for m in modules}
    for name in sorted(allow):
        if name not in by_name:
            warns.append(f"final.probes.allow_reactor_import lists {name}, which is not a plugin "
                         "module of this environment")
        elif not by_name[name].get("reactor"):
            warns.append(f"{name} no longer installs the reactor on import: remove it from "
                         "final.probes.allow_reactor_import")
    count = f"{len(modules)} plugin modules imported alone"
    if fails:
        culprits = sorted({line.split(":", 1)[0] for line in fails})
        return Outcome(status="fail", summary=f"{count}; failing: {', '.join(culprits)}",
                       evidence=tuple(fails + warns))
    if warns:
        return Outcome(status="warn", summary=f"{count}; {len(warns)} warning(s)", evidence=tuple(warns))
    return Outcome(status="ok", summary=f"{count}: no reactor, no errors, no threads")


def bootstrap(runner: Runner, target: Target, reactor: str, packages: PluginPackages) -> Outcome:
    """``installReactor(reactor)`` in a fresh interpreter with the plugin folders read-only."""
    data = run_inside(runner, target, "bootstrap", [reactor, *packages.argv()],
                      what=f"installing the {reactor} reactor", timeout=120)
    call = f"installReactor({reactor!r})"
    evidence = []
    if data["error"]:
        evidence.append(f"{call} raised {data['error']} ({data.get('where', '')})")
    modules: dict[str, bool] = data["plugin_modules"]
    others = sorted(m for m, provides in modules.items() if not provides)
    if others:
        evidence.append(f"imported {len(others)} plugin module(s) that provide no reactor, so the "
                        f"cache was stale or missing: {', '.join(others)}")
    if data["refused"]:
        evidence.append("tried to write into the plugin folders (refused, as in a read-only "
                        f"deployment): {'; '.join(data['refused'])}")
    if data["changed"]:
        evidence.append(f"caches changed: {', '.join(data['changed'])}")
    if evidence:
        evidence += [f"Twisted logged: {line}" for line in data["logged"]]
        headline = f"{call} failed: {data['error']}" if data["error"] else f"{call} worked, but not cleanly"
        return Outcome(status="fail", summary=headline, evidence=tuple(evidence))
    reactors = ", ".join(sorted(modules)) or "no plugin module"
    return Outcome(status="ok", summary=f"{call} -> {data['installed']} with read-only plugin folders; "
                                        f"imported only {reactors}")


def bootstrap_probe(runner: Runner, target: Target, reactor: str, packages: PluginPackages) -> Probe:
    """The consumer-bootstrap probe (:func:`bootstrap`)."""
    return Probe(BOOTSTRAP, partial(bootstrap, runner, target, reactor, packages))
