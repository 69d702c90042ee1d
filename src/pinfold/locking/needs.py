"""env.yaml's top-level needs: read, normalized, recorded in the locks, compared.

``needs`` (and ``build_needs``) is either a requirements.in-style file or an inline list.
Both are read into one normalized form: requirement strings, a few format options
(``--no-binary``, ``--only-binary``, ``--prefer-binary``, ``--pre``) and constraints
(``-c file``). Index options are refused: the index comes from env.yaml alone.

``pinfold lock`` records the normalized needs (a sorted list and its digest) in each
lock's header. ``pinfold build`` compares that record with env.yaml's current needs and
refuses a lock whose needs were added to or removed since it was written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..errors import Problem
from ..locks import Lock

if TYPE_CHECKING:
    from ..spec import NeedsSpec, Spec

__all__ = [
    "Needs",
    "NeedsRecord",
    "needs_problems",
    "read_needs",
    "read_record",
    "record_items",
    "render_record",
    "stale_problems",
]

#: Format options that change which artifacts pip may pick; passed on to pip-compile.
_FORMAT_OPTIONS = ("--no-binary", "--only-binary")
_FLAG_OPTIONS = ("--prefer-binary", "--pre")
_INCLUDE = {"-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c"}
_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index",
                  "--trusted-host")
#: The header line that opens a record: ``# needs: sha256:<hex>``.
_RECORD = re.compile(r"^#\s+(needs|build_needs):\s+sha256:([0-9a-f]{64})\s*$")
_ITEM = re.compile(r"^#\s{3,}(\S.*?)\s*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Needs:
    """One key's needs, normalized: what pip-compile is given and what a lock records."""

    #: The env.yaml key: ``needs`` or ``build_needs``.
    key: str
    #: How locks name where a need came from (``# via`` lines): ``-r requirements/runtime.in``
    #: for a file, ``env.yaml:needs`` for an inline list.
    label: str
    #: Normalized requirement strings, in the order first seen.
    requirements: tuple[str, ...] = ()
    #: Format options, e.g. ``--no-binary stevedore``.
    options: tuple[str, ...] = ()
    #: Normalized constraint strings (from ``-c`` files).
    constraints: tuple[str, ...] = ()
    #: Every file read for them (the needs file and what it includes), absolute.
    files: tuple[Path, ...] = ()

    def items(self) -> list[str]:
        """What a lock records: requirements, options and ``-c`` constraints, sorted."""
        return sorted({*self.requirements, *self.options, *(f"-c {c}" for c in self.constraints)})


def _normalize(req: Requirement) -> str:
    """One spelling per requirement: canonical name, sorted extras, packaging's specifier order."""
    req.name = canonicalize_name(req.name)
    return str(req)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, content) with comments removed and backslash continuations joined."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for no, raw in enumerate(text.splitlines(), 1):
        content = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0]
        if not buf:
            start = no
        if content.rstrip().endswith("\\"):
            buf += content.rstrip()[:-1] + " "
            continue
        buf += content
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


