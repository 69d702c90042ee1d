"""env.yaml's top-level needs, read: a requirements.in-style file, an inline list, or a pyproject.toml.

``needs`` (and ``build_needs``) is a requirements.in-style file, an inline list, or a
``pyproject.toml`` (its ``[project] dependencies``, the ``[project.optional-dependencies]``
of the extras named and the PEP 735 ``[dependency-groups]`` named). All are read into
one normalized form: requirement strings, a few format options (``--no-binary``,
``--only-binary``, ``--prefer-binary``, ``--pre``, and pinfold's own ``--require-pins``)
and constraints (``-c file``). Index options are refused: the index comes from env.yaml
alone.
What a lock records of them, and when a lock is stale, is :mod:`pinfold.locking.needs`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import Problem
from .paths import display_path, path_problem, read_text, reason
from .reqfile import logical_lines

__all__ = ["INDEX_OPTIONS", "REQUIRE_PINS", "Needs", "NeedsSpec", "normalize_requirement", "read_needs",
           "relative"]


@dataclass(frozen=True, kw_only=True, slots=True)
class NeedsSpec:
    """Top-level needs that ``pinfold lock`` resolves: a requirements.in-style file, a list,
    or a pyproject.toml with the extras and dependency groups to read from it."""

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
    #: The pyproject.toml to read (absolute), or None.
    pyproject: Path | None = None
    #: Its extras and dependency groups to read, as written in env.yaml.
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    #: ``env.yaml:LINE:COL`` of each extra and group name (messages name where they were asked).
    extras_where: tuple[str, ...] = ()
    groups_where: tuple[str, ...] = ()
    #: The pyproject.toml is a ``develop`` tree's own: its ``[project] dependencies`` reach
    #: the lock through that tree, so they are recorded but not resolved a second time.
    develop_tree: bool = False


#: Format options that change which artifacts pip may pick; passed on to pip-compile.
_FORMAT_OPTIONS = ("--no-binary", "--only-binary")
_FLAG_OPTIONS = ("--prefer-binary", "--pre")
#: pinfold's own needs option (Buildout's ``allow-picked-versions = false``): `pinfold lock`
#: refuses a runtime pin that no ``==`` constraint or need pins. Never passed to pip-compile.
REQUIRE_PINS = "--require-pins"
_INCLUDE = {"-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c"}
#: Options of a requirements file that say where packages come from: env.yaml's index decides.
INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index",
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
    #: Normalized requirements that a ``develop`` tree's own pyproject.toml declares: they
    #: reach pip-compile through that tree, and are recorded so that a change makes the lock stale.
    through_develop: tuple[str, ...] = ()

    def items(self) -> list[str]:
        """What a lock records: requirements, options and ``-c`` constraints, sorted."""
        return sorted({*self.requirements, *self.through_develop, *self.options,
                       *(f"-c {c}" for c in self.constraints)})


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
        elif head in INDEX_OPTIONS:
            self.problems.append(Problem(where, f"{head} is not allowed here: the index comes from "
                                                "env.yaml's `index` alone"))
        elif head.startswith("-"):
            self.problems.append(Problem(where, f"option {head} is not supported in needs (allowed: "
                                                "-r, -c, --no-binary, --only-binary, --prefer-binary, "
                                                "--pre); local trees go under `develop`"))
        else:
            self.requirement(where, text, constraint=constraint)

    def requirement(self, where: str, text: str, *, constraint: bool) -> None:
        if (req := self.parse(where, text)) is not None:
            (self.constraints if constraint else self.requirements)[normalize_requirement(req)] = None

    def parse(self, where: str, text: str, prefix: str = "") -> Requirement | None:
        """``text`` as a requirement from the index, or None (the problem recorded)."""
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            self.problems.append(Problem(where, f"{prefix}{text!r} is not a requirement: {exc}"))
            return None
        if req.url:
            self.problems.append(Problem(where, f"{prefix}{text!r} is a direct reference: a lock pins "
                                                "name==version from the index; put local trees "
                                                "under `develop`"))
            return None
        return req

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


# --- pyproject.toml ---------------------------------------------------------------------

#: Where tomllib says a syntax error is: ``... (at line 3, column 8)``.
_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_TOML_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""
_TOML_HEADER = re.compile(rf"^\s*\[\s*({_TOML_PART}(?:\s*\.\s*{_TOML_PART})*)\s*\]\s*(?:#.*)?$")
_TOML_KEY = re.compile(rf"^\s*({_TOML_PART}(?:\s*\.\s*{_TOML_PART})*)\s*=")


def _key_parts(text: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in re.findall(_TOML_PART, text))


class _TomlLines:
    """Where keys are written in a TOML file: tomllib keeps no positions, so a small scan
    of the lines finds each table header (``[a.b]``) and each ``key =`` line. It does not
    parse TOML (a multi-line string that looks like a header could mislead it); where it
    finds nothing, messages name the file and the TOML key path alone."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.keys: dict[tuple[str, ...], int] = {}
        self.starts: set[int] = set()  # lines that open a table or a key
        table: tuple[str, ...] = ()
        for number, line in enumerate(self.lines, 1):
            if header := _TOML_HEADER.match(line):
                table = _key_parts(header.group(1))
                self.keys.setdefault(table, number)
                self.starts.add(number)
            elif key := _TOML_KEY.match(line):
                self.keys.setdefault((*table, *_key_parts(key.group(1))), number)
                self.starts.add(number)

    def line(self, *path: str) -> int:
        """The line that defines ``path``, else its closest enclosing table's; 0: not found."""
        while path:
            if path in self.keys:
                return self.keys[path]
            path = path[:-1]
        return 0

    def value_line(self, path: tuple[str, ...], text: str) -> int:
        """The line of the string ``text`` in the array at ``path``, else the array's line."""
        start = self.keys.get(path, 0)
        if not start:
            return self.line(*path)
        quoted = (f'"{text}"', f"'{text}'")
        for number in range(start, len(self.lines) + 1):
            if number > start and number in self.starts:
                break  # the next key: the string was written with escapes, or not at all
            if any(q in self.lines[number - 1] for q in quoted):
                return number
        return start


