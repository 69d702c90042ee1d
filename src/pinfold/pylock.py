"""PEP 751 lock files (``pylock.toml``, ``pylock.NAME.toml``): read and written.

Reading goes through ``packaging.pylock`` (the reference parser pip uses too), then
pinfold's own rules for a lock: every package pinned with a version, every artifact
hashed in an algorithm pip accepts, nothing from a direct reference (a VCS checkout, a
directory, an archive URL): a lock pins ``name==version`` from env.yaml's index. Problems
are located: ``pylock.toml:3:7`` for bad TOML, ``pylock.toml:12: packages[2].wheels[0]``
for a package (the line of its ``[[packages]]`` header when the file uses that form).

Writing is deterministic: the same packages give the same bytes, with local artifacts
named by a path relative to the lock file (PEP 751's rule) and index artifacts by URL.
What PEP 751 has no field for is kept under ``tool.pinfold``: the needs record (the
equivalent of a requirements lock's header), ``via`` per package, and hashes of
artifacts this machine's index does not hold (another platform's wheels), so that a
relock or a round trip through ``pinfold export`` loses nothing.

This module knows the file format only; :mod:`pinfold.locks` turns its packages into pins.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.markers import Marker
from packaging.utils import NormalizedName
from packaging.version import Version

from .errors import Problem

if TYPE_CHECKING:
    from packaging.pylock import Package

__all__ = ["HASH_LENGTHS", "Artifact", "LockedPackage", "PylockFile", "is_pylock", "read_pylock",
           "render_pylock"]

#: PEP 751's file names: ``pylock.toml`` or ``pylock.NAME.toml`` (NAME without dots).
_NAME = re.compile(r"^pylock\.(?:[^.]+\.)?toml$")
_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
_PACKAGE_HEADER = re.compile(r"^\s*\[\[\s*packages\s*\]\]\s*(?:#.*)?$")
_CONTEXT_INDEX = re.compile(r"^packages\[(\d+)\]")
#: The hash algorithms a lock may use, and the length of each one's hex digest.
HASH_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def is_pylock(path: Path) -> bool:
    """Whether ``path``'s name says PEP 751 (``pylock.toml``, ``pylock.NAME.toml``)."""
    return _NAME.match(path.name) is not None


@dataclass(frozen=True, slots=True)
class Artifact:
    """One file of a locked package, as a pylock names it."""

    filename: str
    #: An absolute local path, or a URL.
    location: str
    #: ``algo:hexdigest``, lower case.
    hashes: frozenset[str]

    @property
    def is_sdist(self) -> bool:
        """True for an sdist (anything that is not a ``.whl``)."""
        return not self.filename.endswith(".whl")


@dataclass(frozen=True, kw_only=True, slots=True)
class LockedPackage:
    """One package of a pylock, pinned and hashed."""

    name: NormalizedName
    version: Version
    marker: Marker | None = None
    artifacts: tuple[Artifact, ...] = ()
    #: Every hash of the package: its artifacts' and those kept under ``tool.pinfold.hashes``.
    hashes: frozenset[str] = frozenset()
    via: tuple[str, ...] = ()
    #: Its line in the file (its ``[[packages]]`` header), 0 when unknown.
    line: int = 0


@dataclass(frozen=True, slots=True)
class PylockFile:
    """A read pylock: its packages and its ``[tool.pinfold]`` table."""

    packages: tuple[LockedPackage, ...]
    tool: Mapping[str, Any]


def _hashes(table: Mapping[str, str]) -> tuple[set[str], list[str]]:
    """The usable ``algo:hex`` of a pylock ``hashes`` table, and what is wrong with it."""
    good, bad = set(), []
    for algo, value in table.items():
        algo = algo.lower()
        if algo not in HASH_LENGTHS:
            continue  # another algorithm (md5, blake2b): allowed by PEP 751, unused by pip
        if not re.fullmatch(r"[0-9a-fA-F]+", value) or len(value) != HASH_LENGTHS[algo]:
            bad.append(f"malformed {algo} hash {value!r}")
        else:
            good.add(f"{algo}:{value.lower()}")
    return good, bad


