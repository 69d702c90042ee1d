"""Twisted plugin caches (``dropin.cache``): regenerate them, make them strictly newer, check them.

Twisted re-imports a plugin module when its file's mtime is ``>=`` its folder's cache's
mtime (``twisted.plugin.getCache`` compares the two as floats). A cache written at
install time can therefore look stale at once: pip gives files the install time (same
clock tick), and trees whose mtimes were normalised (SOURCE_DATE_EPOCH-style: every file, cache
included, set to one instant) make every module stale for good. After regeneration,
each cache's mtime is set to at least the *whole second after* its newest module
(:func:`strictly_newer_mtime_ns`): strictly newer under Twisted's float comparison, and
still strictly newer after a copy that keeps only whole seconds. The work happens in
the target interpreter (:mod:`pinfold.inside`); this module runs it and reads the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .envlayout import site_packages
from .errors import BuildError, Problem
from .inside.shared import EXACTLY, SECOND_NS, strictly_newer_mtime_ns
from .results import CacheFile
from .runner import Runner
from .target import Target, run_inside

if TYPE_CHECKING:
    from .spec import GeneratedScript, Spec

__all__ = [
    "CacheFile",
    "CacheFolder",
    "Freshness",
    "OnModule",
    "PluginPackages",
    "Regenerated",
    "check_freshness",
    "regenerate",
    "script_paths",
    "skip_reason",
    "strictly_newer_mtime_ns",
    "twisted_installed",
]

@dataclass(frozen=True, slots=True)
class PluginPackages:
    """Which plugin packages an inside script looks at."""

    names: tuple[str, ...] = ()
    #: True: exactly ``names`` (found by this build's plugin stage). False: ``names`` (from
    #: env.yaml) plus ``twisted.plugins`` and the packages found by scanning ``__init__.py`` files.
    exact: bool = False

    def argv(self) -> list[str]:
        """The scripts' ``[--exactly] [PACKAGE ...]`` arguments."""
        return [EXACTLY, *self.names] if self.exact else list(self.names)


def script_paths(scripts: Sequence[GeneratedScript]) -> tuple[Path, ...]:
    """Every generated script's ``extra_paths``, once each, in env.yaml's order.

    Plugin folders there (a project tree's own ``twisted/plugins/``) are reached only by
    those scripts; the plugin stage and probes look at them with these folders first on
    ``sys.path``, so their caches are generated and checked like the environment's.
    """
    return tuple(dict.fromkeys(p for s in scripts for p in s.extra_paths))


def twisted_installed(env_dir: Path, develop: Sequence[Path] = ()) -> bool:
    """Whether the environment (or one of its develop trees) holds ``twisted/plugin.py``."""
    roots = site_packages(env_dir)
    roots += [r for tree in develop for r in (tree, tree / "src")]
    return any((root / "twisted" / "plugin.py").is_file() for root in roots)


def skip_reason(spec: Spec, env_dir: Path) -> str | None:
    """Why the plugins stage does not run for ``spec`` in ``env_dir``, or None: it will."""
    options = spec.final.plugin_caches
    if not options.enabled:
        return "disabled (final.plugin_caches.enabled is false)"
    if not options.packages and not twisted_installed(env_dir, spec.develop):
        return "Twisted is not installed and final.plugin_caches.packages lists nothing"
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class Regenerated:
    """What regeneration did."""

    #: Every plugin package: ``twisted.plugins``, those found, those listed.
    packages: tuple[str, ...]
    caches: tuple[CacheFile, ...]
    #: Old caches removed first.
    removed: tuple[Path, ...]
    #: The read-only freshness test of the new caches, run right after writing them.
    freshness: Freshness
    #: The plugin-hygiene children's findings (``hygiene.py``'s result), when asked for and
    #: gathered; None otherwise.
    hygiene: dict[str, Any] | None = None
    #: The installed distributions (``distributions.py``'s entries), when asked for.
    distributions: tuple[dict[str, Any], ...] | None = None


def _problems(errors: list[dict[str, Any]]) -> list[Problem]:
    out = []
    for err in errors:
        where = f" ({err['where']})" if err.get("where") else ""
        out.append(Problem(err.get("module") or err.get("path", ""), f"{err['error']}{where}"))
    return out


#: Hears how far regeneration is: plugin module imports done and of how many, and the last one.
OnModule = Callable[[int, int, str], None]


