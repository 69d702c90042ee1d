"""Lock files as pinfold writes them: a header, the needs record, then sorted pins.

A lock whose file name says PEP 751 (``pylock.toml``, ``pylock.NAME.toml``) is written as
one (:mod:`pinfold.pylock`), any other as a pip requirements file; :func:`export_lock`
converts env.yaml's runtime lock from one format to the other (``pinfold export``).

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
from typing import Literal

from ..errors import Problem
from ..index import ArtifactIndex
from ..locks import Artifact, Lock, Pin, is_pylock
from ..pylock import LockedPackage, render_pylock
from ..spec import IndexSpec, Spec
from .errors import LockError
from .needs import digest, read_record

__all__ = ["ExportFormat", "export_lock", "render_lock", "write_files"]

#: The formats ``pinfold export`` writes.
ExportFormat = Literal["requirements", "pylock"]

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


_PYLOCK_NOTE = """\
A PEP 751 lock: pip (`pip install -r`) and uv (`uv pip sync`) install it as it is.
pinfold itself installs its pins from env.yaml's index only (the paths and URLs below
are where they were found), and keeps under [tool.pinfold] what PEP 751 has no field
for: the needs record, `via`, the hashes of artifacts this index does not hold."""

_PYLOCK_BUILD_NOTE = """\
PEP 751 has no place for build dependencies: this is pinfold's build lock in PEP 751's
format, for pinfold (it hands the pins to pip and uv as build constraints), not a lock
to install. [tool.pinfold] keeps the needs record, `via`, and the hashes of artifacts
this index does not hold."""


def _header(kind: str, spec_name: str) -> list[str]:
    return (_RUNTIME_HEADER if kind == "runtime" else _BUILD_HEADER).format(spec=spec_name).splitlines()


def _render_text(kind: str, spec_name: str, record: tuple[str, str, Sequence[str]] | None,
                 pins: Sequence[Pin]) -> str:
    lines = _header(kind, spec_name)
    if record is not None:
        key, recorded, items = record
        lines += [f"# {key}: {recorded}", *(f"#     {i}" for i in sorted(items))]
    lines.append("#")
    for pin in sorted(pins, key=lambda p: p.name):
        lines += _render_pin(pin)
    return "\n".join(lines) + "\n"


def _artifacts(pin: Pin, index: ArtifactIndex | None) -> tuple[Artifact, ...]:
    """The files that carry ``pin``'s hashes: the index's first, then those its pylock named."""
    found: dict[str, Artifact] = {}
    for f in index.files(pin.name, pin.version) if index is not None else []:
        assert index is not None
        try:
            mine = index.digests(f, pin.hashes) & pin.hashes
        except OSError:
            continue  # an index file that cannot be read now: its hash stays under tool.pinfold
        if mine:
            path = f.local_path()
            place = str(path.absolute()) if path is not None else f.location.partition("#")[0]
            found.setdefault(f.filename, Artifact(f.filename, place, frozenset(mine)))
    for a in pin.artifacts:
        if a.filename not in found and a.hashes <= pin.hashes:
            found[a.filename] = a
    return tuple(found[n] for n in sorted(found))


def _render_pylock(kind: str, spec_name: str, record: tuple[str, str, Sequence[str]] | None,
                   pins: Sequence[Pin], *, base: Path, index: IndexSpec | None) -> str:
    artifact_index = ArtifactIndex(index) if index is not None else None
    packages, problems = [], []
    for pin in sorted(pins, key=lambda p: p.name):
        arts = _artifacts(pin, artifact_index)
        if not arts and index is not None:  # without an index: a dry run's text, never written
            problems.append(Problem(str(pin), "no artifact of it in the index: a PEP 751 lock names "
                                              "the file of every package"))
        packages.append(LockedPackage(name=pin.name, version=pin.version, marker=pin.marker,
                                      artifacts=arts, hashes=pin.hashes, via=pin.via))
    if problems:
        raise LockError("cannot write a pylock", problems,
                        tip="fill the wheelhouse (`pinfold fetch`) or write a requirements lock")
    note = _PYLOCK_NOTE if kind == "runtime" else _PYLOCK_BUILD_NOTE
    header = [line.removeprefix("#").strip().replace("`# via`", "`via`")
              for line in _header(kind, spec_name)[1:-1]]
    records = {record[0]: (record[1], record[2])} if record is not None else {}
    return render_pylock(header=["", *header, "", *note.splitlines(), ""], packages=packages,
                         base=base, records=records)


def render_lock(kind: str, spec_name: str, key: str, items: Sequence[str], pins: Sequence[Pin], *,
                path: Path | None = None, index: IndexSpec | None = None) -> str:
    """The text of a lock: ``kind`` is "runtime" or "build"; pins sorted by name.

    When ``path``'s name says PEP 751 the lock is a pylock, whose artifacts are looked
    up in ``index`` (and named relative to ``path``'s folder); else a requirements file.
    """
    record = (key, digest(list(items)), list(items))
    if path is not None and is_pylock(path):
        return _render_pylock(kind, spec_name, record, pins, base=path.parent, index=index)
    return _render_text(kind, spec_name, record, pins)


def export_lock(spec: Spec, fmt: ExportFormat, target: Path | None) -> str:
    """env.yaml's runtime lock, converted to ``fmt``: the same pins, hashes, markers and
    needs record. A pylock names its artifacts relative to ``target``'s folder (the working
    directory when it goes to stdout)."""
    lock: Lock = spec.requirements
    recorded = read_record(lock.path, "needs")
    record = (recorded.key, recorded.digest, recorded.items) if recorded is not None else None
    if fmt == "pylock":
        base = (target.parent if target is not None else Path()).absolute()
        return _render_pylock("runtime", spec.file.name, record, lock.pins, base=base, index=spec.index)
    return _render_text("runtime", spec.file.name, record, lock.pins)


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