def _names(names: tuple[str, ...], wheres: tuple[str, ...], default: str) -> Iterator[tuple[str, str]]:
    """Each name with where env.yaml asked for it (``default`` when not recorded)."""
    for i, name in enumerate(names):
        yield name, wheres[i] if i < len(wheres) else default


class _PyProject:
    """Reads the needs a pyproject.toml declares into a :class:`_Collector`: ``[project]
    dependencies``, the extras and the PEP 735 dependency groups asked for.

    Problems are located ``pyproject.toml:LINE`` (see :class:`_TomlLines`) and name the
    TOML key path; those about a name env.yaml asks for also say where it asks.
    """

    def __init__(self, collector: _Collector, ns: NeedsSpec) -> None:
        assert ns.pyproject is not None
        self.c = collector
        self.ns = ns
        self.path = ns.pyproject
        self.shown = display_path(ns.pyproject)
        self.asked = ns.where[0] if ns.where else ns.key
        self.lines = _TomlLines("")
        self.project: dict[str, Any] | None = None
        self.dynamic: list[object] = []
        self.name: str | None = None
        self.groups: dict[str, Any] | None = None
        self.extras_read: set[str] = set()
        self.groups_read: set[str] = set()
        self.through_develop: dict[str, None] = {}

    def at(self, *path: str) -> str:
        line = self.lines.line(*path)
        return f"{self.shown}:{line}" if line else self.shown

    def problem(self, where: str, message: str) -> None:
        self.c.problems.append(Problem(where, message))

    def load(self) -> dict[str, Any] | None:
        if (why := path_problem(str(self.path))) is not None:
            self.problem(self.asked, f"the file name {why}")
            return None
        try:
            self.path = self.path.resolve()
            text = read_text(self.path)
        except (OSError, RuntimeError, UnicodeDecodeError) as exc:  # RuntimeError: a symlink loop
            self.problem(self.asked, f"cannot read {self.shown}: {reason(exc)}")
            return None
        self.c.files[self.path] = None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = _TOML_AT.search(str(exc))
            where = f"{self.shown}:{found.group(1)}:{found.group(2)}" if found else self.shown
            self.problem(where, f"is not valid TOML: {_TOML_AT.sub('', str(exc))}")
            return None
        self.lines = _TomlLines(text)
        return data

    def read(self) -> tuple[str, ...]:
        """Read what ``ns`` asks for; return the requirements that reach the lock through a
        develop tree (see :attr:`NeedsSpec.develop_tree`)."""
        data = self.load()
        if data is None:
            return ()
        project = data.get("project")
        if project is not None and not isinstance(project, dict):
            self.problem(self.at("project"), "[project] must be a table")
        elif isinstance(project, dict):
            self.project = project
            name = project.get("name")
            self.name = canonicalize_name(name) if isinstance(name, str) else None
            dynamic = project.get("dynamic", [])
            self.dynamic = dynamic if isinstance(dynamic, list) else []
            self.dependencies()
        elif not self.ns.groups:
            self.problem(self.shown, f"has no [project] table, so no dependencies to read (asked at "
                                     f"{self.asked}); name its dependency groups under `groups:`")
        groups = data.get("dependency-groups")
        if groups is not None and not isinstance(groups, dict):
            self.problem(self.at("dependency-groups"), "[dependency-groups] must be a table")
        elif isinstance(groups, dict):
            self.groups = groups
            normalized: dict[str, list[str]] = {}
            for key in groups:
                normalized.setdefault(canonicalize_name(key), []).append(key)
            for keys in normalized.values():
                if len(keys) > 1:  # PEP 735: names compare normalized, so these are one group twice
                    self.problem(self.at("dependency-groups", keys[1]),
                                 f"[dependency-groups] {' and '.join(keys)} are the same group "
                                 "(names compare normalized)")
        for extra, where in _names(self.ns.extras, self.ns.extras_where, self.asked):
            self.read_extra(extra, f"asked at {where}")
        for group, where in _names(self.ns.groups, self.ns.groups_where, self.asked):
            self.read_group(group, f"asked at {where}")
        return tuple(self.through_develop)

    def dependencies(self) -> None:
        assert self.project is not None
        if "dependencies" in self.dynamic:
            if not self.ns.develop_tree:  # a develop tree's backend reports them at lock time
                self.problem(self.at("project", "dynamic"),
                             "[project] dynamic: `dependencies` is dynamic: its build backend computes "
                             "it, so it cannot be read statically; list the needs in env.yaml (or a "
                             "requirements file), or put the tree under `develop`")
            return
        if "dependencies" in self.project:
            self.requirements(self.project["dependencies"], ("project", "dependencies"),
                              develop=self.ns.develop_tree)

    def requirements(self, value: object, path: tuple[str, ...], *, marker: Marker | None = None,
                     develop: bool = False) -> None:
        """The requirement strings of the array at ``path``."""
        key = ".".join(path)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(self.at(*path), f"{key} must be an array of requirement strings")
            return
        for text in value:
            self.requirement(text, path, marker=marker, develop=develop)

    def requirement(self, text: str, path: tuple[str, ...], *, marker: Marker | None = None,
                    develop: bool = False) -> None:
        line = self.lines.value_line(path, text)
        where = f"{self.shown}:{line}" if line else self.shown
        req = self.c.parse(where, text, prefix=f"{'.'.join(path)}: ")
        if req is None:
            return
        if marker is not None:
            req.marker = Marker(f"({marker}) and ({req.marker})") if req.marker else marker
        if self.name is not None and canonicalize_name(req.name) == self.name:
            # The project itself (`myapp[test]` in an extra or a group): its own dependencies
            # are read already, so it stands for its extras.
            for extra in sorted(req.extras):
                self.read_extra(extra, f"named at {where}", marker=req.marker)
            return
        (self.through_develop if develop else self.c.requirements)[normalize_requirement(req)] = None

    def read_extra(self, extra: str, asked: str, *, marker: Marker | None = None) -> None:
        name = canonicalize_name(extra)
        if name in self.extras_read:
            return  # asked twice, or an extra naming itself through the project
        self.extras_read.add(name)
        if self.project is None:
            self.problem(self.shown, f"has no [project] table, so no extra {extra!r} ({asked})")
            return
        if "optional-dependencies" in self.dynamic:
            self.problem(self.at("project", "dynamic"),
                         f"[project] dynamic: `optional-dependencies` is dynamic: its build backend "
                         f"computes it, so the extra {extra!r} cannot be read statically ({asked}); "
                         "list its needs in env.yaml (or a requirements file)")
            return
        table = self.project.get("optional-dependencies", {})
        if not isinstance(table, dict):
            self.problem(self.at("project", "optional-dependencies"),
                         "project.optional-dependencies must be a table of arrays")
            return
        found = {canonicalize_name(k): k for k in table}
        if name not in found:
            self.problem(self.at("project", "optional-dependencies"),
                         f"[project.optional-dependencies] has no extra {extra!r} ({asked}; "
                         f"it has: {', '.join(sorted(table)) or 'none'})")
            return
        self.requirements(table[found[name]], ("project", "optional-dependencies", found[name]),
                          marker=marker)

    def read_group(self, group: str, asked: str, *, stack: tuple[str, ...] = (), where: str = "") -> None:
        """The PEP 735 group ``group`` with the groups it includes; ``stack``: the groups
        including it, outermost first; ``where``: its include-group line, if included."""
        if self.groups is None:
            self.problem(self.shown, f"has no [dependency-groups] table, so no group {group!r} ({asked})")
            return
        found = {canonicalize_name(k): k for k in self.groups}
        name = canonicalize_name(group)
        if name not in found:
            known = ", ".join(sorted(self.groups)) or "none"
            if stack:
                self.problem(where, f"[dependency-groups] {stack[-1]}: include-group {group!r} is not "
                                    f"a group (it has: {known})")
            else:
                self.problem(self.at("dependency-groups"), f"[dependency-groups] has no group {group!r} "
                                                           f"({asked}; it has: {known})")
            return
        key = found[name]
        if key in stack:
            cycle = " -> ".join([*stack[stack.index(key):], key])
            self.problem(where, f"[dependency-groups] include-group cycle: {cycle}")
            return
        if name in self.groups_read:
            return  # included twice: its needs are in already
        path = ("dependency-groups", key)
        value = self.groups[key]
        if not isinstance(value, list):
            self.problem(self.at(*path), f"[dependency-groups] {key} must be an array")
            return
        for item in value:
            if isinstance(item, str):
                self.requirement(item, path)
            elif (isinstance(item, dict) and list(item) == ["include-group"]
                  and isinstance(item["include-group"], str)):
                line = self.lines.value_line(path, item["include-group"])
                self.read_group(item["include-group"], asked, stack=(*stack, key),
                           where=f"{self.shown}:{line}" if line else self.shown)
            else:
                self.problem(self.at(*path), f"[dependency-groups] {key}: {item!r} is neither a "
                                             "requirement string nor {include-group = \"NAME\"}")
        self.groups_read.add(name)


def read_needs(ns: NeedsSpec, root: Path) -> tuple[Needs, list[Problem]]:
    """Read ``ns`` (a file, or an inline list of env.yaml) with relative paths starting at
    ``root`` (env.yaml's folder); return the needs and every problem."""
    collector = _Collector(root)
    through_develop: tuple[str, ...] = ()
    if ns.pyproject is not None:
        through_develop = _PyProject(collector, ns).read()
        label = relative(ns.pyproject, root)
    elif ns.file is not None:
        collector.file(ns.where[0] if ns.where else ns.key, ns.file)
        label = f"-r {relative(ns.file, root)}"
    else:
        for where, item in zip(ns.where, ns.items, strict=True):
            collector.entry(where, item.strip(), root)
        label = f"{ns.origin}:{ns.key}"
    needs = Needs(key=ns.key, label=label, requirements=tuple(collector.requirements),
                  options=tuple(collector.options), constraints=tuple(collector.constraints),
                  files=tuple(collector.files), through_develop=through_develop)
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
