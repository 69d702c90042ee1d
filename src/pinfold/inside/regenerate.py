"""Regenerate every Twisted plugin cache of the environment, and say what went wrong.

Usage: ``python -I -B _launch.py regenerate.py RESULT.json [--hygiene TIMEOUT JOBS]
[--distributions] [PACKAGE ...]`` (the packages listed in env.yaml; ``twisted.plugins`` and the
packages calling ``pluginPackagePaths`` are found here, see ``_common.plugin_packages``). For
each plugin package: remove its old caches (a module that broke after it was cached would
otherwise keep its old entry and look fresh), import every plugin module, let Twisted's own
``getCache`` write the caches, then load every cached plugin. Then make each cache strictly
newer than its modules (``strictly_newer_mtime_ns``) and judge it with the read-only
freshness test.

The same interpreter also gathers evidence the probes stage would otherwise start an
interpreter (and import Twisted) for:

- ``--distributions``: the installed distributions (the lock probe's ``distributions.py``,
  same code), on ``sys.path`` as it was before anything was imported: listed by a process
  forked first thing (``_Lister``, which finds the plugin packages for this one too) while
  this one imports Twisted; here, first, without ``os.fork``.
- ``--hygiene TIMEOUT JOBS``: the plugin-hygiene probe's children (``hygiene.py``, loaded by
  path). Before any plugin module is imported here, a helper process is forked from the
  state ``hygiene.py``'s parent has (``twisted.plugin``, its warm-up modules, the plugin
  packages; no reactor, no thread); it waits until the new caches are on disk, then
  forks one child per plugin module exactly as ``hygiene.py`` does. Without ``os.fork``
  (or when the packages cannot be judged that way) ``"hygiene"`` is null and the probe
  runs ``hygiene.py`` itself.

On stderr, for pinfold's live progress: ``MODULES <total>`` (the imports to do: each plugin
module once here, and once alone with ``--hygiene``), then ``IMPORTED <module>`` and
``ALONE <module>`` as each one is done; ``CACHES <package> ...`` once every cache is written
and final (not when something failed).

Twisted only logs import errors and unwritable caches; this script collects them, so
the build can fail naming the module.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import json
import os
import sys
import time
from types import ModuleType
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


def _say(word: str, text: str) -> None:
    """One progress line on stderr (see the module docstring)."""
    sys.stderr.write(f"{word} {text}\n")
    sys.stderr.flush()


def _find(name: str, errors: list[dict[str, Any]]) -> tuple[list[str], list[Any]] | None:
    """Import the plugin package ``name``: its folders and its modules grouped by folder."""
    try:
        package = importlib.import_module(name)
    except BaseException as exc:
        errors.append({"module": name, "path": "", "error": common.describe(exc),
                       "where": common.where(exc)})
        return None
    folders = list(getattr(package, "__path__", []))
    if not folders:
        errors.append({"module": name, "path": "", "error": "is not a package"})
        return None
    return folders, common.buckets(name)


def _regenerate(name: str, folders: list[str], groups: list[Any], result: dict[str, Any],
                logged: list[str], cost: dict[str, float]) -> None:
    from twisted.plugin import getCache

    errors = result["errors"]
    package = sys.modules[name]
    _remove_old_caches(folders, result)
    for _, modules in groups:
        for _, modname, path in modules:
            start = time.monotonic()
            try:
                importlib.import_module(modname)
            except BaseException as exc:  # SystemExit and KeyboardInterrupt from plugins too
                errors.append({"module": modname, "path": path, "error": common.describe(exc),
                               "where": common.where(exc)})
            cost[modname] = time.monotonic() - start
            _say("IMPORTED", modname)
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


def _load_hygiene() -> ModuleType:
    """``hygiene.py``, next to this file, loaded by path (its ``__main__`` block does not run)."""
    if "_pinfold_hygiene" in sys.modules:
        return sys.modules["_pinfold_hygiene"]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hygiene.py")
    spec = importlib.util.spec_from_file_location("_pinfold_hygiene", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _read_exactly(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break  # the parent died: nothing to do
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class _Hygiene:
    """The forked helper that runs the hygiene probe's children once the caches are written."""

    def __init__(self, pid: int, go_fd: int, out: str) -> None:
        self.pid, self.go_fd, self.out = pid, go_fd, out
        self.run = False

    @classmethod
    def start(cls, packages: list[str], timeout: float, jobs: int, out: str,
              result: dict[str, Any]) -> _Hygiene | None:
        """Prepare as ``hygiene.py`` does and fork the helper; None when it cannot be done here."""
        if not hasattr(os, "fork"):
            return None  # no fork (not POSIX): the probe runs hygiene.py, which cannot either
        hygiene = _load_hygiene()
        found: dict[str, Any] = {"packages": packages, "modules": [], "errors": []}
        modules = hygiene.prepare(packages, found["errors"])
        if modules is None:  # the findings say why no module can be judged
            result["hygiene"] = found
            return None
        go_read, go_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the helper: exactly hygiene.py's parent, waiting for the caches
            code = 0
            try:
                os.close(go_write)
                first = _read_exactly(go_read, 9)  # "1" or "0", then the order's length
                if first[:1] == b"1":
                    cost = json.loads(_read_exactly(go_read, int.from_bytes(first[1:], "big")))
                    # The costliest first: the last child to start is then a cheap one.
                    ordered = sorted(modules, key=lambda m: -float(cost.get(m, 0.0)))
                    found["modules"] = hygiene.import_each(ordered, timeout, max(1, jobs),
                                                           on_done=lambda m: _say("ALONE", m))
                    common.write_result(out, found)
            except BaseException:
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(go_read)
        return cls(pid, go_write, out)

    def go(self, run: bool, cost: dict[str, float]) -> None:
        """Let the helper run its children (``run``: the caches are final) or stop.

        ``cost``: each module's import time here, to start the costliest children first.
        """
        order = json.dumps(cost).encode() if run else b""
        # A length, not an end of file: a process a plugin forked may hold the pipe open.
        message = (b"1" if run else b"0") + len(order).to_bytes(8, "big") + order
        while message:
            message = message[os.write(self.go_fd, message):]
        os.close(self.go_fd)
        self.run = run

    def finish(self) -> dict[str, Any] | None:
        """Wait for the helper; its findings, or None if it wrote none (or was stopped)."""
        os.waitpid(self.pid, 0)
        if not self.run:
            return None
        try:
            with open(self.out, encoding="utf-8") as fh:
                data: dict[str, Any] = json.load(fh)
        except (OSError, ValueError):
            return None  # the probe runs hygiene.py itself
        return data


