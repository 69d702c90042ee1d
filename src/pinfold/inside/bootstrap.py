"""A consumer's bootstrap, the seed bug's exact path: ``installReactor(name)`` first thing.

Usage: ``python -I -B _launch.py bootstrap.py RESULT.json REACTOR [--exactly] [PACKAGE ...]``.
This is what an Ampoule worker does before anything else. Before Twisted is imported, an audit hook
refuses every write into the plugin folders (as a read-only deployed tree would, and
unlike ``chmod``, also for root), so a stale or missing cache cannot be repaired as a
side effect. Then ``twisted.application.reactors.installReactor(REACTOR)`` must
succeed, import only plugin modules that provide reactors, and leave every cache
exactly as it was.
"""

from __future__ import annotations

import errno
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

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
#: Audit events that change a folder, and which of their arguments are paths.
_PATH_EVENTS = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.utime": 1, "os.truncate": 1,
                "os.chmod": 1, "os.chown": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2}


class ReadOnlyFolders:
    """An audit hook that refuses writes into some folders and to any ``dropin.cache*``."""

    def __init__(self, folders: set[str]) -> None:
        self.folders = folders
        #: What was refused: ``event path``.
        self.refused: list[str] = []

    def _paths(self, event: str, args: tuple[Any, ...]) -> list[object]:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+"))
            return [path] if writing else []
        return list(args[: _PATH_EVENTS.get(event, 0)])

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        for path in self._paths(event, args):
            if not isinstance(path, (str, bytes, os.PathLike)):
                continue  # a file descriptor
            full = os.path.abspath(os.fsdecode(path))
            if os.path.dirname(full) in self.folders or os.path.basename(full).startswith(shared.CACHE):
                self.refused.append(f"{event} {full}")
                # OSError is what Twisted expects from a read-only folder; it then goes on.
                raise PermissionError(errno.EROFS, "refused by pinfold: plugin folders are read-only "
                                                   "in this probe", full)


def _cache_states(folders: set[str]) -> dict[str, list[int] | None]:
    states: dict[str, list[int] | None] = {}
    for folder in sorted(folders):
        path = os.path.join(folder, shared.CACHE)
        try:
            st = os.stat(path)
        except OSError:
            if os.path.isdir(folder):
                states[path] = None
            continue
        states[path] = [st.st_mtime_ns, st.st_size, st.st_ino]
    return states


def _plugin_modules(packages: list[str]) -> dict[str, bool]:
    """Plugin modules imported so far -> whether they provide a reactor installer."""
    from twisted.application.reactors import IReactorInstaller

    found = {}
    for name, module in list(sys.modules.items()):
        if module is not None and any(name.startswith(f"{p}.") for p in packages):
            found[name] = any(IReactorInstaller.providedBy(v) for v in list(vars(module).values()))
    return found


def main(argv: list[str]) -> None:
    """Refuse writes, install the reactor, then write what happened."""
    out, reactor_name, listed = argv[1], argv[2], argv[3:]
    packages = common.plugin_packages(listed)  # reads files only: Twisted is not imported yet
    folders = common.candidate_folders(packages)
    before = _cache_states(folders)
    guard = ReadOnlyFolders(folders)
    sys.addaudithook(guard)
    result: dict[str, Any] = {"packages": packages, "reactor": reactor_name, "error": None}
    logged: list[str] = []
    try:
        from twisted.python import log

        log.addObserver(lambda event: logged.extend(
            [log.textFromEventDict(event) or ""] if event.get("isError") else []))
        from twisted.application import reactors

        installed = reactors.installReactor(reactor_name)
        result["installed"] = f"{type(installed).__module__}.{type(installed).__name__}"
    except BaseException as exc:
        result["error"] = common.describe(exc)
        result["where"] = common.short(common.where(exc))
    result["plugin_modules"] = _plugin_modules(packages)
    result["refused"] = guard.refused
    result["changed"] = [path for path, state in _cache_states(folders).items()
                         if before.get(path) != state]
    result["logged"] = [line.strip().splitlines()[-1] for line in logged if line.strip()]
    common.write_result(out, result)


if __name__ == "__main__":
    main(sys.argv)
    sys.stdout.flush()
    # A reactor is installed, and plugins may have started threads: do not wait on them.
    os._exit(0)
