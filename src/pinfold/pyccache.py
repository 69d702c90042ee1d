"""pinfold's cache folder, and in it the bytecode cache: compiled ``.pyc`` per (interpreter, artifact).

Bytecode is a pure function of the interpreter (its magic number and cache tag) and of the
source file, and a distribution's source files are a pure function of its artifact's
hash. So the compile stage keeps, per ``<cache_tag>-<magic>`` and artifact key, one
*entry*: a folder with the distribution's ``.pyc`` files at their site-packages-relative
paths and a ``MANIFEST.json`` naming each with its sha256. A later build links (hard
link; copy across file systems) those files into its environment instead of compiling.

Why an entry is never trusted blindly (the checks are in ``pinfold/inside/compile.py``):

- the ``.pyc`` files are *checked-hash* pycs (PEP 552): their header holds the source's
  hash, so they are independent of the mtimes pip sets and uv keeps, and Python itself
  checks them against their source at import; before linking one, its sha256 must be the
  manifest's and its header's source hash that of the environment's source;
- an entry is written to a ``.tmp-*`` folder, its manifest last, and renamed into place
  in one step: a build killed while filling leaves a ``.tmp-*`` folder no build reads
  (``prune`` removes it), and of two builds filling the same entry the first rename wins
  and the other's folder is discarded;
- an entry any of whose files fails the checks is not used and is replaced.

The artifact key of a wheel is its sha256. A wheel built from an sdist is not the sdist,
and its hash is nobody's: its key is the sdist's sha256 with the build lock's digest
(:func:`artifact_key`). Since every file is checked against its source, a build that is
not reproducible only costs a recompile, never a wrong ``.pyc``.

The folder (:func:`cache_root`) is ``$PINFOLD_CACHE_DIR``, else ``$XDG_CACHE_HOME/pinfold``
or ``~/.cache/pinfold`` (beside pinfold's uv cache): ``pyc/`` is this cache, ``digests/``
pre-flight's digests of local artifacts (:class:`pinfold.index.DigestCache`), ``wheels/`` the
pip backend's wheels built from sdists (the same entry layout), ``venv/`` the create stage's
virtualenv templates (:mod:`pinfold.venvcache`). It is bounded
by ``pinfold cache prune`` (:func:`prune`), least recently used entries first.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CACHE_ENV", "MANIFEST", "CacheInfo", "Distribution", "PruneResult", "artifact_key",
           "cache_info", "cache_root", "distributions", "parse_size", "prune", "pyc_root"]

#: The variable that moves pinfold's cache folder.
CACHE_ENV = "PINFOLD_CACHE_DIR"
#: The file that makes an entry: written last, before the rename.
MANIFEST = "MANIFEST.json"
#: A ``.tmp-*`` folder older than this is a killed fill: prune removes it.
STALE_SECONDS = 3600


def cache_root() -> Path:
    """pinfold's cache folder: ``$PINFOLD_CACHE_DIR``, else ``$XDG_CACHE_HOME/pinfold``, else
    ``~/.cache/pinfold``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pinfold"


def pyc_root() -> Path:
    """The bytecode cache: ``<cache_root>/pyc``."""
    return cache_root() / "pyc"


def artifact_key(digest: str | None, *, from_source: bool, build_lock: bytes | None) -> str | None:
    """The key of an artifact's entry, or None when it has none (no sha256 known).

    A wheel: its sha256. An sdist: the wheel built from it depends on the build lock too,
    so the key is the sha256 of both (``src-<hex>``).
    """
    if not digest or not digest.startswith("sha256:"):
        return None
    hexdigest = digest.split(":", 1)[1]
    if not from_source:
        return hexdigest
    mixed = hashlib.sha256(hexdigest.encode() + b"\0" + hashlib.sha256(build_lock or b"").digest())
    return f"src-{mixed.hexdigest()}"


