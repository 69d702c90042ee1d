"""Regenerate every Twisted plugin cache of the environment, and say what went wrong.

Usage: ``python -I -B _launch.py regenerate.py RESULT.json [PACKAGE ...]`` (the packages listed in
env.yaml; ``twisted.plugins`` and the packages calling ``pluginPackagePaths`` are found
here, see ``_common.plugin_packages``). For each plugin package: remove its old caches
(a module that broke after it was cached would otherwise keep its old entry and look
fresh), import every plugin module, let Twisted's own ``getCache`` write the caches,
then load every cached plugin. Then make each cache strictly newer than its modules
(``strictly_newer_mtime_ns``) and judge it with the read-only freshness test.

Twisted only logs import errors and unwritable caches; this script collects them, so
the build can fail naming the module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinfold.inside import _common as common
    from pinfold.inside import shared
else:
    # Loaded once, by path, by _launch.py (see pinfold.target).
    common = sys.modules["_pinfold_common"]
    shared = sys.modules["_pinfold_shared"]


def _remove_old_caches(folders: list[str], result: dict[str, Any]) -> None:
    for folder in folders:
        path = os.path.join(folder, shared.CACHE)
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            result["errors"].append({"module": "", "path": path,
                                     "error": f"cannot remove the old cache: {common.describe(exc)}"})
            continue
        result["removed"].append(path)


def _regenerate(name: str, result: dict[str, Any], logged: list[str]) -> None:
    from twisted.plugin import getCache

    errors = result["errors"]
    try:
        package = importlib.import_module(name)
    except BaseException as exc:
        errors.append({"module": name, "path": "", "error": common.describe(exc),
                       "where": common.where(exc)})
        return
    folders = list(getattr(package, "__path__", []))
    if not folders:
        errors.append({"module": name, "path": "", "error": "is not a package"})
        return
    _remove_old_caches(folders, result)
    groups = common.buckets(name)
    for _, modules in groups:
        for _, modname, path in modules:
            try:
                importlib.import_module(modname)
            except BaseException as exc:  # SystemExit and KeyboardInterrupt from plugins too
                errors.append({"module": modname, "path": path, "error": common.describe(exc),
                               "where": common.where(exc)})
    cache = getCache(package)  # type: ignore[no-untyped-call]
    for dropin in cache.values():
        for plugin in dropin.plugins:
            try:
                plugin.load()
            except BaseException as exc:
                errors.append({"module": f"{dropin.moduleName}.{plugin.name}", "path": "",
                               "error": f"cached plugin does not load: {common.describe(exc)}"})
    for folder, modules in groups:
        path = os.path.join(folder, shared.CACHE)
        if not os.path.isfile(path):
            said = [line for line in logged if path in line] or ["no log message"]
            errors.append({"module": "", "path": path,
                           "error": f"the cache was not written ({said[-1]})"})
            continue
        st = os.stat(path)
        wanted = shared.strictly_newer_mtime_ns(st.st_mtime_ns,
                                                [os.stat(p).st_mtime_ns for _, _, p in modules])
        if wanted != st.st_mtime_ns:
            os.utime(path, ns=(st.st_atime_ns, wanted))
        result["caches"].append({"package": name, "path": path, "modules": len(modules),
                                 "mtime_ns": wanted, "raised_ns": wanted - st.st_mtime_ns})
        # The read-only test, on what is now on disk (the probes repeat it in a fresh process).
        result["freshness"].append(common.freshness(name, folder, modules))


def main(argv: list[str]) -> None:
    """Regenerate, then write the result: caches written, old caches removed, errors."""
    out, listed = argv[1], argv[2:]
    packages = common.plugin_packages(listed)
    result: dict[str, Any] = {"packages": packages, "caches": [], "removed": [], "errors": [],
                              "freshness": []}
    try:
        from twisted.python import log
    except ImportError as exc:
        result["errors"].append({"module": "twisted", "path": "",
                                 "error": f"Twisted is not importable: {common.describe(exc)}"})
        common.write_result(out, result)
        return
    logged: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        # getCache logs an unwritable cache at info level, and import errors as errors.
        text = log.textFromEventDict(event)
        if text:
            logged.append(text.strip().splitlines()[-1])

    log.addObserver(observe)
    for name in packages:
        _regenerate(name, result, logged)
    common.write_result(out, result)


if __name__ == "__main__":
    main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # A plugin may have started non-daemon threads on import: never wait for them.
    os._exit(0)