class _Collector:
    """Reads needs entries (inline strings or file lines), following ``-r``/``-c`` files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requirements: dict[str, None] = {}
        self.options: dict[str, None] = {}
        self.constraints: dict[str, None] = {}
        self.problems: list[Problem] = []
        self.files: dict[Path, None] = {}

    def entry(self, where: str, text: str, base: Path, *, constraint: bool = False) -> None:
        head, _, rest = text.partition(" ")
        if "=" in head and head.startswith("-"):
            head, _, value = head.partition("=")
            rest = f"{value} {rest}".strip()
        rest = rest.strip()
        if head in _INCLUDE:
            if not rest:
                self.problems.append(Problem(where, f"{head} needs a file name"))
                return
            self.file(where, base / rest, constraint=constraint or _INCLUDE[head] == "-c")
        elif head in _FORMAT_OPTIONS:
            if not rest:
                self.problems.append(Problem(where, f"{head} needs a package name, :all: or :none:"))
                return
            self.options[f"{head} {rest}"] = None
        elif head in _FLAG_OPTIONS:
            self.options[head] = None
        elif head in _INDEX_OPTIONS:
            self.problems.append(Problem(where, f"{head} is not allowed here: the index comes from "
                                                "env.yaml's `index` alone"))
        elif head.startswith("-"):
            self.problems.append(Problem(where, f"option {head} is not supported in needs (allowed: "
                                                "-r, -c, --no-binary, --only-binary, --prefer-binary, "
                                                "--pre); local trees go under `develop`"))
        else:
            self.requirement(where, text, constraint=constraint)

    def requirement(self, where: str, text: str, *, constraint: bool) -> None:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            self.problems.append(Problem(where, f"{text!r} is not a requirement: {exc}"))
            return
        if req.url:
            self.problems.append(Problem(where, f"{text!r} is a direct reference: a lock pins "
                                                "name==version from the index; put local trees "
                                                "under `develop`"))
            return
        (self.constraints if constraint else self.requirements)[_normalize(req)] = None

    def file(self, where: str, path: Path, *, constraint: bool = False) -> None:
        from ..spec import display_path

        path = path.resolve()
        if path in self.files:
            return  # included twice (or in a cycle): its needs are already in
        self.files[path] = None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(Problem(where, f"cannot read {display_path(path)}: {exc}"))
            return
        shown = display_path(path)
        for no, content in _logical_lines(text):
            self.entry(f"{shown}:{no}", content, path.parent, constraint=constraint)


def read_needs(ns: NeedsSpec, spec_file: Path) -> tuple[Needs, list[Problem]]:
    """Read ``ns`` (a file or an inline list of env.yaml); return the needs and every problem."""
    root = spec_file.parent
    collector = _Collector(root)
    if ns.file is not None:
        collector.file(ns.where[0] if ns.where else ns.key, ns.file)
        label = f"-r {_relative(ns.file, root)}"
    else:
        for where, item in zip(ns.where, ns.items, strict=True):
            collector.entry(where, item.strip(), root)
        label = f"{spec_file.name}:{ns.key}"
    needs = Needs(key=ns.key, label=label, requirements=tuple(collector.requirements),
                  options=tuple(collector.options), constraints=tuple(collector.constraints),
                  files=tuple(collector.files))
    return needs, collector.problems


def needs_problems(ns: NeedsSpec, spec_file: Path) -> list[Problem]:
    """Every problem in ``ns`` (for load_spec, which reports all problems together)."""
    return read_needs(ns, spec_file)[1]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# --- the record in a lock's header ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeedsRecord:
    """The needs a lock was written for, read back from its header."""

    key: str
    digest: str
    items: tuple[str, ...]


def digest(items: list[str]) -> str:
    """``sha256:<hex>`` of the sorted items, one per line."""
    return "sha256:" + hashlib.sha256("".join(f"{i}\n" for i in sorted(items)).encode()).hexdigest()


def record_items(spec: Spec, key: str) -> list[str] | None:
    """The items a lock written now for ``key`` would record; None if env.yaml has no such key.

    The runtime record includes the develop trees (``-e path``): their requirements are
    resolved into the runtime lock too.
    """
    ns = spec.needs if key == "needs" else spec.build_needs
    if ns is None:
        return [] if key == "build_needs" and spec.needs is not None else None
    needs, _ = read_needs(ns, spec.file)
    items = needs.items()
    if key == "needs":
        items = sorted(items + [f"-e {_relative(d, spec.root)}" for d in spec.develop])
    return items


def render_record(key: str, items: list[str]) -> list[str]:
    """The header lines that record ``items`` (sorted), with their digest."""
    return [f"# {key}: {digest(items)}", *(f"#     {i}" for i in sorted(items))]


def read_record(path: Path, key: str) -> NeedsRecord | None:
    """The record of ``key`` in the header of the lock at ``path``, or None (not written by pinfold)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            break  # the header ends at the first pin
        match = _RECORD.match(line)
        if match and match.group(1) == key:
            items = []
            for item in lines[i + 1:]:
                found = _ITEM.match(item)
                if not found:
                    break
                items.append(found.group(1))
            return NeedsRecord(key, f"sha256:{match.group(2)}", tuple(items))
    return None


# --- staleness --------------------------------------------------------------------------


def _changes(recorded: NeedsRecord, items: list[str]) -> str:
    added = sorted(set(items) - set(recorded.items))
    removed = sorted(set(recorded.items) - set(items))
    parts = []
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    if not parts:  # the record was edited by hand: its list no longer matches its digest
        parts.append("its needs record was edited")
    return "; ".join(parts)


def _unsatisfied(needs: Needs, lock: Lock) -> list[str]:
    """Needs that ``lock`` does not pin at a fitting version (for locks without a record)."""
    pins = lock.by_name()
    out = []
    for text in needs.requirements:
        req = Requirement(text)
        if req.marker is not None:
            continue  # markers need the target interpreter; a lock with a record is checked exactly
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            out.append(f"{text} is not pinned")
        elif not req.specifier.contains(Version(str(pin.version)), prereleases=True):
            out.append(f"{text} does not match the pin {pin}")
    return out


def stale_problems(spec: Spec) -> list[Problem]:
    """Why the locks no longer match env.yaml's needs (empty when they match).

    A lock written by ``pinfold lock`` is compared with its record: any need added or
    removed makes it stale. A lock without a record (written by hand or by pip-compile)
    is accepted when it pins every need at a fitting version.
    """
    from ..spec import display_path

    problems: list[Problem] = []
    locks: list[tuple[str, Lock | None, NeedsSpec | None]] = [
        ("needs", spec.requirements, spec.needs),
        ("build_needs", spec.build_requirements, spec.build_needs),
    ]
    for key, lock, ns in locks:
        items = record_items(spec, key)
        if lock is None or items is None:
            continue
        shown = display_path(lock.path)
        recorded = read_record(lock.path, key)
        if recorded is not None:
            if recorded.digest != digest(items):
                problems.append(Problem(shown, f"stale: env.yaml's `{key}` changed since "
                                               f"`pinfold lock` wrote it ({_changes(recorded, items)})"))
            continue
        if ns is not None:
            needs, _ = read_needs(ns, spec.file)
            problems += [Problem(shown, f"does not match env.yaml's `{key}`: {why}")
                         for why in _unsatisfied(needs, lock)]
    return problems
