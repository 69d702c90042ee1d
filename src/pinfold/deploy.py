"""``pinfold unpack`` and the host side of a pack: place, relocate, probe, switch; and ``check --path``.

A host has a Python and pinfold, nothing else: no env.yaml, no wheelhouse, no index. The
archive (:mod:`pinfold.pack`) is checked before anything is created (its ``.sha256`` when
there is one, its first member, the interpreter: the one it was built for, or the host's
own copy of it at another path, ``--python``), then unpacked into a
new versioned directory behind ``DEST`` with the same machinery as a build
(:class:`~pinfold.envdir.Environments`: the build lock, the marker written first, the atomic
switch, the cleanup that keeps the previous environments for ``rollback``). The probes of
the packed record run on the new directory before ``DEST`` points to it: a damaged
archive, a full disk or a failing probe leaves ``DEST`` as it was, and the half-written
directory is removed.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from .envdir import PENDING, Environments
from .errors import BuildError, PinfoldError, SpecError
from .interpreter import inspect_interpreter
from .manifest import write_manifest
from .pack import (
    HostPython,
    PackInfo,
    Verified,
    extract,
    interpreter_mismatch,
    read_info,
    relocate,
    spec_for,
    verify_checksum,
)
from .paths import display_path, write_atomic
from .pipeline import check
from .record import STATE_FILE, PythonRecord, read_record, write_record
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
    #: The interpreter it runs on this host, and the one the pack was built with.
    python: PythonRecord
    built_for: str
    #: The probes' run on the new directory (before the switch).
    probes: BuildResult
    #: Earlier environments the cleanup removed (the previous one is always kept; the spare
    #: folders a build's cleanup kept are removed too, and not listed).
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
                "python": {"executable": self.python.executable, "version": self.python.version,
                           "abi": self.python.abi, "built_for": self.built_for},
                "removed": [str(p) for p in self.removed], "warnings": list(self.warnings),
                "seconds": self.seconds, "facts": self.probes.outputs.to_json()}


_PREFIXES = "import sys; print(sys.prefix); print(sys.base_prefix); print(sys.base_exec_prefix)"


@dataclass(frozen=True, kw_only=True, slots=True)
class _Host:
    """The interpreter chosen on the host, checked against the pack."""

    python: HostPython
    record: PythonRecord


def _chosen(info: PackInfo, python: str | None) -> str:
    """The interpreter to run the environment with, as an absolute path (symlinks kept)."""
    built = f"Python {info.python.version} ({info.python.abi})"
    if python is None:
        packed = info.python.executable
        if not os.path.isfile(packed):
            raise SpecError(f"the environment was built for the interpreter {packed}, {built}; "
                            "this host has no such file",
                            tip=f"give the host's own Python {info.python.version} with --python "
                                "PYTHON (or install it at that path); nothing was changed")
        return packed
    # A bare name is looked up on PATH, as a shell would; a path is taken as given.
    found = shutil.which(python) if os.sep not in python else python
    if found is None or not os.path.isfile(found):
        where = "on PATH" if os.sep not in python else "on this host"
        raise SpecError(f"--python {python}: there is no such interpreter {where}",
                        tip=f"give the path of a {built} interpreter on this host; nothing "
                            "was changed")
    if not os.access(found, os.X_OK):
        raise SpecError(f"--python {python}: {found} is not executable",
                        tip=f"give the path of a {built} interpreter on this host; nothing "
                            "was changed")
    return os.path.abspath(found)


def _host_python(info: PackInfo, runner: Runner, python: str | None) -> _Host:
    """The host interpreter to use; refused when it is not the one the environment was built for."""
    chosen = _chosen(info, python)
    named = f"--python {chosen}" if python is not None else chosen
    tip = (f"give this host's Python {'.'.join(info.python.version.split('.')[:2])} "
           f"({info.python.abi}) with --python PYTHON, or build and pack on a host like this "
           "one; nothing was changed")
    try:
        host = inspect_interpreter(chosen, runner)
        lines = runner.run([chosen, "-I", "-c", _PREFIXES], what=f"asking {chosen} for its prefix",
                           timeout=60).output.strip().splitlines()
    except BuildError as exc:
        raise SpecError(f"{named}: {exc.summary}", exc.problems, tip=tip) from None
    why = interpreter_mismatch(info, host.version, host.abi, host.markers, chosen)
    if why is not None:
        raise SpecError(why, tip=tip)
    if len(lines) < 3:
        raise SpecError(f"{named}: it did not say its prefix", tip=tip)
    prefix, base_prefix, base_exec_prefix = lines[-3:]
    # The name given (a symlink stays one: the host's operator chose it), unless it is a
    # virtualenv's python or a launcher (a pyenv shim): then the interpreter behind it.
    same = os.path.realpath(host.executable) == os.path.realpath(chosen)
    executable = chosen if same and prefix == base_prefix else host.executable
    return _Host(python=HostPython(executable=executable, prefix=base_prefix,
                                   exec_prefix=base_exec_prefix),
                 record=PythonRecord(executable=executable, version=host.version, abi=host.abi,
                                     markers=dict(host.markers)))


def unpack(
    file: Path,
    dest: Path,
    *,
    runner: Runner | None = None,
    on_event: OnEvent | None = None,
    wait: bool = True,
    keep: int = 3,
    python: str | None = None,
) -> UnpackResult:
    """Verify ``file``, place it as a new versioned directory behind ``dest``, probe it, switch.

    :class:`SpecError` (bad input, exit 2) for a damaged, hostile or foreign archive and for
    a host interpreter that does not match; :class:`BuildError` for a write error; a
    :class:`~pinfold.errors.ProbeError` when a probe fails. In every case ``dest`` is left
    as it was and the new directory removed. ``python``: the host's interpreter to run it
    with (a path, or a name on PATH), by default the one it was built with, at that path.
    """
    runner = runner or Runner()
    start = time.monotonic()
    file, dest = Path(os.path.abspath(file)), Path(os.path.abspath(dest))
    if not file.is_file():
        raise SpecError(f"{display_path(file)}: no such archive", tip="give the file `pinfold pack` wrote")
    try:
        # Opened once: what is checked is what is unpacked, even if the path is replaced meanwhile.
        fh = open(file, "rb")  # noqa: SIM115 (closed by the `with fh` below)
    except OSError as exc:
        raise SpecError(f"cannot read {display_path(file)}: {exc.strerror or exc}",
                        tip="give the path of an archive `pinfold pack` wrote") from None
    with fh:
        return _unpack(file, fh, dest, runner=runner, on_event=on_event, wait=wait, keep=keep,
                       python=python, start=start)


def _unpack(file: Path, fh: IO[bytes], dest: Path, *, runner: Runner, on_event: OnEvent | None,
            wait: bool, keep: int, python: str | None, start: float) -> UnpackResult:
    verified = verify_checksum(file, fh)
    info = read_info(file, fh)
    host = _host_python(info, runner, python)
    envs = Environments(dest)
    with envs.locked(wait=wait):
        env_dir = envs.new_dir()
        before = envs.cleanup(keep=keep)
        envs.create(env_dir)
        try:
            packed, record = extract(file, env_dir, info, fh=fh, sha256=verified.sha256)
            moved = relocate(env_dir, packed, dest, host.python, built_for=info.python.executable)
            if moved.manifest.digest != info.digest:
                # The packed manifest's path tokens do not describe its files as pinfold writes
                # them: an archive made or edited by something else (or a pinfold bug).
                raise SpecError(f"{display_path(file)}: relocated to {env_dir}, its files no longer "
                                f"give the packed digest ({moved.manifest.digest}, packed "
                                f"{info.digest}): its manifest does not describe them as pinfold does",
                                tip="pack it again with this pinfold (if `pinfold pack` made it, "
                                    "report this as a bug); the previous environment is unchanged")
            write_manifest(env_dir, moved.manifest)
            # The probes read the record; until they pass, PENDING says "not finished".
            write_atomic(env_dir / PENDING, b"probes not passed yet\n")
            write_record(env_dir, replace(record, python=host.record, packed=info.to_json()))
            spec = spec_for(info, dest, where=env_dir / STATE_FILE, python=host.record.executable)
            probed = check(spec, on_event=on_event, runner=runner, env_dir=env_dir)
            (env_dir / PENDING).unlink()
            envs.switch(env_dir)
        except BaseException:
            # Nothing half-written stays behind; `dest` still points at the previous environment.
            envs.discard(env_dir)
            raise
        after = envs.cleanup(keep=keep)
    warnings = [*before.warnings, *after.warnings, *probed.warnings]
    warnings += [f"{rel} still names the folder it was built in ({info.built_at}): it is not on "
                 "pinfold's relocation list" for rel in moved.leftovers]
    warnings += [f"{rel} names the interpreter it was built with ({info.python.executable}), not "
                 f"{host.python.executable}: pinfold does not rewrite it" for rel in moved.python_leftovers]
    return UnpackResult(file=file, path=dest, env_dir=env_dir, digest=info.digest, verified=verified,
                        built_at=info.built_at, relocated=moved.files, probes=probed,
                        python=host.record, built_for=info.python.executable,
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
    spec = spec_for(info, dest, where=current / STATE_FILE, python=record.python.executable)
    return check(spec, on_event=on_event, runner=runner, files_only=files_only)
