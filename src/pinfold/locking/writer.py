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
import tempfile
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
    temps: list[tuple[str, Path]] = []
    try:
        for path, text in todo:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            # mkstemp makes 0600 files; a lock is as readable as the file it replaces.
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
            os.chmod(tmp, mode)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    return [path for path, _ in todo]
