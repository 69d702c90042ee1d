"""What the inside scripts share: finding plugin packages and folders, reading caches, results.

Runs in the target interpreter (see :mod:`pinfold.inside`: standard library only; Twisted
is imported only where a function says so). ``_launch.py`` loads this file by path, after
:mod:`pinfold.inside.shared`; the scripts take it from ``sys.modules``, never by import.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import sysconfig
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import importlib.metadata

    from pinfold.inside import shared

    #: A plugin module as Twisted's ``getCache`` sees it: (cache key, dotted name, file).
    Module = tuple[str, str, str]  # annotations only: a runtime tuple[...] needs Python 3.9
else:
    # Loaded by path just before this file, by _launch.py.
    shared = sys.modules["_pinfold_shared"]

MARK = shared.PLUGIN_MARK
TWISTED_PLUGINS = "twisted.plugins"


def search_path() -> list[str]:
    """The ``sys.path`` folders that can hold installed packages (the standard library excluded)."""
    paths = sysconfig.get_paths()
    stdlib = {os.path.abspath(paths[k]) for k in ("stdlib", "platstdlib") if k in paths}
    out = []
    for entry in sys.path:
        full = os.path.abspath(entry or os.curdir)
        if full in stdlib or os.path.basename(full) == "lib-dynload" or not os.path.isdir(full):
            continue
        if full not in out:
            out.append(full)
    return out


def twisted_installed(entries: list[str]) -> bool:
    """Whether ``twisted.plugin`` can be imported, judged from files alone."""
    return any(os.path.isfile(os.path.join(e, "twisted", "plugin.py")) for e in entries)


def scan_plugin_packages(entries: list[str]) -> list[str]:
    """Packages whose ``__init__.py`` calls ``pluginPackagePaths(``: a cheap text scan."""
    found = []
    for entry in entries:
        for folder, dirs, files in os.walk(entry):
            # Only folders that can be (namespace) packages: skips dist-info, caches, data.
            dirs[:] = sorted(d for d in dirs if d.isidentifier() and d != "__pycache__")
            if "__init__.py" not in files or folder == entry:
                continue
            try:
                with open(os.path.join(folder, "__init__.py"), "rb") as fh:
                    text = fh.read()
            except OSError:
                continue
            if MARK in text:
                found.append(".".join(os.path.relpath(folder, entry).split(os.sep)))
    return found


def plugin_packages(args: list[str]) -> list[str]:
    """The plugin packages a script looks at, from its ``[--exactly] [PACKAGE ...]`` arguments.

    ``--exactly``: the packages given, found by an earlier script of the same build (the
    scan below reads every ``__init__.py``: ~0.2 s in a large environment). Otherwise
    ``twisted.plugins`` (when Twisted is installed), the packages found, then those given.
    """
    if args[:1] == [shared.EXACTLY]:
        return list(dict.fromkeys(args[1:]))
    listed = args
    entries = search_path()
    names = [TWISTED_PLUGINS] if twisted_installed(entries) else []
    names += scan_plugin_packages(entries) + listed
    return list(dict.fromkeys(names))


def candidate_folders(packages: list[str]) -> set[str]:
    """Every folder a plugin package's ``__path__`` can hold, as given and resolved.

    A package's folders come from ``sys.path`` entries (``pluginPackagePaths`` adds each
    entry's ``<package>/`` folder), so this needs no import.
    """
    out: set[str] = set()
    for name in packages:
        for entry in sys.path:
            folder = os.path.join(os.path.abspath(entry or os.curdir), *name.split("."))
            out.update((folder, os.path.realpath(folder)))
    return out


def buckets(package: str) -> list[tuple[str, list[Module]]]:
    """The plugin modules of an *imported* package, grouped by folder exactly as ``getCache`` does.

    Uses Twisted's own module walk, so which files count (``.py``, ``.pyc``, subpackages)
    and which folder's cache each belongs to never drift from Twisted's rules.
    """
    from twisted.python.modules import getModule

    groups: dict[str, list[Module]] = {}
    for module in getModule(package).iterModules():  # type: ignore[no-untyped-call]
        folder = module.filePath.parent().path
        groups.setdefault(folder, []).append((module.name.split(".")[-1], module.name,
                                              module.filePath.path))
    return list(groups.items())


def freshness(package: str, folder: str, modules: list[Module]) -> dict[str, Any]:
    """Judge one folder's cache by Twisted's own rule; read-only, imports nothing.

    A module is imported again when the cache has no entry for it or when its file's
    mtime is ``>=`` the cache's; an unreadable cache means every module is imported; an
    entry for a module that is gone makes Twisted rewrite the cache.
    """
    path = os.path.join(folder, shared.CACHE)
    report: dict[str, Any] = {"package": package, "folder": folder, "path": path,
                              "modules": len(modules), "problems": []}
    problems: list[str] = report["problems"]
    try:
        # The clock Twisted reads: FilePath.getModificationTime() is float(st_mtime).
        cache_mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        problems.append("missing: the first getPlugins() call imports every plugin module here")
        return report
    keys, error = cache_keys(path)
    if keys is None:
        problems.append(f"unreadable ({error}): every plugin module here would be imported")
        return report
    mtimes = {name: os.stat(p).st_mtime for _, name, p in modules}
    report["margin"] = cache_mtime - max(mtimes.values())
    stale = [name for name, mtime in mtimes.items() if mtime >= cache_mtime]
    missing = [name for key, name, _ in modules if key not in keys]
    gone = sorted(set(keys) - {key for key, _, _ in modules})
    if stale:
        problems.append(f"older than (or as old as) {len(stale)} of its modules, which would "
                        f"be imported again: {', '.join(stale)}")
    if missing:
        problems.append(f"has no entry for {', '.join(missing)}, which would be imported")
    if gone:
        problems.append(f"lists modules that are gone ({', '.join(gone)}): Twisted would "
                        "rewrite it on first use")
    return report


class _Stub:
    """Stands for every class in a cache pickle, so reading it imports nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type[_Stub]:
        # The real classes live in twisted.plugin and in whatever modules define the
        # plugins' interfaces: loading those could import plugin code.
        return _Stub


def cache_keys(path: str) -> tuple[list[str] | None, str | None]:
    """The module keys a cache holds, read without importing anything; or the read error."""
    try:
        with open(path, "rb") as fh:
            data = _StubUnpickler(fh).load()
    except Exception as exc:  # Twisted treats any failure here as "no cache"
        return None, describe(exc)
    if not isinstance(data, dict):
        return None, f"holds a {type(data).__name__}, not a dict"
    return sorted(str(k) for k in data), None


def describe(exc: BaseException) -> str:
    """``Type: message``, one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def where(exc: BaseException) -> str:
    """``file:line`` where ``exc`` was raised (for a SyntaxError, the bad line)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def short(path: str) -> str:
    """``path`` relative to the longest ``sys.path`` entry holding it (``txpkg/plugin.py:3``)."""
    best = ""
    for entry in sys.path:
        full = os.path.abspath(entry or os.curdir)
        if path.startswith(full + os.sep) and len(full) > len(best):
            best = full
    return path[len(best) + 1:] if best else path


def _direct_url(dist: importlib.metadata.Distribution) -> tuple[bool, str]:
    try:
        data = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False, ""
    editable = bool(data.get("dir_info", {}).get("editable"))
    return editable, str(data.get("url", ""))


def list_distributions(path: list[str] | None = None) -> list[dict[str, Any]]:
    """Every distribution on ``path`` (default ``sys.path``): name, version, folder, editable URL.

    One entry per ``.dist-info`` or ``.egg-info`` found; for editable installs (PEP 610
    ``direct_url.json``) the source tree's URL. ``path``: ``sys.path`` as it was before
    anything was imported that could change it.
    """
    import importlib.metadata  # here: most scripts never need it (its imports cost ~20 ms)

    found = []
    for dist in importlib.metadata.distributions(path=list(sys.path if path is None else path)):
        editable, url = _direct_url(dist)
        found.append({
            "name": dist.metadata["Name"] or "",
            "version": dist.version or "",
            # Where the metadata lives: tells a shadowed duplicate from the one in use.
            "location": str(getattr(dist, "_path", "")),
            "editable": editable,
            "url": url,
        })
    return found


def write_result(path: str, data: dict[str, Any]) -> None:
    """Write the script's one JSON result (a temporary name, then a rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