@dataclass(frozen=True, slots=True)
class Distribution:
    """An installed distribution whose bytecode the cache may provide."""

    #: The site-packages folder its RECORD is relative to.
    site: Path
    #: Its entry's key (see :func:`artifact_key`).
    key: str
    #: Its ``.py`` files, relative to ``site``, from its RECORD.
    sources: tuple[str, ...]


def _record_sources(record: Path) -> tuple[str, ...]:
    out = []
    for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
        # RECORD is CSV, but a path with a comma is quoted: those few are compiled, not cached.
        path = line.split(",", 1)[0]
        if path.endswith(".py") and not path.startswith(("/", '"')) and ".." not in path.split("/"):
            out.append(path)
    return tuple(sorted(out))


def _canonical(name: str) -> str:
    # packaging's canonicalize_name, without importing packaging.
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(sites: Iterable[Path], keys: Mapping[str, str]) -> list[Distribution]:
    """The installed distributions of ``sites`` that have a key in ``keys`` (``name==version``
    -> artifact key), with their sources from their RECORD."""
    out = []
    for site in sites:
        for info in sorted(site.glob("*.dist-info")):
            name, _, version = info.name[: -len(".dist-info")].rpartition("-")
            key = keys.get(f"{_canonical(name)}=={version}")
            record = info / "RECORD"
            if key is None or not record.is_file():
                continue
            try:
                sources = _record_sources(record)
            except OSError:
                continue
            if sources:
                out.append(Distribution(site, key, sources))
    return out


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GiB``, ``4096``: a size in bytes; ValueError for anything else."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in units else (raw, "")
    value = float(number)
    if value < 0 or value != value:
        raise ValueError(text)
    return int(value * units[unit])


@dataclass(frozen=True, slots=True)
class _Entry:
    path: Path
    size: int
    used: float


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _entries(root: Path) -> tuple[list[_Entry], list[Path]]:
    """The entries under ``root`` (size, last use) and the leftovers (``.tmp-*``, ``.old-*``)."""
    entries: list[_Entry] = []
    leftovers: list[Path] = []
    if not root.is_dir():
        return entries, leftovers
    for interp in sorted(p for p in root.iterdir() if p.is_dir()):
        for entry in sorted(interp.iterdir()):
            if entry.name.startswith("."):
                leftovers.append(entry)
                continue
            try:
                # The manifest's mtime is the entry's last use (the compile stage touches it).
                used = (entry / MANIFEST).stat().st_mtime
            except OSError:
                leftovers.append(entry)
                continue
            entries.append(_Entry(entry, _tree_size(entry), used))
    return entries, leftovers


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """What pinfold's cache folder holds."""

    root: Path
    #: Bytecode entries (one per interpreter and artifact) and their total size in bytes.
    entries: int
    pyc_bytes: int
    #: The interpreters (``<cache_tag>-<magic>``) that have entries.
    interpreters: tuple[str, ...]
    #: Pre-flight's cached digests: how many, and their size.
    digests: int
    digest_bytes: int
    #: Killed or abandoned fills (``.tmp-*``/``.old-*`` folders): never read, removed by prune.
    leftovers: int
    #: The pip backend's wheels built from sdists (``wheels/``, one entry per interpreter,
    #: sdist and build lock: see :class:`pinfold.installers.pip.WheelCache`), and their size.
    wheels: int = 0
    wheel_bytes: int = 0
    #: The create stage's virtualenv templates (``venv/``, one per interpreter: see
    #: :mod:`pinfold.venvcache`), and their size.
    templates: int = 0
    template_bytes: int = 0

    @property
    def size(self) -> int:
        """Everything, in bytes."""
        return self.pyc_bytes + self.digest_bytes + self.wheel_bytes + self.template_bytes

    def to_json(self) -> dict[str, object]:
        """The ``pinfold cache --json`` fields."""
        return {"root": str(self.root), "size": self.size, "entries": self.entries,
                "pyc_bytes": self.pyc_bytes, "interpreters": list(self.interpreters),
                "digests": self.digests, "digest_bytes": self.digest_bytes,
                "leftovers": self.leftovers, "wheels": self.wheels, "wheel_bytes": self.wheel_bytes,
                "templates": self.templates, "template_bytes": self.template_bytes}


