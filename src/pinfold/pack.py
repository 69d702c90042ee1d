"""``pinfold pack`` and the archive side of ``pinfold unpack``: one deterministic file per environment.

A pack is a tar archive (GNU format, compressed with gzip or xz) holding, in this order:

1. ``pinfold-pack.json`` (:class:`PackInfo`): what the environment is (digest, interpreter),
   where it was built, and what ``pinfold check`` needs on a host without env.yaml (the
   probes, the generated scripts, the plugin packages);
2. ``env/pinfold-manifest.json`` and ``env/pinfold.json``, the environment's manifest and record;
3. ``env/<path>`` for every entry of the manifest, sorted: exactly what the manifest lists.

Every member has the same fixed mtime (:data:`MTIME`), uid and gid 0, no user or group
name and no pax header; gzip's own header has mtime 0 and no file name. So the same
environment gives the same bytes, and two reproducible builds give the same pack. One
exception to "one mtime": Twisted re-imports a plugin module whose mtime is ``>=`` its
folder's ``dropin.cache``'s (see :mod:`pinfold.plugincache`), so each ``dropin.cache`` gets
:data:`MTIME` plus one second, the smallest offset that keeps it strictly newer.

Unpacking reads the archive as a stream and trusts nothing in it: every member name must
be relative and stay inside ``env/`` (no ``..``, no absolute name, no member below a
symlink member, no duplicate), only regular files and symlinks are accepted (no device,
FIFO or hard link, no setuid/setgid bit), a symlink must point inside the environment
(only ``bin/python*`` may name the interpreter's own folder), and every file must be the
size, mode and sha256 the packed manifest says, and the manifest complete. Files are
created with ``O_EXCL | O_NOFOLLOW``: nothing is ever written through a link.

Relocation (:func:`relocate`): every unpack makes a new versioned directory, so the paths
a virtualenv hard-codes always change. The manifest's tokens (:class:`~pinfold.manifest.Tokens`)
say which strings those are (the build's versioned directory, ``path``, ``path.d``, the
directory's name); they are rewritten in a bounded list of files only: ``pyvenv.cfg`` and
the regular text files directly in ``bin/`` (console scripts, pinfold's generated scripts,
``activate*``). A ``#!`` line that grows past the kernel's 127-byte limit is turned into
the ``/bin/sh`` trampoline pip itself writes for long paths. Bytecode is left alone:
Python corrects a code object's file name from the path it loads it from.

The interpreter (:class:`HostPython`, ``unpack --python``) may live at another path on the
host than at the builder, if it is the same implementation, ``X.Y`` version, ABI and
platform (:func:`interpreter_mismatch`). What names it is rewritten: the ``bin/python*``
links with an absolute target, and in ``pyvenv.cfg`` the values of
:data:`~pinfold.manifest.PYVENV_INTERPRETER_KEYS` (``home`` becomes its folder, the
``base-*prefix`` keys its ``sys.base_prefix``/``sys.base_exec_prefix``). The scripts
virtualenv, pip, uv and pinfold write in ``bin/`` name the environment's own
``bin/python`` (or find it beside themselves), never the base interpreter; one that does is
reported (:attr:`Relocated.python_leftovers`), not rewritten. The digest normalises exactly
these interpreter fields (:mod:`pinfold.manifest`), so it does not change.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from ._version import __version__
from .envdir import Environments
from .errors import BuildError, PinfoldError, Problem, SpecError
from .locks import Lock
from .manifest import (
    MANIFEST_FILE,
    PYTHON_LINK,
    PYVENV_INTERPRETER_KEYS,
    Entry,
    Manifest,
    Tokens,
    compare,
    read_manifest,
    scan,
)
from .paths import display_path, write_atomic
from .record import STATE_FILE, EnvRecord, PythonRecord, read_record
from .results import json_number, json_object, json_str, json_strs
from .spec import (
    FinalSpec,
    GeneratedScript,
    IndexSpec,
    PluginCacheSpec,
    ProbeSpec,
    ScriptProbe,
    Spec,
)
from .uptodate import layers_digest

__all__ = [
    "MTIME",
    "PACK_FILE",
    "HostPython",
    "PackInfo",
    "PackResult",
    "Verified",
    "default_name",
    "extract",
    "interpreter_mismatch",
    "pack",
    "read_info",
    "relocate",
    "spec_for",
    "verify_checksum",
]

#: The pack's first member, kept in an unpacked environment too (what ``check --path`` reads).
PACK_FILE = "pinfold-pack.json"
#: The folder of the environment's files inside the archive.
_ENV = "env/"
#: Every member's mtime: 2000-01-01T00:00:00Z (any fixed instant would do).
MTIME = 946684800
#: The pack document's layout version.
SCHEMA = 1
#: The largest pack document or bookkeeping file read into memory.
_SMALL = 64 << 20
_CHUNK = 1 << 20
#: The kernel reads at most this many bytes of a ``#!`` line (Linux: 127 after ``#!``).
_SHEBANG_MAX = 127

Compression = Literal["gz", "xz"]


# -- what a pack says about itself ---------------------------------------------------------


def _probe_items(items: tuple[ScriptProbe, ...]) -> list[dict[str, Any]]:
    return [{"argv": list(i.argv), "timeout": i.timeout} for i in items]


def check_doc(spec: Spec) -> dict[str, Any]:
    """What ``pinfold check`` reads of env.yaml, as JSON: the probes, plugin packages and
    generated scripts (a host has no env.yaml)."""
    probes = spec.final.probes
    return {
        "probes": {"enabled": probes.enabled, "reactor": probes.reactor,
                   "allow_reactor_import": list(probes.allow_reactor_import),
                   "imports": list(probes.imports), "scripts": _probe_items(probes.scripts),
                   "commands": _probe_items(probes.commands)},
        "plugin_packages": list(spec.final.plugin_caches.packages),
        "scripts": [{"name": s.name, "kind": s.kind, "target": s.target,
                     "extra_paths": [str(p) for p in s.extra_paths],
                     "probe": None if s.probe is None else list(s.probe)} for s in spec.scripts],
        "compile": spec.compile,
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class PackInfo:
    """``pinfold-pack.json``: the pack's first member."""

    #: The environment digest (``sha256:...``), the same as its manifest's and record's.
    digest: str
    #: ``path``'s name at the builder: the default archive name starts with it.
    name: str
    #: The versioned directory it was built in, and ``path`` there.
    built_at: str
    path: str
    #: The interpreter it was built for.
    python: PythonRecord
    #: What ``pinfold check`` needs of env.yaml (:func:`check_doc`).
    check: dict[str, Any]
    #: The pinfold that packed it.
    pinfold: str = __version__

    def to_json(self) -> dict[str, Any]:
        """The document's content."""
        return {"schema": SCHEMA, "digest": self.digest, "name": self.name, "built_at": self.built_at,
                "path": self.path, "python": self.python.to_json(), "check": self.check,
                "pinfold": self.pinfold}

    @classmethod
    def from_json(cls, data: object) -> PackInfo:
        """The inverse of :meth:`to_json`; raises ``KeyError``, ``TypeError`` or ``ValueError``."""
        data = json_object(data)
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unknown pack schema {data.get('schema')!r:.20}")
        return cls(digest=json_str(data["digest"]), name=json_str(data["name"]),
                   built_at=json_str(data["built_at"]), path=json_str(data["path"]),
                   python=PythonRecord.from_json(data["python"]), check=dict(json_object(data["check"])),
                   pinfold=json_str(data["pinfold"]))


