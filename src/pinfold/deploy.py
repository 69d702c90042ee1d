"""``pinfold unpack`` and the host side of a pack: place, relocate, probe, switch; and ``check --path``.

A host has a Python and pinfold, nothing else: no env.yaml, no wheelhouse, no index. The
archive (:mod:`pinfold.pack`) is checked before anything is created (its ``.sha256`` when
there is one, its first member, the interpreter it was built for), then unpacked into a
new versioned directory behind ``DEST`` with the same machinery as a build
(:class:`~pinfold.envdir.Environments`: the build lock, the marker written first, the atomic
switch, the cleanup that keeps the previous environments for ``rollback``). The probes of
the packed record run on the new directory before ``DEST`` points to it: a damaged
archive, a full disk or a failing probe leaves ``DEST`` as it was, and the half-written
directory is removed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .envdir import Environments
from .errors import BuildError, PinfoldError, SpecError
from .interpreter import inspect_interpreter
from .manifest import write_manifest
from .pack import (
    PackInfo,
    Verified,
    extract,
    interpreter_mismatch,
    read_info,
    relocate,
    spec_for,
    verify_checksum,
)
from .paths import display_path
from .pipeline import check
from .record import STATE_FILE, read_record, write_record
from .results import BuildResult, OnEvent
from .runner import Runner

__all__ = ["UnpackResult", "check_at", "unpack"]


@dataclass(frozen=True, kw_only=True, slots=True)
class UnpackResult:
    """What ``pinfold unpack`` did."""

    file: Path
    #: ``DEST`` (a symlink) and the new versioned directory it points to.
    path: Path
    env_dir: Path
    digest: str
    verified: Verified
    #: Where the environment was built, and the files rewritten for its new place.
    built_at: str
    relocated: tuple[str, ...]
    #: The probes' run on the new directory (before the switch).
    probes: BuildResult
    #: Earlier environments the cleanup removed (the previous one is always kept).
    removed: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` fields."""
        checked = self.verified.checksum_file
        return {"file": str(self.file), "path": str(self.path), "env_dir": str(self.env_dir),
                "digest": self.digest, "sha256": self.verified.sha256,
                "sha256_file": None if checked is None else str(checked),
                "built_at": self.built_at, "relocated": list(self.relocated),
                "removed": [str(p) for p in self.removed], "warnings": list(self.warnings),
                "seconds": self.seconds, "facts": self.probes.outputs.to_json()}


def _host_python(info: PackInfo, runner: Runner) -> None:
    """Refuse a host whose interpreter is not the one the environment was built for."""
    python = info.python.executable
    built = f"{info.python.version} ({info.python.abi})"
    if not os.path.isfile(python):
        raise SpecError(f"the environment was built for the interpreter {python}, Python {built}; "
                        "this host has no such file (a virtualenv runs the interpreter it was "
                        "made from, at that path)",
                        tip=f"install Python {info.python.version} at {python} on this host; "
                            "nothing was changed")
    host = inspect_interpreter(python, runner)
    why = interpreter_mismatch(info, host.version, host.abi, host.markers, python)
    if why is not None:
        raise SpecError(why, tip="unpack on a host with the interpreter it was built for, or build "
                                 "and pack on one like this host; nothing was changed")


def unpack(
    file: Path,
    dest: Path,
    *,
    runner: Runner | None = None,
    on_event: OnEvent | None = None,
    wait: bool = True,
    keep: int = 3,
) -> UnpackResult:
    """Verify ``file``, place it as a new versioned directory behind ``dest``, probe it, switch.

    :class:`SpecError` (bad input, exit 2) for a damaged, hostile or foreign archive and for
    a host interpreter that does not match; :class:`BuildError` for a write error; a
    :class:`~pinfold.errors.ProbeError` when a probe fails. In every case ``dest`` is left
    as it was and the new directory removed.
    """
    runner = runner or Runner()
    start = time.monotonic()
    file, dest = Path(os.path.abspath(file)), Path(os.path.abspath(dest))
    if not file.is_file():
        raise SpecError(f"{display_path(file)}: no such archive", tip="give the file `pinfold pack` wrote")
    verified = verify_checksum(file)
    info = read_info(file)
    _host_python(info, runner)
    envs = Environments(dest)
    with envs.locked(wait=wait):
        env_dir = envs.new_dir()
        before = envs.cleanup(keep=keep)
        envs.create(env_dir)
        try:
            packed, record = extract(file, env_dir, info)
            moved = relocate(env_dir, packed, dest)
            if moved.manifest.digest != info.digest:
                raise BuildError(f"{env_dir} does not have the packed digest after relocation "
                                 f"({moved.manifest.digest}, packed {info.digest})",
                                 tip="report this as a bug in pinfold; the previous environment "
                                     "is unchanged")
            write_manifest(env_dir, moved.manifest)
            write_record(env_dir, replace(record, packed=info.to_json()))
            spec = spec_for(info, dest, where=env_dir / STATE_FILE)
            probed = check(spec, on_event=on_event, runner=runner, env_dir=env_dir)
            envs.switch(env_dir)
        except BaseException:
            # Nothing half-written stays behind; `dest` still points at the previous environment.
            envs.discard(env_dir)
            raise
        after = envs.cleanup(keep=keep)
    warnings = [*before.warnings, *after.warnings, *probed.warnings]
    warnings += [f"{rel} still names the folder it was built in ({info.built_at}): it is not on "
                 "pinfold's relocation list" for rel in moved.leftovers]
    return UnpackResult(file=file, path=dest, env_dir=env_dir, digest=info.digest, verified=verified,
                        built_at=info.built_at, relocated=moved.files, probes=probed,
                        removed=(*before.removed, *after.removed), warnings=tuple(warnings),
                        seconds=time.monotonic() - start)


def check_at(dest: Path, *, runner: Runner | None = None, on_event: OnEvent | None = None,
             files_only: bool = False) -> BuildResult:
    """``pinfold check --path DEST``: the probes of an unpacked environment, without env.yaml."""
    dest = Path(os.path.abspath(dest))
    current = Environments(dest).current()
    if current is None:
        raise SpecError(f"there is no environment at {dest}",
                        tip="`pinfold unpack FILE --path DEST` places one")
    record = read_record(current)
    if record is None or record.packed is None:
        raise SpecError(f"{dest} was not placed by `pinfold unpack`: its probes are in its env.yaml",
                        tip="run `pinfold check ENV.YAML` with the env.yaml it was built from")
    try:
        info = PackInfo.from_json(record.packed)
    except (KeyError, TypeError, ValueError) as exc:
        raise PinfoldError(f"{current / STATE_FILE}: its pack document cannot be read ({exc})",
                           tip="unpack the archive again") from None
    spec = spec_for(info, dest, where=current / STATE_FILE)
    return check(spec, on_event=on_event, runner=runner, files_only=files_only)