def _location(base: Path, path: str | None, url: str | None) -> str:
    if path is not None:
        return os.path.normpath(base / path)  # PEP 751: relative to the lock file's folder
    assert url is not None  # packaging.pylock requires one of them
    return url


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _package(pkg: Package, index: int, base: Path, problems: list[tuple[int, str, str]]
             ) -> LockedPackage | None:
    def bad(key: str, message: str) -> None:
        problems.append((index, f"packages[{index}]{key}", message))

    if pkg.is_direct:
        bad("", f"{pkg.name} is a direct reference (vcs, directory or archive): a lock pins "
                "name==version from env.yaml's index; local trees go under `develop`")
        return None
    if pkg.version is None:
        bad("", f"{pkg.name} has no version: every package of a lock must be pinned")
        return None
    if pkg.marker is not None and re.search(r"\b(extras|dependency_groups)\b", str(pkg.marker)):
        bad(".marker", f"{pkg.name}: markers on extras or dependency groups are not supported: "
                       "pinfold installs a lock's packages, not a selection of them")
        return None
    files: list[tuple[str, Any]] = []
    if pkg.sdist is not None:
        files.append((".sdist", pkg.sdist))
    files += [(f".wheels[{i}]", w) for i, w in enumerate(pkg.wheels or ())]
    artifacts, hashes, ok = [], set(), True
    for key, f in files:
        good, wrong = _hashes(f.hashes)
        for message in wrong:
            bad(f"{key}.hashes", message)
        if not good and not wrong:
            bad(f"{key}.hashes", f"{f.filename}: no sha256, sha384 or sha512 hash (pip checks only those)")
        if wrong or not good:
            ok = False
            continue
        artifacts.append(Artifact(f.filename, _location(base, f.path, f.url), frozenset(good)))
        hashes |= good
    own = (pkg.tool or {}).get("pinfold", {})
    own = own if isinstance(own, Mapping) else {}
    for extra in _strings(own.get("hashes")):
        algo, _, value = extra.partition(":")
        good, wrong = _hashes({algo: value})
        if wrong or not good:
            bad(".tool.pinfold.hashes", f"malformed hash {extra!r}")
            ok = False
        hashes |= good
    if not ok:
        return None
    return LockedPackage(name=pkg.name, version=pkg.version, marker=pkg.marker, artifacts=tuple(artifacts),
                         hashes=frozenset(hashes), via=_strings(own.get("via")))


def read_pylock(text: str, base: Path, shown: str) -> tuple[PylockFile, list[Problem]]:
    """Parse a pylock's ``text`` (its folder is ``base``); return it and every problem found."""
    # Here, not at the top: every build imports this module, few read a pylock.toml.
    import tomllib

    from packaging.pylock import Pylock, PylockValidationError

    empty = PylockFile((), {})
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = _TOML_AT.search(str(exc))
        located = f"{shown}:{at.group(1)}:{at.group(2)}" if at else shown
        if at is None and "(at end of document)" in str(exc):
            located = f"{shown}:{max(1, len(text.splitlines()))}"
        message = _TOML_AT.sub("", str(exc)).replace("(at end of document)", "(at the end)").strip()
        return empty, [Problem(located, f"not valid TOML: {message}")]
    # The line of each [[packages]] header, when the file uses that form (pip, uv and pinfold do).
    headers = [no for no, line in enumerate(text.splitlines(), 1) if _PACKAGE_HEADER.match(line)]
    raw = data.get("packages")
    lines = headers if isinstance(raw, list) and len(headers) == len(raw) else []

    def where(index: int | None, key: str) -> str:
        line = f":{lines[index]}" if index is not None and index < len(lines) else ""
        return f"{shown}{line}: {key}" if key else f"{shown}{line}"

    try:
        lock = Pylock.from_dict(data)
    except PylockValidationError as exc:
        context = exc.context or ""
        found = _CONTEXT_INDEX.match(context)
        return empty, [Problem(where(int(found.group(1)) if found else None, context),
                               f"not a valid PEP 751 lock: {exc.message}")]
    found_problems: list[tuple[int, str, str]] = []
    packages: list[LockedPackage] = []
    seen: dict[NormalizedName, list[tuple[int, str | None]]] = {}
    for i, pkg in enumerate(lock.packages):
        locked = _package(pkg, i, base, found_problems)
        if locked is None:
            continue
        marker = str(locked.marker) if locked.marker is not None else None
        earlier = seen.setdefault(pkg.name, [])
        # PEP 751 allows one name more than once under markers that tell them apart (a lock
        # for several targets writes one entry per target); without markers it is ambiguous.
        if earlier and (marker is None or any(m is None or m == marker for _, m in earlier)):
            found_problems.append((i, f"packages[{i}]", f"{pkg.name} is locked twice "
                                                        f"(first as packages[{earlier[0][0]}]) "
                                                        "without markers that tell them apart"))
            continue
        earlier.append((i, marker))
        line = lines[i] if i < len(lines) else 0
        packages.append(LockedPackage(name=locked.name, version=locked.version, marker=locked.marker,
                                      artifacts=locked.artifacts, hashes=locked.hashes,
                                      via=locked.via, line=line))
    tool = (lock.tool or {}).get("pinfold", {})
    problems = [Problem(where(i, key), message) for i, key, message in found_problems]
    return PylockFile(tuple(packages), tool if isinstance(tool, Mapping) else {}), problems