def _digest_files(root: Path) -> list[Path]:
    folder = root / "digests"
    return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []


def _template_files(root: Path) -> tuple[list[Path], list[Path]]:
    """The virtualenv templates (``venv/<key>.json``) and the temporary files of writes cut short."""
    folder = root / "venv"
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    return ([p for p in files if not p.name.startswith(".")],
            [p for p in files if p.name.startswith(".") and p.name.endswith(".tmp")])


def _unlink_all(paths: Iterable[Path]) -> tuple[int, int]:
    """Remove these files: (how many were removed, their bytes)."""
    count = size = 0
    for path in paths:
        try:
            bytes_ = path.stat().st_size
            path.unlink()
        except OSError:
            continue
        count += 1
        size += bytes_
    return count, size


def _sizes(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def cache_info(root: Path | None = None) -> CacheInfo:
    """What the cache folder (default :func:`cache_root`) holds."""
    root = root or cache_root()
    entries, leftovers = _entries(root / "pyc")
    wheels, wheel_leftovers = _entries(root / "wheels")
    digests = _digest_files(root)
    templates, template_leftovers = _template_files(root)
    return CacheInfo(root=root, entries=len(entries), pyc_bytes=sum(e.size for e in entries),
                     interpreters=tuple(sorted({e.path.parent.name for e in entries})),
                     digests=len(digests), digest_bytes=_sizes(digests),
                     leftovers=len(leftovers) + len(wheel_leftovers) + len(template_leftovers),
                     wheels=len(wheels), wheel_bytes=sum(e.size for e in wheels),
                     templates=len(templates), template_bytes=_sizes(templates))


def _remove(path: Path) -> None:
    """Rename out of the way first (a build never reads a dot name), then delete."""
    gone = path.with_name(f".old-{uuid.uuid4().hex}")
    try:
        path.rename(gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``prune`` removed, and what is left."""

    removed: int
    freed: int
    info: CacheInfo


def prune(max_size: int, root: Path | None = None, *, now: float | None = None) -> PruneResult:
    """Remove least recently used entries until the cache is at most ``max_size`` bytes.

    Stale leftovers of killed fills go first, always; when the bytecode alone is gone and
    the digests still exceed the bound, they are dropped too (they are rebuilt by hashing),
    then the virtualenv templates (virtualenv makes them again).
    """
    root = root or cache_root()
    now = time.time() if now is None else now
    entries, leftovers = _entries(root / "pyc")
    wheels, wheel_leftovers = _entries(root / "wheels")
    templates, template_leftovers = _template_files(root)
    entries, leftovers = entries + wheels, leftovers + wheel_leftovers
    removed = freed = 0
    for leftover in [*leftovers, *template_leftovers]:
        try:
            # A fill in progress is a fresh .tmp-* folder (or .tmp file): left alone.
            busy = (leftover.name.startswith(".tmp-") or leftover.name.endswith(".tmp")) and \
                now - leftover.stat().st_mtime < STALE_SECONDS
        except OSError:
            continue
        if not busy:
            freed += _tree_size(leftover) if leftover.is_dir() else _sizes([leftover])
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed += 1
    total = sum(e.size for e in entries) + cache_info(root).digest_bytes + _sizes(templates)
    for entry in sorted(entries, key=lambda e: e.used):
        if total <= max_size:
            break
        _remove(entry.path)
        total -= entry.size
        freed += entry.size
        removed += 1
    # Then what is rebuilt cheaply: the digests (by hashing), the templates (by virtualenv).
    for files in (_digest_files(root), templates):
        if total <= max_size:
            break
        count, size = _unlink_all(files)
        removed += count
        freed += size
        total -= size
    return PruneResult(removed=removed, freed=freed, info=cache_info(root))
