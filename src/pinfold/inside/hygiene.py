"""Import each plugin module alone and record what the import did.

Usage: ``python -I -B _launch.py hygiene.py RESULT.json TIMEOUT JOBS [--exactly] [PACKAGE ...]``.
The parent imports ``twisted.plugin`` and the plugin packages (to list their modules), then forks
one child per plugin module, ``JOBS`` at a time: a child imports its module and reports
whether ``twisted.internet.reactor`` got into ``sys.modules`` (and through which import
chain), the exception if the import failed, and the threads it started. A child that
does not finish within ``TIMEOUT`` seconds is killed.

Forking is as clean as a fresh interpreter as long as the parent holds no reactor and
no thread, and several times cheaper. The parent also imports the few Twisted modules
nearly every plugin imports (``WARM``), and ``twisted.internet.endpoints`` (with TLS:
~60 ms, what ``twisted_core``, ``strports`` and most service plugins import), which more than
halves the children's work; that is safe because the parent checks it still has no reactor
and no thread before forking: a finding can only come from the plugin module's own imports
(none of these imports the reactor, so an import chain to it never runs through their
module code).

The plugins stage's script (``regenerate.py``) loads this file by path and runs the same
children from its own interpreter (:func:`prepare`, then :func:`import_each` in a process
forked before it imports any plugin module), so a build imports Twisted once for both.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import json
import os
import selectors
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from pinfold.inside import _common as common
else:
    # Loaded once, by path, by _launch.py (see pinfold.target).
    common = sys.modules["_pinfold_common"]

REACTOR = "twisted.internet.reactor"
#: Imported by the parent before forking (see the module docstring); none installs a reactor.
WARM = ("twisted.internet.defer", "twisted.application.service", "twisted.python.usage",
        "twisted.internet.endpoints")


class _ReactorTracer:
    """A meta path finder that finds nothing: it notes who first imports the reactor."""

    def __init__(self) -> None:
        self.chain: list[str] | None = None

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname == REACTOR and self.chain is None:
            skip = (os.path.dirname(importlib.__file__), os.path.dirname(os.path.abspath(__file__)))
            self.chain = [f"{common.short(f.filename)}:{f.lineno}" for f in traceback.extract_stack()
                          if not f.filename.startswith(("<", *skip))]
        return None


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def _import_alone(modname: str) -> dict[str, Any]:
    """In the child: import one module; report reactor, error and threads."""
    threads_before = {t.ident for t in threading.enumerate()}
    native_before = _native_threads()
    tracer = _ReactorTracer()
    sys.meta_path.insert(0, tracer)
    report: dict[str, Any] = {"module": modname, "error": None, "where": ""}
    start = time.monotonic()
    try:
        importlib.import_module(modname)
    except BaseException as exc:  # SystemExit from a plugin is a finding too
        report["error"] = common.describe(exc)
        report["where"] = common.short(common.where(exc))
    report["import_seconds"] = time.monotonic() - start
    reactor = sys.modules.get(REACTOR)
    report["reactor"] = None if reactor is None else f"{type(reactor).__module__}.{type(reactor).__name__}"
    report["chain"] = tracer.chain or []
    report["threads"] = sorted(t.name for t in threading.enumerate() if t.ident not in threads_before)
    report["native_threads"] = max(0, _native_threads() - native_before)
    return report


def _child(modname: str, fd: int) -> None:
    try:
        data = json.dumps(_import_alone(modname)).encode()
    except BaseException as exc:
        data = json.dumps({"module": modname, "error": f"probe failed: {common.describe(exc)}"}).encode()
    while data:
        data = data[os.write(fd, data):]
    os._exit(0)


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"


def import_each(modules: list[str], timeout: float, jobs: int,
                on_done: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Fork a child per module, ``jobs`` at a time; collect their reports from pipes.

    ``on_done`` hears the name of each module whose child has finished.
    """
    pending = list(modules)
    running: dict[int, tuple[int, str, float, list[bytes]]] = {}
    reports: list[dict[str, Any]] = []
    selector = selectors.DefaultSelector()

    def finish(fd: int, report: dict[str, Any] | None, *, kill: bool = False) -> None:
        pid, modname, started, chunks = running.pop(fd)
        selector.unregister(fd)
        os.close(fd)
        if kill:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if report is None:
            try:
                report = json.loads(b"".join(chunks))
            except ValueError:
                report = {"module": modname, "error": "the interpreter exited during the import "
                                                      f"({_exit_text(status)})"}
        report["seconds"] = time.monotonic() - started
        reports.append(report)
        if on_done is not None:
            on_done(modname)

    # Everything alive now is the state every child starts from: out of the collector's reach,
    # a child's collections never touch (and so never copy) the pages it lives on. Nothing
    # is imported or run for it; a child frees what it creates as usual.
    gc.freeze()
    while pending or running:
        while pending and len(running) < jobs:
            modname = pending.pop(0)
            read_fd, write_fd = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _child(modname, write_fd)
            os.close(write_fd)
            running[read_fd] = (pid, modname, time.monotonic(), [])
            selector.register(read_fd, selectors.EVENT_READ)
        deadline = min(started + timeout for _, _, started, _ in running.values())
        for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
            fd = int(key.fd)
            chunk = os.read(fd, 1 << 16)
            if chunk:
                running[fd][3].append(chunk)
            else:
                finish(fd, None)
        now = time.monotonic()
        for fd, (_, modname, started, _) in list(running.items()):
            if now - started > timeout:
                finish(fd, {"module": modname,
                            "error": f"the import did not finish within {timeout:g} s"}, kill=True)
    return reports


def warm() -> None:
    """Import ``twisted.plugin`` and ``WARM``: what every child starts from, the packages aside."""
    import twisted.plugin  # noqa: F401

    for name in WARM:
        with contextlib.suppress(ImportError):  # an older Twisted may lack one
            importlib.import_module(name)


def prepare(packages: list[str], errors: list[str]) -> list[str] | None:
    """Import what every child starts from; return the plugin modules, or None if none can be judged.

    Appends to ``errors`` a plugin package that does not import, and the reason no module
    can be judged (the reactor installed already, or threads running: every child would
    inherit them).
    """
    warm()
    modules: list[str] = []
    for name in packages:
        try:
            importlib.import_module(name)
            modules += [modname for _, group in common.buckets(name) for _, modname, _ in group]
        except BaseException as exc:
            errors.append(f"{name}: cannot import the plugin package: "
                          f"{common.describe(exc)} ({common.where(exc)})")
    if REACTOR in sys.modules:
        errors.append(f"importing the plugin packages {', '.join(packages)} already "
                      "installs the reactor")
        return None
    if threading.active_count() > 1:
        errors.append(f"importing the plugin packages {', '.join(packages)} starts "
                      "threads: plugin modules cannot be imported in forked children")
        return None
    return modules


def main(argv: list[str]) -> None:
    """List the plugin modules, import each alone, write the reports."""
    out, timeout, jobs, listed = argv[1], float(argv[2]), int(argv[3]), argv[4:]
    packages = common.plugin_packages(listed)
    result: dict[str, Any] = {"packages": packages, "modules": [], "errors": []}
    modules = prepare(packages, result["errors"])
    if modules is not None:
        result["modules"] = import_each(modules, timeout, max(1, jobs))
    common.write_result(out, result)


if __name__ == "__main__":
    main(sys.argv)