def _probe_specs(data: object) -> tuple[ScriptProbe, ...]:
    if not isinstance(data, list):
        raise TypeError("expected a list")
    out = []
    for item in data:
        item = json_object(item)
        try:
            timeout = json_number(item["timeout"])
        except (TypeError, ValueError) as exc:  # a 400-digit number is not a float either
            raise TypeError(f"timeout: {exc}") from None
        out.append(ScriptProbe(argv=json_strs(item["argv"]), timeout=timeout))
    return tuple(out)


def spec_for(info: PackInfo, dest: Path, *, where: Path, python: str | None = None) -> Spec:
    """The spec ``pinfold check`` runs with at ``dest`` (``path``), built from a pack document.

    Only what the probes read is filled in; there is no lock file (the lock probe compares
    with the record) and no index. ``where`` is the document's file, for messages; ``python``
    the interpreter the environment runs on this host (``unpack --python``), by default the
    packed one.
    """
    try:
        doc = info.check
        probes = json_object(doc["probes"])
        scripts = []
        for s in doc["scripts"]:
            s = json_object(s)
            probe = s.get("probe")
            kind = json_str(s["kind"])
            if kind not in ("entry_point", "console_script", "interpreter", "test_runner"):
                raise ValueError(f"unknown script kind {kind!r:.20}")
            scripts.append(GeneratedScript(
                name=json_str(s["name"]), kind=kind, target=json_str(s["target"]),  # type: ignore[arg-type]
                extra_paths=tuple(Path(p) for p in json_strs(s["extra_paths"])),
                probe=None if probe is None else json_strs(probe)))
        final = FinalSpec(
            plugin_caches=PluginCacheSpec(packages=json_strs(doc["plugin_packages"])),
            probes=ProbeSpec(enabled=bool(probes["enabled"]), reactor=json_str(probes["reactor"]),
                             allow_reactor_import=json_strs(probes["allow_reactor_import"]),
                             imports=json_strs(probes["imports"]),
                             scripts=_probe_specs(probes["scripts"]),
                             commands=_probe_specs(probes["commands"])))
        compiled = doc["compile"]
        if not isinstance(compiled, bool):
            raise TypeError("compile: expected true or false")
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"{display_path(where)}: not a pack document pinfold can read ({exc})",
                        tip="unpack the archive again with this pinfold") from None
    return Spec(file=where, python=python or info.python.executable, path=dest, index=IndexSpec(),
                requirements=Lock(where, ()), build_requirements=None, final=final,
                scripts=tuple(scripts), compile=compiled)