class _Lister:
    """A process forked before anything is imported here: it finds the plugin packages, then
    lists the distributions.

    Both only read files (``_common.plugin_packages``' scan of every ``__init__.py``, ~30 ms;
    ``_common.list_distributions``, ~60 ms for 120 distributions) while this interpreter
    imports Twisted: the same code on the same, untouched ``sys.path``, off this script's
    critical path. The packages come back on a pipe (a length, then JSON: a process a plugin
    forks may hold the pipe open), the distributions in a file. Without ``os.fork`` both are
    done here, first.
    """

    def __init__(self, pid: int, fd: int, out: str | None) -> None:
        self.pid, self.fd, self.out = pid, fd, out

    @classmethod
    def start(cls, args: list[str], out: str | None) -> _Lister | None:
        """Fork the lister (``out``: where to list the distributions, None for no list).

        None without ``os.fork``: the caller does it all itself.
        """
        if not hasattr(os, "fork"):
            return None
        path = list(sys.path)
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(read_fd)
                data = json.dumps(common.plugin_packages(args)).encode()
                message = len(data).to_bytes(8, "big") + data
                while message:
                    message = message[os.write(write_fd, message):]
                os.close(write_fd)
                if out is not None:
                    common.write_result(out, {"distributions": common.list_distributions(path)})
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        return cls(pid, read_fd, out)

    def packages(self) -> list[str] | None:
        """The plugin packages the lister found; None if it died first (the caller scans)."""
        head = _read_exactly(self.fd, 8)
        data = _read_exactly(self.fd, int.from_bytes(head, "big")) if len(head) == 8 else b""
        os.close(self.fd)
        try:
            found = json.loads(data)
        except ValueError:
            return None
        return [str(name) for name in found] if isinstance(found, list) else None

    def finish(self) -> list[dict[str, Any]] | None:
        """Wait for the lister; its list, or None if it wrote none (the lock probe lists them)."""
        with contextlib.suppress(ChildProcessError):  # a plugin module reaped it: still read
            os.waitpid(self.pid, 0)
        if self.out is None:
            return None
        try:
            with open(self.out, encoding="utf-8") as fh:
                listed: list[dict[str, Any]] = json.load(fh)["distributions"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return listed


def main(argv: list[str]) -> None:
    """Regenerate, then write the result: caches written, old caches removed, errors."""
    out, args = argv[1], argv[2:]
    hygiene: tuple[float, int] | None = None
    distributions = False
    while args[:1] in (["--hygiene"], ["--distributions"]):
        if args[0] == "--hygiene":
            hygiene, args = (float(args[1]), int(args[2])), args[3:]
        else:
            distributions, args = True, args[1:]
    # What a fresh interpreter sees, before anything imported here could change it: a plugin
    # module may install an import hook or finder, and distributions() asks every finder.
    scan = args[:1] != [shared.EXACTLY]
    lister = (_Lister.start(args, f"{out}.distributions.json" if distributions else None)
              if distributions or scan else None)
    result: dict[str, Any] = {"packages": [], "caches": [], "removed": [], "errors": [],
                              "freshness": [], "hygiene": None}
    if distributions and lister is None:
        result["distributions"] = common.list_distributions(list(sys.path))
    try:
        _main(out, hygiene, args, lister, result)
    finally:
        if lister is not None:
            listed = lister.finish()
            if listed is not None:
                result["distributions"] = listed
    common.write_result(out, result)


def _packages(args: list[str], lister: _Lister | None) -> list[str]:
    """The plugin packages: the lister's (found while Twisted was imported here), or scanned here."""
    found = lister.packages() if lister is not None else None
    return common.plugin_packages(args) if found is None else found


def _main(out: str, hygiene: tuple[float, int] | None, args: list[str], lister: _Lister | None,
          result: dict[str, Any]) -> None:
    """Regenerate (``main`` without the distributions); fills ``result``."""
    try:
        from twisted.python import log
    except ImportError as exc:
        result["packages"] = _packages(args, lister)
        result["errors"].append({"module": "twisted", "path": "",
                                 "error": f"Twisted is not importable: {common.describe(exc)}"})
        return
    if hygiene is not None:
        _load_hygiene().warm()  # what the helper starts from, whatever the packages are
    packages = _packages(args, lister)
    result["packages"] = packages
    # Forked before the observer below and before any plugin module is imported here.
    helper = (None if hygiene is None
              else _Hygiene.start(packages, *hygiene, f"{out}.hygiene.json", result))
    logged: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        # getCache logs an unwritable cache at info level, and import errors as errors.
        text = log.textFromEventDict(event)
        if text:
            logged.append(text.strip().splitlines()[-1])

    log.addObserver(observe)
    found = [(name, _find(name, result["errors"])) for name in packages]
    total = sum(len(modules) for _, got in found if got for _, modules in got[1])
    _say("MODULES", str(total * 2 if helper is not None else total))
    cost: dict[str, float] = {}
    # No cyclic collection during the imports and getCache here (~20% of their time): what
    # they produce does not depend on it, and this process ends right after (os._exit). The
    # hygiene children, forked from the helper, collect as usual.
    gc.disable()
    for name, got in found:
        if got is not None:
            _regenerate(name, *got, result, logged, cost)
    if not result["errors"]:
        # Every cache is written and final: what reads them may start (the consumer-bootstrap probe).
        _say("CACHES", " ".join(packages))
    if helper is not None:
        # Only a build that goes on to its probes needs the findings.
        helper.go(not result["errors"], cost)
    if helper is not None:
        result["hygiene"] = helper.finish()


if __name__ == "__main__":
    main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # A plugin may have started non-daemon threads on import: never wait for them.
    os._exit(0)
