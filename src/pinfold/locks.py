"""Reading pinned, hashed lock files: pip requirements files, and PEP 751 ``pylock.toml``.

A lock holds exact pins only: ``name==version`` with at least one ``--hash``. This is
Buildout's ``allow-picked-versions = false``: nothing unpinned ever gets in. Index
options are refused in a lock, because the index comes from env.yaml alone. A file
named ``pylock.toml`` or ``pylock.NAME.toml`` is read as PEP 751 (:mod:`pinfold.pylock`)
into the same pins; where its artifacts live is kept (for writing it back), never used
to install: the index still comes from env.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import Problem
from .paths import display_path, read_text, reason
from .pylock import HASH_LENGTHS, Artifact, is_pylock, read_pylock
from .reqfile import logical_lines

__all__ = ["Artifact", "Lock", "Pin", "is_pylock", "parse_lock", "split_pin"]

_HASH = re.compile(r"--hash[=\s]\s*(sha256|sha384|sha512):([0-9a-fA-F]+)")
_VIA = re.compile(r"^#\s+via\b\s*(.*)$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Pin:
    """One locked distribution."""

    name: NormalizedName
    version: Version
    #: ``algo:hexdigest`` strings, lower case.
    hashes: frozenset[str]
    marker: Marker | None = None
    extras: frozenset[str] = frozenset()
    #: Line of the pin in its lock, 1-based.
    line: int = 0
    #: What needs it, from the lock's ``# via`` annotations (names or ``name==version``).
    via: tuple[str, ...] = ()
    #: The files a pylock named for it (file name, place, hashes); empty from a requirements
    #: lock. Not part of the pin's identity: what is installed is decided by the hashes.
    artifacts: tuple[Artifact, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"

    def requirement_line(self) -> str:
        """The pin as a pip requirement line, hashes included."""
        marker = f" ; {self.marker}" if self.marker else ""
        hashes = "".join(f" --hash={h}" for h in sorted(self.hashes))
        return f"{self.name}=={self.version}{marker}{hashes}"

    def applies(self, markers: Mapping[str, str]) -> bool:
        """Whether the pin's marker (if any) holds for an interpreter with these markers."""
        return self.marker is None or self.marker.evaluate(markers)


def split_pin(text: str) -> tuple[str, str]:
    """``name==version`` as ``(name, version)``; a bare name gives ``(name, "")``."""
    name, _, version = text.partition("==")
    return name, version


@dataclass(frozen=True, slots=True)
class Lock:
    """A parsed lock file."""

    path: Path
    pins: tuple[Pin, ...]

    def by_name(self) -> dict[NormalizedName, Pin]:
        """Pins keyed by canonical name."""
        return {p.name: p for p in self.pins}


def _via(comments: list[str]) -> tuple[str, ...]:
    """Names from pip-compile's ``# via`` annotation (one-line or multi-line form)."""
    names: list[str] = []
    collecting = False
    for comment in comments:
        match = _VIA.match(comment)
        if match:
            collecting = not match.group(1)
            names += [n.strip() for n in match.group(1).split(",") if n.strip()]
        elif collecting and comment.startswith("#   "):
            names.append(comment[1:].strip())
        else:
            collecting = False
    return tuple(n for n in names if not n.startswith(("-r ", "-c ")))


def parse_lock(path: Path, *, shown: str | None = None) -> tuple[Lock, list[Problem]]:
    """Parse ``path``; return the lock and every problem found (never raises for content)."""
    shown = shown or display_path(path)
    problems: list[Problem] = []
    pins: list[Pin] = []
    seen: dict[NormalizedName, int] = {}
    unmarked: set[NormalizedName] = set()
    markers: dict[NormalizedName, set[str]] = {}
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        return Lock(path, ()), [Problem(shown, f"cannot read the lock: {reason(exc)}")]
    if is_pylock(path):
        return _parse_pylock(path, text, shown)

    for entry in logical_lines(text):
        line, content, comments = entry.line, entry.content, entry.comments
        where = f"{shown}:{line}:{entry.column}"
        hashes = {f"{a.lower()}:{h.lower()}" for a, h in _HASH.findall(content)}
        body = _HASH.sub("", content).strip()
        bad_hash = [h for h in hashes if len(h.split(":")[1]) != HASH_LENGTHS[h.split(":")[0]]]
        if body.startswith("-"):
            option = body.split()[0]
            problems.append(Problem(where, f"option {option!r} is not allowed in a lock: the index "
                                           "comes from env.yaml, and a lock holds pins only"))
            continue
        if bad_hash:
            problems.append(Problem(where, f"malformed hash {sorted(bad_hash)[0]!r}"))
            continue
        if "--" in body:
            problems.append(Problem(where, f"unexpected option in {body!r}: only --hash may follow a pin"))
            continue
        try:
            req = Requirement(body)
        except InvalidRequirement as exc:
            problems.append(Problem(where, f"not a requirement: {exc}"))
            continue
        specs = list(req.specifier)
        name = canonicalize_name(req.name)
        if req.url or len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            problems.append(Problem(where, f"{body!r} is not pinned: every lock entry must be "
                                           "an exact `name==version` with --hash lines"))
            continue
        if not hashes:
            problems.append(Problem(where, f"{req.name}=={specs[0].version} has no --hash: "
                                           "every pin needs the hashes of its artifacts"))
            continue
        try:
            version = Version(specs[0].version)
        except InvalidVersion:
            problems.append(Problem(where, f"{specs[0].version!r} is not a valid version"))
            continue
        # A lock for several targets pins a name once per marker (`dep-a==1.0 ; python_version
        # == "3.11"`, `dep-a==2.0 ; python_version == "3.12"`); without markers, once.
        if name in seen and (req.marker is None or name in unmarked
                             or str(req.marker) in markers.get(name, ())):
            problems.append(Problem(where, f"{name} is pinned twice (first on line {seen[name]})"))
            continue
        seen.setdefault(name, line)
        if req.marker is None:
            unmarked.add(name)
        else:
            markers.setdefault(name, set()).add(str(req.marker))
        pins.append(Pin(name=name, version=version, hashes=frozenset(hashes), marker=req.marker,
                        extras=frozenset(req.extras), line=line, via=_via(comments)))
    return Lock(path, tuple(pins)), problems


def _parse_pylock(path: Path, text: str, shown: str) -> tuple[Lock, list[Problem]]:
    """A PEP 751 lock as pins: its packages with every hash, marker and artifact."""
    found, problems = read_pylock(text, path.parent, shown)
    pins = tuple(Pin(name=p.name, version=p.version, hashes=p.hashes, marker=p.marker, line=p.line,
                     via=p.via, artifacts=p.artifacts) for p in found.packages)
    return Lock(path, pins), problems