# -- pack ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class PackResult:
    """What ``pinfold pack`` wrote."""

    file: Path
    checksum_file: Path
    sha256: str
    size: int
    digest: str
    env_dir: Path
    files: int

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` fields."""
        return {"file": str(self.file), "sha256_file": str(self.checksum_file), "sha256": self.sha256,
                "size": self.size, "digest": self.digest, "env_dir": str(self.env_dir),
                "files": self.files}


def default_name(name: str, digest: str) -> str:
    """``<path's name>-<12 hex digits of the digest>.tar.gz``."""
    return f"{name}-{digest.removeprefix('sha256:')[:12]}.tar.gz"


def _compression(file: Path) -> Compression:
    name = file.name
    if name.endswith((".tar.gz", ".tgz")):
        return "gz"
    if name.endswith((".tar.xz", ".txz")):
        return "xz"
    raise SpecError(f"-o {file}: the name must end in .tar.gz (or .tgz) or .tar.xz (or .txz)",
                    tip="the name says the compression; nothing was written")


def _member(name: str, *, size: int = 0, mode: int = 0o644, link: str | None = None,
            mtime: int = MTIME) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if link is not None:
        info.type, info.linkname, info.size, info.mode = tarfile.SYMTYPE, link, 0, 0o777
    return info


def _mtime_of(rel: str) -> int:
    # Twisted's rule (see the module docs): a plugin cache strictly newer than its modules.
    return MTIME + 1 if rel.endswith("/dropin.cache") else MTIME


class _Hashing(io.RawIOBase):
    """A file read for the archive, hashed on the way (what is packed is what was checked)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.hash, self.read_bytes = fh, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.hash.update(data)
        self.read_bytes += len(data)
        return data


@contextlib.contextmanager
def _compressed(raw: IO[bytes], how: Compression) -> Iterator[gzip.GzipFile | lzma.LZMAFile]:
    if how == "gz":
        # No file name and mtime 0 in the gzip header: nothing of this host or this moment.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            yield gz
    else:
        with lzma.LZMAFile(raw, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_SHA256, preset=6) as xz:
            yield xz


def _refuse(summary: str, problems: list[Problem] | None = None, *, tip: str) -> SpecError:
    return SpecError(summary, problems or [], tip=tip)


def pack(spec: Spec, output: Path | None = None) -> PackResult:
    """Write the current environment of ``spec`` as one archive, and ``<archive>.sha256`` beside it.

    Refused (:class:`SpecError`, nothing written) when there is no finished environment, it
    has no manifest, its files no longer match it, env.yaml changed since it was built, or
    it has develop trees (their editable installs point outside the environment).
    """
    envs = Environments(spec.path)
    if envs.current() is None:
        raise _refuse(f"there is no environment at {spec.path} to pack", tip="run `pinfold build` first")
    # Under the build lock: no build switches `path` and no cleanup removes what is being read.
    with envs.locked(wait=True):
        current = envs.current()
        if current is None:
            raise _refuse(f"there is no environment at {spec.path} to pack",
                          tip="run `pinfold build` first")
        return _pack(spec, current, output)


def _pack(spec: Spec, current: Path, output: Path | None) -> PackResult:
    record, manifest = read_record(current), read_manifest(current)
    if record is None or manifest is None or record.digest is None:
        raise _refuse(f"{current} has no manifest (built by an older pinfold): it cannot be packed",
                      tip="rebuild it (`pinfold build --fresh`), then pack")
    if record.develop or spec.develop:
        raise _refuse(f"{spec.path} has develop trees: their editable installs point to source "
                      "folders outside the environment, which a pack cannot carry",
                      tip="build the develop trees as wheels into the wheelhouse and lock them instead")
    if record.inputs.get("env.yaml") != layers_digest(spec):
        raise _refuse(f"{spec.file} changed since {current.name} was built: the pack would carry "
                      "probes the environment was not built with",
                      tip="run `pinfold build`, then pack")
    found = compare(manifest, current)
    if found:
        raise _refuse(f"{current} differs from its manifest: it is not what was built, and "
                      "will not be shipped", [Problem("", line) for line in found.lines()],
                      tip="rebuild it (`pinfold build --fresh`) to ship what the locks say")
    out = (output if output is not None else Path.cwd() / default_name(spec.path.name, record.digest))
    out = Path(os.path.abspath(out))
    how = _compression(out)
    info = PackInfo(digest=record.digest, name=spec.path.name, built_at=str(current),
                    path=str(spec.path), python=record.python, check=check_doc(spec))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as raw, _compressed(raw, how) as stream:
            _write_archive(stream, current, info, manifest)
        data_hash = _sha256_of(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"cannot write {display_path(out)}: {exc.strerror or exc}",
                         tip="choose a folder you can write to (-o FILE); nothing was written") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    checksum = out.with_name(out.name + ".sha256")
    # sha256sum's format: `sha256sum -c` checks it on any host.
    try:
        write_atomic(checksum, f"{data_hash}  {out.name}\n".encode())
    except OSError as exc:
        # An older checksum file left beside the new archive would make unpack refuse it.
        with contextlib.suppress(OSError):
            checksum.unlink()
        raise BuildError(f"{display_path(out)} was written, but not {display_path(checksum)}: "
                         f"{exc.strerror or exc}",
                         tip=f"free some space and pack again, or write it yourself: "
                             f"`sha256sum {out.name} > {checksum.name}`") from None
    return PackResult(file=out, checksum_file=checksum, sha256=data_hash, size=out.stat().st_size,
                      digest=record.digest, env_dir=current, files=len(manifest.entries))


def _write_archive(stream: gzip.GzipFile | lzma.LZMAFile, env_dir: Path, info: PackInfo,
                   manifest: Manifest) -> None:
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as tar:
        doc = (json.dumps(info.to_json(), indent=1, sort_keys=True) + "\n").encode()
        tar.addfile(_member(PACK_FILE, size=len(doc)), io.BytesIO(doc))
        for name in (MANIFEST_FILE, STATE_FILE):
            data = (env_dir / name).read_bytes()
            tar.addfile(_member(_ENV + name, size=len(data)), io.BytesIO(data))
        for rel in sorted(manifest.entries):
            entry = manifest.entries[rel]
            if entry.kind == "link":
                tar.addfile(_member(_ENV + rel, link=entry.target))
                continue
            with open(env_dir / rel, "rb") as fh:
                reader = _Hashing(fh)
                tar.addfile(_member(_ENV + rel, size=entry.size, mode=entry.mode, mtime=_mtime_of(rel)),
                            reader)
                if reader.hash.hexdigest() != entry.sha256 or fh.read(1):
                    raise _refuse(f"{env_dir / rel} changed while it was packed",
                                  tip="pack again once nothing writes into the environment")


def _sha256_of(path: Path, fh: IO[bytes] | None = None) -> str:
    h = hashlib.sha256()
    with contextlib.ExitStack() as stack:
        if fh is None:
            fh = stack.enter_context(open(path, "rb"))
        else:
            fh.seek(0)
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# -- unpack: the archive -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Verified:
    """What was checked of an archive before anything was unpacked."""

    #: sha256 of the archive file.
    sha256: str
    #: The checksum file it was compared with, or None when there was none beside it.
    checksum_file: Path | None


def verify_checksum(file: Path, fh: IO[bytes] | None = None) -> Verified:
    """The archive (``fh`` when given, from its start) against ``<file>.sha256`` when there is
    one (sha256sum's format)."""
    try:
        actual = _sha256_of(file, fh)
    except OSError as exc:
        raise SpecError(f"cannot read {display_path(file)}: {exc.strerror or exc}",
                        tip="give the path of an archive `pinfold pack` wrote") from None
    side = file.with_name(file.name + ".sha256")
    if not side.exists():
        return Verified(sha256=actual, checksum_file=None)
    try:
        words = side.read_text(encoding="utf-8", errors="replace")[:4096].split()
    except OSError as exc:
        raise SpecError(f"cannot read {display_path(side)}: {exc.strerror or exc}") from None
    expected = words[0].lower() if words else ""
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise SpecError(f"{display_path(side)}: not a sha256sum line (`<64 hex digits>  <name>`)",
                        tip="write it again with `sha256sum FILE > FILE.sha256`, or remove it")
    if expected != actual:
        raise SpecError(f"{display_path(file)} does not match {display_path(side)}: its sha256 is "
                        f"{actual}, the checksum file says {expected}",
                        tip="the archive was damaged or replaced in transit: copy it again; "
                            "nothing was changed")
    return Verified(sha256=actual, checksum_file=side)


def _damaged(file: Path, why: str) -> SpecError:
    return SpecError(f"{display_path(file)} is not an intact pinfold pack: {why}",
                     tip="copy the archive again (or pack it again); nothing was changed")


@contextlib.contextmanager
def _open_stream(file: Path, fh: IO[bytes] | io.RawIOBase | None = None) -> Iterator[tarfile.TarFile]:
    """The archive as a tar stream: from ``fh`` (the caller positions it) or by opening ``file``."""
    try:
        with (tarfile.open(file, mode="r|*") if fh is None
              else tarfile.open(fileobj=fh, mode="r|*")) as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib_errors(), lzma.LZMAError, gzip.BadGzipFile) as exc:
        raise _damaged(file, str(exc) or type(exc).__name__) from None


def zlib_errors() -> type[Exception]:
    """zlib's error type (a damaged gzip stream raises it)."""
    import zlib

    return zlib.error


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, file: Path) -> bytes:
    if not member.isreg() or member.size > _SMALL:
        raise _damaged(file, f"{member.name} is not a small regular file")
    fh = tar.extractfile(member)
    assert fh is not None
    data = fh.read()
    if len(data) != member.size:
        raise _damaged(file, f"{member.name} is cut short")
    return data


def read_info(file: Path, fh: IO[bytes] | None = None) -> PackInfo:
    """The pack document, the archive's first member (read without unpacking anything);
    ``fh``: the archive opened by the caller, read from its start."""
    if fh is not None:
        fh.seek(0)
    with _open_stream(file, fh) as tar:
        first = tar.next()
        if first is None or first.name != PACK_FILE:
            raise _damaged(file, f"its first member is not {PACK_FILE}")
        data = _read_small(tar, first, file)
    try:
        return PackInfo.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(file, f"{PACK_FILE}: {exc}") from None


def interpreter_mismatch(info: PackInfo, version: str, abi: str, markers: dict[str, str],
                         executable: str) -> str | None:
    """Why the host interpreter cannot run the packed environment (both named), or None."""
    built = info.python

    def facts(ver: str, cache_tag: str, m: dict[str, str]) -> tuple[str, ...]:
        return (m.get("implementation_name", ""), ".".join(ver.split(".")[:2]), cache_tag,
                m.get("sys_platform", ""), m.get("platform_machine", ""))

    def shown(ver: str, cache_tag: str, m: dict[str, str]) -> str:
        return (f"{m.get('implementation_name', '?')} {ver} ({cache_tag}, "
                f"{m.get('sys_platform', '?')} {m.get('platform_machine', '?')})")

    if facts(built.version, built.abi, built.markers) == facts(version, abi, markers):
        return None
    return (f"the environment was built for {shown(built.version, built.abi, built.markers)}, "
            f"{built.executable} on the builder; {executable} on this host is "
            f"{shown(version, abi, markers)}")


def _safe_rel(name: str) -> str | None:
    """The relative path of an ``env/`` member, or None when it is not a plain one inside."""
    if not name.startswith(_ENV) or "\0" in name or "\\" in name:
        return None
    rel = name[len(_ENV):]
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return rel


def _link_problem(rel: str, target: str, python: PythonRecord) -> str | None:
    if not target or "\0" in target:
        return "an empty link"
    if os.path.isabs(target):
        # A virtualenv's bin/python names the interpreter it was made from: that one only.
        home = os.path.dirname(python.executable)
        if PYTHON_LINK.fullmatch(rel) and os.path.dirname(os.path.normpath(target)) == home:
            return None
        return f"a link to {target}, outside the environment"
    # Only leading ".." climb: they climb real folders (nothing is unpacked below a link), so
    # the text says where the link goes. A ".." after a name could climb out of another link.
    named = False
    for part in target.split("/"):
        if part == ".." and named:
            return f"a link to {target}, with '..' after a name (it could climb out through a link)"
        named = named or part not in ("", ".", "..")
    resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../") or resolved == ".":
        return f"a link to {target}, outside the environment"
    return None


def extract(file: Path, env_dir: Path, info: PackInfo, *, fh: IO[bytes] | None = None,
            sha256: str | None = None) -> tuple[Manifest, EnvRecord]:
    """Unpack ``file`` into the empty (marked) ``env_dir``, checking every member (module docs).

    ``fh``: the archive opened once by the caller, read from its start (what was checked is
    what is unpacked even if the path is replaced meanwhile); ``sha256``: what its bytes must
    hash to, checked on the bytes read here (the file changed in place after its checksum
    was compared is caught too). Returns the packed manifest and record. :class:`SpecError`
    for a damaged or hostile archive, :class:`BuildError` when a file cannot be written (a
    full disk); the caller removes ``env_dir`` either way.
    """
    seen: set[str] = set()
    with contextlib.ExitStack() as stack:
        if fh is None:
            fh = stack.enter_context(open(file, "rb"))
        fh.seek(0)
        reader = _Hashing(fh)
        manifest, record_data = _extract_all(file, env_dir, info, reader, seen)
        while reader.read(_CHUNK):
            pass  # the rest of the file (tar's end blocks, padding): all of it is hashed
    if sha256 is not None and reader.hash.hexdigest() != sha256:
        raise _damaged(file, "it changed while it was being unpacked (its bytes no longer have "
                             "the sha256 checked first)")
    if manifest is None or not record_data:
        raise _damaged(file, "it has no manifest or no record")
    missing = sorted(set(manifest.entries) - seen)
    if missing:
        raise _damaged(file, f"{len(missing)} files of its manifest are missing, e.g. {missing[0]}")
    # Relocation rewrites what is in bin/ and pyvenv.cfg: both must be the environment's own.
    for name, kind in (("bin", stat.S_ISDIR), ("pyvenv.cfg", stat.S_ISREG)):
        try:
            if not kind(os.lstat(env_dir / name).st_mode):
                raise _damaged(file, f"env/{name} is not a real {'folder' if name == 'bin' else 'file'}")
        except FileNotFoundError:
            raise _damaged(file, f"it has no env/{name}: not a virtualenv") from None
    try:
        record = EnvRecord.from_json(json.loads(record_data))
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(file, f"its record cannot be read: {exc}") from None
    if record.digest != info.digest:
        raise _damaged(file, f"its record's digest is {record.digest}, its {PACK_FILE} says {info.digest}")
    return manifest, record


def _extract_all(file: Path, env_dir: Path, info: PackInfo, reader: io.RawIOBase,
                 seen: set[str]) -> tuple[Manifest | None, bytes]:
    """Every member of the archive read through ``reader``, checked and written (see extract);
    the manifest and the record's bytes found on the way."""
    manifest: Manifest | None = None
    record_data = b""
    with _open_stream(file, reader) as tar:
        for n, member in enumerate(tar):
            if n == 0:
                if member.name != PACK_FILE:
                    raise _damaged(file, f"its first member is not {PACK_FILE}")
                try:
                    same = PackInfo.from_json(json.loads(_read_small(tar, member, file))) == info
                except (ValueError, KeyError, TypeError):
                    same = False
                if not same:
                    raise _damaged(file, f"its {PACK_FILE} is not the one checked before unpacking")
                continue
            rel = _safe_rel(member.name)
            if rel is None:
                raise _damaged(file, f"member {member.name!r:.200} is not a relative name inside env/")
            if rel in seen:
                raise _damaged(file, f"member {member.name!r:.200} comes twice")
            # Folders are never members: a parent that is one is a link (or a file).
            if any("/".join(rel.split("/")[:i]) in seen for i in range(1, rel.count("/") + 1)):
                raise _damaged(file, f"member {member.name!r:.200} is below a symlink or a file")
            seen.add(rel)
            if rel in (MANIFEST_FILE, STATE_FILE):
                data = _read_small(tar, member, file)
                if rel == STATE_FILE:
                    record_data = data
                else:
                    try:
                        manifest = Manifest.from_json(json.loads(data))
                    except (ValueError, KeyError, TypeError) as exc:
                        raise _damaged(file, f"its manifest cannot be read: {exc}") from None
                    if manifest.digest != info.digest:
                        raise _damaged(file, f"its manifest's digest is {manifest.digest}, "
                                             f"its {PACK_FILE} says {info.digest}")
                continue
            if manifest is None or not record_data:
                raise _damaged(file, f"{member.name} comes before the manifest and the record")
            # What a member is comes first: a link out or a device is hostile, whatever the
            # manifest says.
            if member.issym() and rel in ("bin", "pyvenv.cfg"):
                raise _damaged(file, f"{member.name} is a symlink (it must be the environment's own)")
            if member.issym():
                why = _link_problem(rel, member.linkname, info.python)
                if why is not None:
                    raise _damaged(file, f"{member.name} is {why}")
            elif not member.isreg():
                raise _damaged(file, f"{member.name} is not a regular file or a symlink (a device, "
                                     "FIFO, folder or hard link)")
            entry = manifest.entries.get(rel)
            if entry is None:
                raise _damaged(file, f"{member.name} is not in the packed manifest")
            _extract_member(tar, member, rel, entry, env_dir, file)
    return manifest, record_data


#: What creating a member's file or link fails with when the archive, not the disk, is at
#: fault: a name taken already (pinfold's marker, a folder unpacked before) or a file as a folder.
_HOSTILE_ERRNOS = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP})


def _not_writable(path: Path, exc: OSError, file: Path) -> PinfoldError:
    """A write error: the archive's fault (exit 2) or the disk's (exit 1)."""
    if exc.errno in _HOSTILE_ERRNOS:
        return _damaged(file, f"{path.name} cannot be created there ({exc.strerror}): a member "
                              "clashes with another or with pinfold's own files")
    return BuildError(f"cannot write {path}: {exc.strerror or exc}",
                      tip="free some space (or fix the folder's permissions) and unpack again; "
                          "the previous environment is unchanged")


def _write(path: Path, fill: Callable[[IO[bytes]], object], mode: int, file: Path) -> None:
    """Create ``path`` (never through a link, never over a file) and fill it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
        os.chmod(path, mode)
    except OSError as exc:
        raise _not_writable(path, exc, file) from None


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, rel: str, entry: Entry,
                    env_dir: Path, file: Path) -> None:
    target = env_dir / rel
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _not_writable(target.parent, exc, file) from None
    if member.issym():
        if entry.kind != "link" or entry.target != member.linkname:
            raise _damaged(file, f"{member.name} is not the link its manifest lists")
        try:
            os.symlink(member.linkname, target)
        except OSError as exc:
            raise _not_writable(target, exc, file) from None
        return
    mode = stat.S_IMODE(member.mode)
    if mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
        raise _damaged(file, f"{member.name} has a setuid, setgid or sticky bit")
    if entry.kind != "file" or entry.size != member.size or entry.mode != mode:
        raise _damaged(file, f"{member.name} is not the file its manifest lists (size or mode)")
    source = tar.extractfile(member)
    assert source is not None
    digest = hashlib.sha256()

    def fill(fh: IO[bytes]) -> None:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            fh.write(chunk)

    _write(target, fill, mode, file)
    if digest.hexdigest() != entry.sha256:
        raise _damaged(file, f"{member.name} does not match its manifest (sha256)")
    mtime = _mtime_of(rel)
    os.utime(target, (mtime, mtime), follow_symlinks=False)


# -- relocation ----------------------------------------------------------------------------


def _token_text(tokens: Tokens, token: str) -> str | None:
    return next((text for text, tok in tokens.pairs if tok == token), None)


def _trampoline(data: bytes) -> bytes:
    """A ``#!`` line past the kernel's limit, as the ``/bin/sh`` trampoline pip writes."""
    if not data.startswith(b"#!") or data.startswith(b"#!/bin/sh\n"):
        return data
    line, _, rest = data.partition(b"\n")
    if len(line) - 2 <= _SHEBANG_MAX or b" " in line[2:]:
        return data
    return b"#!/bin/sh\n'''exec' " + line[2:] + b' "$0" "$@"\n' + b"' '''\n" + rest


@dataclass(frozen=True, kw_only=True, slots=True)
class HostPython:
    """The interpreter an unpacked environment runs (``unpack --python``), where it lives."""

    #: Its path as given (a symlink stays one: the host's operator chose that name).
    executable: str
    #: Its ``sys.base_prefix`` and ``sys.base_exec_prefix`` (``pyvenv.cfg``'s ``base-*``).
    prefix: str
    exec_prefix: str

    def pyvenv_values(self) -> dict[str, str]:
        """The value of each ``pyvenv.cfg`` key that names the interpreter."""
        values = {"home": os.path.dirname(self.executable), "executable": self.executable,
                  "base-executable": self.executable, "base-prefix": self.prefix,
                  "base-exec-prefix": self.exec_prefix}
        assert set(values) == set(PYVENV_INTERPRETER_KEYS)
        return values


def _pyvenv_for(data: bytes, python: HostPython) -> bytes:
    """``pyvenv.cfg`` with the keys naming the interpreter set to ``python``'s (only those present)."""
    values = python.pyvenv_values()
    lines = data.split(b"\n")
    for n, line in enumerate(lines):
        key, eq, _ = line.partition(b"=")
        name = key.strip().decode("utf-8", "replace").lower()
        if eq and name in values:
            lines[n] = key.rstrip() + b" = " + os.fsencode(values[name])
    return b"\n".join(lines)


def _repoint_links(env_dir: Path, python: HostPython) -> list[str]:
    """Point the ``bin/python*`` links that name the base interpreter at ``python``."""
    changed = []
    for link in sorted((env_dir / "bin").iterdir()):
        rel = link.relative_to(env_dir).as_posix()
        if not (PYTHON_LINK.fullmatch(rel) and link.is_symlink()):
            continue
        target = os.readlink(link)
        if os.path.isabs(target) and target != python.executable:
            link.unlink()
            os.symlink(python.executable, link)
            changed.append(rel)
    return changed


@dataclass(frozen=True, slots=True)
class Relocated:
    """What :func:`relocate` rewrote, and the manifest of the tree afterwards."""

    files: tuple[str, ...]
    manifest: Manifest
    #: Files outside the bounded list that still name the build's folder (bytecode excluded).
    leftovers: tuple[str, ...] = field(default=())
    #: Text files in ``bin/`` that name the interpreter the pack was built for, when another
    #: one was given (none that virtualenv, pip or uv write do).
    python_leftovers: tuple[str, ...] = field(default=())


def relocate(env_dir: Path, packed: Manifest, dest: Path, python: HostPython | None = None,
             *, built_for: str = "") -> Relocated:
    """Rewrite the build's paths to ``env_dir``'s in the bounded list of files (module docs),
    and, given ``python``, the interpreter's: the ``bin/python*`` links and ``pyvenv.cfg``.

    Returns the files rewritten and the new manifest: the same digest (it is path-normalised),
    new tokens, the raw hashes of the rewritten files. ``built_for`` is the interpreter the
    pack names: a script in ``bin/`` that still names it is a leftover.
    """
    old = packed.tokens
    old_env, old_name = _token_text(old, "<env>"), _token_text(old, "<env-name>")
    old_path, old_versions = _token_text(old, "<path>"), _token_text(old, "<path>.d")
    root = _token_text(old, "<root>")
    new_versions = dest.with_name(dest.name + ".d")
    pairs = [(old_env, str(env_dir)), (old_versions, str(new_versions)), (old_path, str(dest)),
             (old_name, env_dir.name)]
    swaps = [(os.fsencode(a), os.fsencode(b)) for a, b in pairs if a]
    candidates = [env_dir / "pyvenv.cfg", *sorted((env_dir / "bin").iterdir())]
    rewritten: list[str] = []
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue  # not text: a compiled launcher is not on the list
        new = data
        for a, b in swaps:
            new = new.replace(a, b)
        new = _trampoline(new)
        if python is not None and path.name == "pyvenv.cfg":
            new = _pyvenv_for(new, python)
        if new != data:
            write_atomic(path, new, like=path)
            os.utime(path, (MTIME, MTIME))
            rewritten.append(path.relative_to(env_dir).as_posix())
    if python is not None:
        rewritten += _repoint_links(env_dir, python)
    develop = [Path(text) for text, tok in old.pairs if tok.startswith("<develop ")]
    tokens = Tokens.of(env_dir, path=dest, root=Path(root) if root else None, develop=develop)
    manifest = scan(env_dir, tokens, runtime_bytecode=packed.runtime_bytecode)
    leftovers: list[str] = []
    if old_env:
        needle = os.fsencode(old_env)
        for rel, entry in manifest.entries.items():
            if entry.kind == "file" and entry.normalised and not rel.endswith(".pyc") \
                    and rel not in rewritten:
                with contextlib.suppress(OSError):
                    if needle in (env_dir / rel).read_bytes():
                        leftovers.append(rel)
    stale: list[str] = []
    if python is not None and built_for and built_for != python.executable:
        # What virtualenv, pip and uv write in bin/ names the environment's own python (just
        # relocated), never the base interpreter; a script that does is named, not guessed at.
        needle = os.fsencode(built_for)
        for path in candidates[1:]:
            if path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    if needle in path.read_bytes():
                        stale.append(path.relative_to(env_dir).as_posix())
    return Relocated(files=tuple(rewritten), manifest=manifest, leftovers=tuple(sorted(leftovers)),
                     python_leftovers=tuple(stale))
