"""env.yaml's top-level needs, read: a requirements.in-style file or an inline list.

``needs`` (and ``build_needs``) is either a requirements.in-style file or an inline list.
Both are read into one normalized form: requirement strings, a few format options
(``--no-binary``, ``--only-binary``, ``--prefer-binary``, ``--pre``, and pinfold's own
``--require-pins``) and constraints
(``-c file``). Index options are refused: the index comes from env.yaml alone.
What a lock records of them, and when a lock is stale, is :mod:`pinfold.locking.needs`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import Problem
from .paths import display_path, path_problem, read_text, reason
from .reqfile import logical_lines

__all__ = ["REQUIRE_PINS", "Needs", "NeedsSpec", "normalize_requirement", "read_needs", "relative"]


@dataclass(frozen=True, kw_only=True, slots=True)
class NeedsSpec:
    """Top-level needs that ``pinfold lock`` resolves: a requirements.in-style file or a list."""

    #: The env.yaml key: ``needs`` or ``build_needs``.
    key: str
    #: The requirements.in-style file (absolute), or None for an inline list.
    file: Path | None = None
    #: The inline list, as written.
    items: tuple[str, ...] = ()
    #: ``env.yaml:LINE:COL`` of the file name, or of each inline item.
    where: tuple[str, ...] = ()
    #: The name of the file that holds the key (``env.yaml``): locks name inline needs by it.
    origin: str = "env.yaml"


#: Format options that change which artifacts pip may pick; passed on to pip-compile.
_FORMAT_OPTIONS = ("--no-binary", "--only-binary")
_FLAG_OPTIONS = ("--prefer-binary", "--pre")
#: pinfold's own needs option (Buildout's ``allow-picked-versions = false``): `pinfold lock`
#: refuses a runtime pin that no ``==`` constraint or need pins. Never passed to pip-compile.
REQUIRE_PINS = "--require-pins"
_INCLUDE = {"-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c"}
_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index",
                  "--trusted-host")


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


def normalize_requirement(req: Requirement) -> str:
    """One spelling per requirement: canonical name, sorted extras, packaging's specifier order."""
    req.name = canonicalize_name(req.name)
    return str(req)


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
        elif head in (*_FLAG_OPTIONS, REQUIRE_PINS):
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
        (self.constraints if constraint else self.requirements)[normalize_requirement(req)] = None

    def file(self, where: str, path: Path, *, constraint: bool = False) -> None:
        if (why := path_problem(str(path))) is not None:
            self.problems.append(Problem(where, f"the file name {why}"))
            return
        try:
            path = path.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            self.problems.append(Problem(where, f"cannot read {display_path(path)}: {reason(exc)}"))
            return
        if path in self.files:
            return  # included twice (or in a cycle): its needs are already in
        self.files[path] = None
        try:
            text = read_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(Problem(where, f"cannot read {display_path(path)}: {reason(exc)}"))
            return
        shown = display_path(path)
        for entry in logical_lines(text):
            self.entry(f"{shown}:{entry.line}", entry.content, path.parent, constraint=constraint)


def read_needs(ns: NeedsSpec, root: Path) -> tuple[Needs, list[Problem]]:
    """Read ``ns`` (a file, or an inline list of env.yaml) with relative paths starting at
    ``root`` (env.yaml's folder); return the needs and every problem."""
    collector = _Collector(root)
    if ns.file is not None:
        collector.file(ns.where[0] if ns.where else ns.key, ns.file)
        label = f"-r {relative(ns.file, root)}"
    else:
        for where, item in zip(ns.where, ns.items, strict=True):
            collector.entry(where, item.strip(), root)
        label = f"{ns.origin}:{ns.key}"
    needs = Needs(key=ns.key, label=label, requirements=tuple(collector.requirements),
                  options=tuple(collector.options), constraints=tuple(collector.constraints),
                  files=tuple(collector.files))
    return needs, collector.problems


def relative(path: Path, root: Path) -> str:
    """``path`` as the locks write it: relative to ``root`` (env.yaml's folder), POSIX-style.

    ``..`` included for what lies outside it, never absolute and never relative to the
    working directory: a lock's bytes must depend neither on where pinfold runs from nor
    on where the checkout is.
    """
    try:
        base = root.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        base = root
    return Path(os.path.relpath(path, base)).as_posix()