def regenerate(runner: Runner, target: Target, packages: PluginPackages, *,
               hygiene: tuple[float, int] | None = None, distributions: bool = False,
               on_module: OnModule | None = None,
               on_caches: Callable[[tuple[str, ...]], None] | None = None) -> Regenerated:
    """Remove, regenerate and validate every plugin cache, make each strictly newer, test it.

    In the same interpreter, when asked: ``hygiene`` (per-module timeout, parallel jobs)
    runs the plugin-hygiene probe's children once the caches are written, ``distributions``
    lists the installed distributions (see ``inside/regenerate.py``). ``on_module`` hears
    each plugin module imported (once to regenerate, once alone for the hygiene probe);
    ``on_caches`` hears the plugin packages as soon as every cache is written and final (the
    script goes on with the hygiene children), never when something failed.

    Raises :class:`BuildError` naming every plugin module that fails to import and every
    cache that could not be written.
    """
    total, seen = 0, 0

    def line(text: str) -> None:  # the script's progress lines (see inside/regenerate.py)
        nonlocal total, seen
        word, _, rest = text.partition(" ")
        if word == "CACHES" and on_caches is not None:
            on_caches(tuple(rest.split()))
            return
        if word == "MODULES" and rest.isdigit():
            total = int(rest)
        elif word in ("IMPORTED", "ALONE") and rest and total:
            seen = min(seen + 1, total)
        else:
            return
        if on_module is not None:
            on_module(seen, total, f"{rest} alone" if word == "ALONE" else rest if seen else "")

    options = [*(["--hygiene", f"{hygiene[0]:g}", str(hygiene[1])] if hygiene else []),
               *(["--distributions"] if distributions else [])]
    # The hygiene children have a timeout each, as the probe gives them (plugins.hygiene).
    budget = 300.0 + (hygiene[0] * 10 if hygiene else 0.0)
    data = run_inside(runner, target, "regenerate", [*options, *packages.argv()],
                      what="regenerating the Twisted plugin caches", timeout=budget, on_line=line)
    if data["errors"]:
        problems = _problems(data["errors"])
        raise BuildError(
            f"plugin caches: {len(problems)} problem{'s' if len(problems) > 1 else ''} "
            "while regenerating", problems,
            tip="a plugin module that fails to import is skipped by Twisted and imported again "
                "on every lookup: fix it, or remove it from the environment")
    caches = tuple(CacheFile(package=c["package"], path=Path(c["path"]), modules=c["modules"],
                             mtime_ns=c["mtime_ns"], raised=c["raised_ns"] / SECOND_NS)
                   for c in data["caches"])
    listed = data.get("distributions")
    return Regenerated(packages=tuple(data["packages"]), caches=caches,
                       removed=tuple(Path(p) for p in data["removed"]),
                       freshness=_freshness(data["packages"], data["freshness"], []),
                       hygiene=data.get("hygiene"),
                       distributions=None if listed is None else tuple(listed))


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheFolder:
    """The freshness of one plugin folder's cache."""

    package: str
    path: Path
    modules: int
    #: Seconds between the newest module and the cache (None when there is no readable cache).
    margin: float | None
    problems: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Freshness:
    """The read-only freshness test's findings."""

    packages: tuple[str, ...]
    folders: tuple[CacheFolder, ...]
    #: Plugin packages that could not even be imported.
    errors: tuple[str, ...]

    @property
    def problems(self) -> list[Problem]:
        """Every finding, each naming its cache (or package)."""
        out = [Problem("", e) for e in self.errors]
        out += [Problem(str(f.path), p) for f in self.folders for p in f.problems]
        return out


def _freshness(packages: list[str], folders: list[dict[str, Any]], errors: list[str]) -> Freshness:
    return Freshness(packages=tuple(packages), errors=tuple(errors), folders=tuple(
        CacheFolder(package=f["package"], path=Path(f["path"]), modules=f["modules"],
                    margin=f.get("margin"), problems=tuple(f["problems"])) for f in folders))


def check_freshness(runner: Runner, target: Target, packages: PluginPackages) -> Freshness:
    """Test, without writing anything or importing any plugin module, that every cache is fresh."""
    data = run_inside(runner, target, "freshness", packages.argv(),
                      what="checking the Twisted plugin caches", timeout=120)
    return _freshness(data["packages"], data["folders"], data["errors"])