# -- writing -----------------------------------------------------------------------------


def _str(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, ``\\uXXXX`` included)."""
    return json.dumps(value, ensure_ascii=False)


def _list(values: Iterable[str], indent: str = "") -> str:
    items = list(values)
    if len(items) <= 1:
        return "[" + ", ".join(_str(v) for v in items) + "]"
    return "[\n" + "".join(f"{indent}    {_str(v)},\n" for v in items) + f"{indent}]"


def _file_table(artifact: Artifact, base: Path) -> str:
    hashes = ", ".join(f"{a} = {_str(h)}" for a, h in sorted(h.split(":", 1) for h in artifact.hashes))
    if "://" in artifact.location:
        where = f"url = {_str(artifact.location)}"
    else:
        where = f"path = {_str(Path(os.path.relpath(artifact.location, base)).as_posix())}"
    return f"{{ name = {_str(artifact.filename)}, {where}, hashes = {{ {hashes} }} }}"


def render_pylock(*, header: Sequence[str], packages: Sequence[LockedPackage], base: Path,
                  records: Mapping[str, tuple[str, Sequence[str]]]) -> str:
    """The text of a pylock: ``header`` comment lines, ``records`` (key -> digest and items:
    the needs it was written for), then ``packages`` sorted by name.

    Each package names its artifacts (one sdist at most, as PEP 751 allows; wheels sorted by
    file name) relative to ``base``, the lock file's folder; hashes that name no artifact go
    under ``tool.pinfold.hashes``. A package needs at least one artifact (PEP 751).
    """
    out = [*(f"# {line}".rstrip() for line in header), 'lock-version = "1.0"', 'created-by = "pinfold"']
    for key, (digest, items) in sorted(records.items()):
        out += ["", f"[tool.pinfold.{key}]", f"digest = {_str(digest)}", f"items = {_list(sorted(items))}"]
    for pkg in sorted(packages, key=lambda p: p.name):
        out += ["", "[[packages]]", f"name = {_str(pkg.name)}", f"version = {_str(str(pkg.version))}"]
        if pkg.marker is not None:
            out.append(f"marker = {_str(str(pkg.marker))}")
        arts = sorted(pkg.artifacts, key=lambda a: (not a.is_sdist, a.filename))
        sdists = [a for a in arts if a.is_sdist][:1]
        wheels = [a for a in arts if not a.is_sdist]
        named = {h for a in [*sdists, *wheels] for h in a.hashes}
        if sdists:
            out.append(f"sdist = {_file_table(sdists[0], base)}")
        if wheels:
            out.append("wheels = [")
            out += [f"    {_file_table(w, base)}," for w in wheels]
            out.append("]")
        extra = sorted(pkg.hashes - named)
        if pkg.via or extra:
            out += ["", "[packages.tool.pinfold]"]
            if pkg.via:
                out.append(f"via = {_list(pkg.via)}")
            if extra:
                out.append(f"hashes = {_list(extra)}")
    return "\n".join(out) + "\n"
