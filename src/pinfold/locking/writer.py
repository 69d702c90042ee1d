"""Lock files as pinfold writes them: a header, the needs record, then sorted pins.

pinfold renders the files itself (pip-compile only chooses the pins), so their bytes
depend on nothing but the pins, their hashes and annotations, and the needs: no
dates, no versions of pinfold, no absolute paths. Locking twice against the same index
gives byte-identical files. Both files are written only after both were computed,
each through a temporary file and ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from ..locks import Pin
from .needs import render_record

__all__ = ["render_lock", "write_files"]

_RUNTIME_HEADER = """\
#
# The runtime lock of {spec}, written by `pinfold lock` from its `needs`: exact pins
# with the hash of every artifact the index holds for them. Do not edit it by hand:
# change the needs and run `pinfold lock` again (`--upgrade-package NAME` moves one pin,
# `--upgrade` moves all). `pinfold build` refuses it once the needs below change.
#
"""

_BUILD_HEADER = """\
#
# The build lock of {spec}, written by `pinfold lock`: every build dependency of the
# sdists and develop trees of the runtime lock (build-system.requires and what each build
# backend asked for, e.g. setup_requires), their own dependencies and build dependencies
# included. `# via` names who needs each. pip gets it as --build-constraint and fails
# closed on anything missing. Regenerate it with `pinfold lock`.
#
"""


def _render_pin(pin: Pin) -> list[str]:
    head = f"{pin.name}=={pin.version}" + (f" ; {pin.marker}" if pin.marker else "")
    hashes = sorted(pin.hashes)
    lines = [f"{head} \\"] if hashes else [head]
    lines += [f"    --hash={h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes)]
    if len(pin.via) == 1:
        lines.append(f"    # via {pin.via[0]}")
    elif pin.via:
        lines.append("    # via")
        lines += [f"    #   {v}" for v in pin.via]
    return lines


def render_lock(kind: str, spec_name: str, key: str, items: Sequence[str], pins: Sequence[Pin]) -> str:
    """The text of a lock: ``kind`` is "runtime" or "build"; pins sorted by name."""
    header = (_RUNTIME_HEADER if kind == "runtime" else _BUILD_HEADER).format(spec=spec_name)
    lines = [*header.splitlines(), *render_record(key, list(items)), "#"]
    for pin in sorted(pins, key=lambda p: p.name):
        lines += _render_pin(pin)
    return "\n".join(lines) + "\n"


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temporary file next to ``path``, open for writing, as a normal file is made.

    Not ``tempfile.mkstemp``: it makes 0600 files, and a lock is a file to commit and
    share. Mode 0666 filtered by the caller's umask is what any editor would create.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


def write_files(files: Sequence[tuple[Path, str]]) -> list[Path]:
    """Write each (path, text) whose content changed; all temporary files first, then renames.

    A failure before the renames leaves every file as it was. Returns the paths written.
    """
    todo = []
    for path, text in files:
        try:
            if path.read_text(encoding="utf-8") == text:
                continue  # unchanged: keep the file (and its mtime) as it is
        except (OSError, UnicodeDecodeError):
            pass
        todo.append((path, text))
    temps: list[tuple[Path, Path]] = []
    try:
        for path, text in todo:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _create_temp(path)
            temps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            # A lock that replaces a file keeps that file's mode; a new one has the mode
            # the umask gives (the temporary file was created with it).
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    return [path for path, _ in todo]
