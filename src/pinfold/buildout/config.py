"""A Buildout configuration tree, read the way zc.buildout reads it, every value located.

What is read, and how (zc.buildout's own rules, reimplemented):

- ``[section]`` headers, ``key = value`` options (``=`` only), continuation lines (indented),
  whole-line comments (``#`` or ``;`` in the first column; a ``#`` later in a value is part
  of it, as in Buildout), a value that starts on the next line keeps its relative
  indentation (Python source), the same section twice in a file merges, the same key twice
  in a file: the later one wins (reported);
- ``extends`` (and ``optional-extends``) of ``[buildout]``, each relative to the file that
  names it, bases first in the order listed, the extending file last; ``+=`` and ``-=`` add
  and remove lines of the inherited value; a cycle is an error;
- conditional sections ``[name:expression]`` (Buildout's names such as ``python311``,
  ``windows``, ``not``/``and``/``or`` of them, or a PEP 508 marker): each one is kept with its
  condition as an environment marker where one exists, and whether it applies to the target
  (pinfold's own interpreter, the one ``pinfold lock`` resolves for);
- ``${section:option}`` and ``${:option}`` substitution (with ``${buildout:directory}`` and the
  other directory defaults), and ``<= section`` macros.

A value is a list of lines, each with the ``file:line`` it was written at, so everything
mapped from it can name its origin. Remote ``extends`` (URLs) are read only when a fetcher
is given; otherwise every URL is named with the place that wants it.
"""

from __future__ import annotations

import ast
import os
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.markers import InvalidMarker, Marker

from ..errors import Problem, SpecError
from ..paths import display_path, path_problem, read_text, reason

__all__ = ["BuildoutConfig", "BuildoutError", "Condition", "Fetcher", "Value", "is_url", "read_buildout"]

#: Reads a URL's text (``pinfold import --upstream``); raises OSError.
Fetcher = Callable[[str], str]

_HEADER = re.compile(r"\[\s*(?P<name>[^\s#[\]:;{}]+)\s*(:(?P<expr>[^#;]*))?\s*]\s*([#;].*)?$")
_OPTION = re.compile(r"(?P<name>[^\s{}[\]=:]+\s*[-+]?)=(?P<value>.*)$")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_REF = re.compile(r"\$\{([^}]*)\}")
_REF_PART = re.compile(r"[-a-zA-Z0-9 ._]*")


class BuildoutError(SpecError):
    """The configuration cannot be read (syntax, a missing file, a cycle, a refused URL): exit 2."""


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``http://...``, ``file://...``) rather than a path."""
    return _URL.match(text) is not None


@dataclass(frozen=True, slots=True)
class Value:
    """One option's value: its lines, each with where it was written."""

    #: ``(line text, "file:line")`` for every line of the value.
    lines: tuple[tuple[str, str], ...]
    #: Where the option (or the last ``+=``/``-=`` that changed it) was written.
    where: str

    @property
    def text(self) -> str:
        """The value as Buildout gives it to a recipe."""
        return "\n".join(t for t, _ in self.lines)

    def words(self) -> list[tuple[str, str]]:
        """Whitespace-separated words, each with its line's location (``parts``, ``develop``)."""
        return [(w, at) for t, at in self.lines for w in t.split()]

    def items(self) -> list[tuple[str, str]]:
        """The non-empty lines, stripped, with their locations (``eggs``, ``entry-points``)."""
        return [(t.strip(), at) for t, at in self.lines if t.strip()]


@dataclass(frozen=True, slots=True)
class Condition:
    """The expression of a conditional section (``[versions:python27]``)."""

    expression: str
    #: The same condition as a PEP 508 marker, and its negation, when one exists.
    marker: str | None
    negation: str | None
    #: Whether it holds for the target (False also when the expression is not understood).
    applies: bool
    #: Why it could not be evaluated, when it could not.
    unknown: str = ""


@dataclass(slots=True)
class _Block:
    """One section header of one file and the options under it."""

    name: str
    condition: Condition | None
    where: str
    options: list[tuple[str, str, Value]] = field(default_factory=list)  # (key, op, value)


#: A merged section: key -> value; "+"/"-" keys are pending additions/removals.
_Section = dict[str, Value]


@dataclass(frozen=True, slots=True)
class ConditionalPin:
    """A pin of a conditional versions section, carried with its marker."""

    name: str
    value: Value
    condition: Condition
    section: str


@dataclass(slots=True)
class BuildoutConfig:
    """A configuration tree after layering: sections, notes, and the files it came from."""

    #: The file named on the command line, and ``${buildout:directory}``.
    file: Path
    directory: Path
    #: Every file (or URL) read, in the order first read, as displayed.
    files: list[str] = field(default_factory=list)
    #: URLs fetched, with the ``file:line`` of the ``extends`` that named them.
    downloaded: list[tuple[str, str]] = field(default_factory=list)
    #: The sections after layering, before substitution.
    raw: dict[str, _Section] = field(default_factory=dict)
    #: Where each section was first written.
    section_where: dict[str, str] = field(default_factory=dict)
    #: Pins of conditional versions sections that have a marker.
    conditional_pins: list[ConditionalPin] = field(default_factory=list)
    #: Things read that the report should mention: ``(where, message, suggestion)``.
    notes: list[tuple[str, str, str]] = field(default_factory=list)
    #: Substitution problems, by where (reported once each).
    problems: dict[str, str] = field(default_factory=dict)

    def has(self, section: str) -> bool:
        """Whether ``section`` exists."""
        return section in self.raw

    def section(self, name: str) -> dict[str, Value]:
        """Every option of ``name``, substituted (macros ``<=`` applied)."""
        out: dict[str, Value] = {}
        for key in self._keys(name, ()):
            if (v := self.get(name, key)) is not None:
                out[key] = v
        return out

    def get(self, section: str, option: str) -> Value | None:
        """One option, substituted; None when not set. A reference that cannot be resolved
        is recorded in :attr:`problems` and left as written."""
        return self._get(section, option, ())

    def _keys(self, name: str, stack: tuple[str, ...]) -> list[str]:
        raw = self.raw.get(name, {})
        keys: list[str] = []
        if "<" in raw and name not in stack:
            for base, _ in raw["<"].words():
                keys += self._keys(base, (*stack, name))
        keys += [k for k in raw if k != "<"]
        return list(dict.fromkeys(keys))

    def _raw(self, section: str, option: str, stack: tuple[str, ...] = ()) -> Value | None:
        raw = self.raw.get(section, {})
        if option in raw:
            return raw[option]
        if "<" in raw and section not in stack:
            for base, _ in reversed(raw["<"].words()):
                if (found := self._raw(base, option, (*stack, section))) is not None:
                    return found
        if section == "buildout":
            return self._default(option)
        return None

    def _default(self, option: str) -> Value | None:
        defaults = {"directory": str(self.directory), "bin-directory": "bin", "parts-directory": "parts",
                    "eggs-directory": "eggs", "develop-eggs-directory": "develop-eggs",
                    "versions": "versions"}
        if option not in defaults:
            return None
        text = defaults[option]
        if option.endswith("-directory"):
            text = str(self.directory / text)
        return Value(((text, "(Buildout's default)"),), "(Buildout's default)")

    def _get(self, section: str, option: str, seen: tuple[tuple[str, str], ...]) -> Value | None:
        raw = self._raw(section, option)
        if raw is None:
            return None
        if (section, option) in seen:
            chain = " -> ".join(f"${{{s}:{o}}}" for s, o in (*seen, (section, option)))
            self.problems.setdefault(raw.where, f"circular substitution: {chain}")
            return raw
        lines: list[tuple[str, str]] = []
        for text, at in raw.lines:
            sub = self._substitute(text, at, section, (*seen, (section, option)))
            lines += [(t, at) for t in sub.split("\n")] if sub != text else [(text, at)]
        value = replace(raw, lines=tuple(lines))
        if option.endswith("-directory") and section == "buildout" and value.text.strip():
            path = Path(value.text.strip())
            if not path.is_absolute():
                value = replace(value, lines=((str(self.directory / path), value.where),))
        return value

    def _substitute(self, text: str, at: str, section: str, seen: tuple[tuple[str, str], ...]) -> str:
        def one(match: re.Match[str]) -> str:
            ref = match.group(1)
            parts = ref.split(":")
            if len(parts) != 2 or not all(_REF_PART.fullmatch(p) for p in parts) or not parts[1]:
                self.problems.setdefault(at, f"${{{ref}}}: not a ${{section:option}} reference")
                return match.group(0)
            target, option = parts[0] or section, parts[1]
            if option == "_buildout_section_name_":
                return target
            found = self._get(target, option, seen)
            if found is None:
                self.problems.setdefault(at, f"${{{ref}}}: [{target}] has no option {option!r}")
                return match.group(0)
            return found.text

        return _REF.sub(one, text)


# -- conditions -------------------------------------------------------------------------


def _atoms() -> dict[str, tuple[str | None, str | None, bool | None]]:
    """Buildout's condition names: (marker, its negation, or None and a fixed truth value)."""
    import struct
    import sys

    atoms: dict[str, tuple[str | None, str | None, bool | None]] = {
        "python2": ('python_version < "3"', 'python_version >= "3"', None),
        "python3": ('python_version >= "3"', 'python_version < "3"', None),
        "cpython": ('platform_python_implementation == "CPython"',
                    'platform_python_implementation != "CPython"', None),
        "pypy": ('platform_python_implementation == "PyPy"',
                 'platform_python_implementation != "PyPy"', None),
        "jython": ('platform_python_implementation == "Jython"',
                   'platform_python_implementation != "Jython"', None),
        "ironpython": ('platform_python_implementation == "IronPython"',
                       'platform_python_implementation != "IronPython"', None),
        "linux": ('sys_platform == "linux"', 'sys_platform != "linux"', None),
        "windows": ('sys_platform == "win32"', 'sys_platform != "win32"', None),
        "cygwin": ('sys_platform == "cygwin"', 'sys_platform != "cygwin"', None),
        "macosx": ('sys_platform == "darwin"', 'sys_platform != "darwin"', None),
        "solaris": ('sys_platform == "sunos5"', 'sys_platform != "sunos5"', None),
        "posix": ('os_name == "posix"', 'os_name != "posix"', None),
        "bits32": (None, None, struct.calcsize("P") == 4),
        "bits64": (None, None, struct.calcsize("P") == 8),
        "little_endian": (None, None, sys.byteorder == "little"),
        "big_endian": (None, None, sys.byteorder == "big"),
    }
    for minor in ("24", "25", "26", "27", "30", "31", "32", "33", "34", "35", "36", "37", "38", "39",
                  "310", "311", "312", "313", "314", "315"):
        version = f"{minor[0]}.{minor[1:]}"
        atoms[f"python{minor}"] = (f'python_version == "{version}"', f'python_version != "{version}"', None)
    return atoms


def condition(expression: str) -> Condition:
    """A section expression: a PEP 508 marker, or Buildout's names with not/and/or."""
    expr = expression.strip().replace(r"\x23", "#").replace(r"\x3b", ";")
    try:
        marker = Marker(expr)
    except InvalidMarker:
        pass
    else:
        return Condition(expr, str(marker), None, marker.evaluate())
    atoms = _atoms()

    def walk(node: ast.expr) -> tuple[str | None, str | None, bool]:
        if isinstance(node, ast.Name) and node.id in atoms:
            m, n, fixed = atoms[node.id]
            return m, n, Marker(m).evaluate() if m is not None else bool(fixed)
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return None, None, node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            m, n, v = walk(node.operand)
            return n, m, not v
        if isinstance(node, ast.BoolOp):
            parts = [walk(v) for v in node.values]
            both = all(p[0] is not None for p in parts)
            if isinstance(node.op, ast.And):
                value = all(p[2] for p in parts)
                m = " and ".join(f"({p[0]})" for p in parts) if both else None
                n = " or ".join(f"({p[1]})" for p in parts) if both else None
            else:
                value = any(p[2] for p in parts)
                m = " or ".join(f"({p[0]})" for p in parts) if both else None
                n = " and ".join(f"({p[1]})" for p in parts) if both else None
            return m, n, value
        raise ValueError(ast.unparse(node))

    try:
        tree = ast.parse(expr, mode="eval")
        m, n, value = walk(tree.body)
    except (SyntaxError, ValueError) as exc:
        what = exc.args[0] if isinstance(exc, ValueError) else "not an expression"
        return Condition(expr, None, None, False, unknown=f"{what!r} is not understood")
    return Condition(expr, m, n, value)


# -- parsing one file ---------------------------------------------------------------------


def _parse(text: str, shown: str) -> tuple[list[_Block], list[Problem], list[tuple[str, str, str]]]:
    """One file's blocks, in order; problems (every bad line); notes (duplicate keys)."""
    blocks: list[_Block] = []
    problems: list[Problem] = []
    notes: list[tuple[str, str, str]] = []
    current: _Block | None = None
    option: list[object] | None = None  # [key, op, [(text, where)...], blockmode, where]
    seen: dict[tuple[str, str, str], str] = {}

    def close() -> None:
        nonlocal option
        if option is None or current is None:
            option = None
            return
        key, op, lines, blockmode, at = option
        assert isinstance(lines, list)
        texts = [t for t, _ in lines]
        wheres = [w for _, w in lines]
        if blockmode or (len(texts) > 1 and texts[0] == ""):
            # Buildout dedents a value that starts on the next line and drops its leading
            # blank lines (Python source keeps its relative indentation).
            while texts and not texts[-1].strip():
                texts.pop()
                wheres.pop()
            dedented = textwrap.dedent("\n".join(texts)).split("\n") if texts else []
            while dedented and not dedented[0].strip():
                dedented.pop(0)
                wheres.pop(0)
            texts = dedented
        current.options.append((str(key), str(op), Value(tuple(zip(texts, wheres, strict=True)), str(at))))
        option = None

    for no, line in enumerate(text.splitlines(), 1):
        at = f"{shown}:{no}"
        if line[:1] in ("#", ";"):
            continue
        if line[:1].isspace() and current is not None and option is not None:
            lines = option[2]
            assert isinstance(lines, list)
            if option[3]:
                lines.append((line.rstrip(), at))
            elif line.strip():
                lines.append((line.strip(), at))
            continue
        if (header := _HEADER.match(line)) is not None:
            close()
            expr = header.group("expr")
            cond = condition(expr) if expr and expr.strip() else None
            current = _Block(header.group("name"), cond, at)
            blocks.append(current)
            continue
        if not line.strip():
            if current is not None and option is not None and option[3]:
                lines = option[2]
                assert isinstance(lines, list)
                lines.append(("", at))
            continue
        if current is None:
            problems.append(Problem(at, f"{line.strip()!r}: an option before any [section] header"))
            continue
        if line[:2] == "=>":
            line = "<part-dependencies> = " + line[2:]
        match = _OPTION.match(line)
        if match is None:
            close()
            problems.append(Problem(at, f"{line.strip()!r}: not a [section] header nor a `key = value` "
                                        "option (continuation lines are indented)"))
            continue
        close()
        name = match.group("name").rstrip()
        op = name[-1] if name[-1] in "+-" else "="
        key = name.rstrip("+-").rstrip()
        value = match.group("value").strip()
        ident = (current.name, str(current.condition.expression if current.condition else ""), key + op)
        if op == "=" and ident in seen:
            notes.append((at, f"[{current.name}] {key} is set twice in this file (first at "
                              f"{seen[ident]}): the later value wins, as in Buildout",
                          "remove the first one"))
        seen[ident] = at
        option = [key, op, [(value, at)], not value, at]
    close()
    return blocks, problems, notes


def _merge_file(blocks: list[_Block], versions_names: set[str], cfg: BuildoutConfig,
                shown: str) -> dict[str, _Section]:
    """One file's sections, as Buildout's parser leaves them: same-name blocks merged, later
    keys winning, conditional blocks applied when they hold (versions ones kept as markers)."""
    out: dict[str, _Section] = {}
    for block in blocks:
        cond = block.condition
        if cond is not None:
            if block.name in versions_names and cond.marker is not None:
                for key, op, value in block.options:
                    if op == "=":
                        cfg.conditional_pins.append(ConditionalPin(key, value, cond, block.name))
                cfg.notes.append((block.where, f"[{block.name}:{cond.expression}]: its pins are kept "
                                               f"as constraints with the marker `{cond.marker}`", ""))
                continue
            if cond.unknown:
                cfg.notes.append((block.where, f"[{block.name}:{cond.expression}]: the condition "
                                               f"{cond.unknown}: the section is skipped",
                                  "rewrite it as a PEP 508 marker or as Buildout's names "
                                  "(python311, windows, ...)"))
                continue
            verdict = "applies to" if cond.applies else "does not apply to"
            cfg.notes.append((block.where, f"[{block.name}:{cond.expression}] {verdict} the target "
                                           "(pinfold's interpreter): " +
                                           ("applied" if cond.applies else "skipped"), ""))
            if not cond.applies:
                continue
        section = out.setdefault(block.name, {})
        cfg.section_where.setdefault(block.name, block.where)
        for key, op, value in block.options:
            if op == "=":
                section.pop(key + "+", None)
                section.pop(key + "-", None)
                section[key] = value
            elif key + op in section:
                old = section[key + op]
                section[key + op] = Value((*old.lines, *value.lines), value.where)
            else:
                section[key + op] = value
    return out


def _update_section(base: _Section, new: _Section) -> _Section:
    """``new`` over ``base``: ``+=`` adds lines to the inherited value, ``-=`` removes them."""
    out = dict(base)
    plain = {k: v for k, v in new.items() if k[-1:] not in "+-" or k in ("<",)}
    for key in sorted({k[:-1] for k in new if k[-1:] in "+-"}):
        value = plain.get(key, base.get(key, Value((), "")))
        if (add := new.get(key + "+")) is not None:
            value = Value((*value.lines, *add.lines), add.where)
        if (remove := new.get(key + "-")) is not None:
            gone = {t for t, _ in remove.lines}
            value = Value(tuple(line for line in value.lines if line[0] not in gone), remove.where)
        plain[key] = value
    out.update(plain)
    return out


# -- the tree ---------------------------------------------------------------------------


class _Reader:
    def __init__(self, root: Path, fetch: Fetcher | None) -> None:
        self.root = root
        self.fetch = fetch
        self.cfg = BuildoutConfig(file=root, directory=root.parent)
        self.problems: list[Problem] = []
        self.refused: list[Problem] = []
        self.fetched: dict[str, str] = {}
        self.versions_names = {"versions"}

    def shown(self, path: Path) -> str:
        try:
            return Path(os.path.relpath(path, self.root.parent)).as_posix()
        except ValueError:
            return display_path(path)

    def text(self, source: str, at: str) -> str | None:
        if is_url(source):
            if source not in self.fetched:
                assert self.fetch is not None
                try:
                    self.fetched[source] = self.fetch(source)
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    self.problems.append(Problem(at, f"cannot download {source}: {exc}"))
                    return None
                self.cfg.downloaded.append((source, at))
            return self.fetched[source]
        try:
            # read_text: a FIFO or /dev/zero named by `extends` is refused, not read forever.
            return read_text(Path(source))
        except (OSError, UnicodeDecodeError) as exc:
            why = "no such file" if isinstance(exc, FileNotFoundError) else reason(exc)
            self.problems.append(Problem(at, f"cannot read {self.shown(Path(source))}: {why}"))
            return None

    def open(self, source: str, at: str, stack: tuple[str, ...]) -> list[dict[str, _Section]]:
        """The layers of ``source`` (what it extends first, itself last), Buildout's order."""
        if source in stack:
            chain = " -> ".join(self.display(s) for s in (*stack, source))
            self.problems.append(Problem(at, f"{self.display(source)} extends itself: {chain}"))
            return []
        text = self.text(source, at)
        if text is None:
            return []
        shown = self.display(source)
        if shown not in self.cfg.files:
            self.cfg.files.append(shown)
        blocks, problems, notes = _parse(text, shown)
        self.problems += problems
        self.cfg.notes += notes
        for block in blocks:
            if block.name == "buildout" and block.condition is None:
                for key, op, value in block.options:
                    if key == "versions" and op == "=" and value.text.strip():
                        self.versions_names.add(value.text.strip())
        sections = _merge_file(blocks, self.versions_names, self.cfg, shown)
        layers: list[dict[str, _Section]] = []
        own = sections.get("buildout", {})
        for key in ("extends", "optional-extends"):
            if key not in own:
                continue
            value = own.pop(key)
            for name, where in value.words():
                if not is_url(name) and (why := path_problem(name)) is not None:
                    self.problems.append(Problem(where, f"{key} {name!r}: the path {why}"))
                    continue
                target = self.resolve(source, name)
                if key == "optional-extends" and not is_url(target) and not Path(target).exists():
                    self.cfg.notes.append((where, f"optional-extends {name}: not found, skipped", ""))
                    continue
                if is_url(target) and self.fetch is None:
                    self.refused.append(Problem(where, f"extends {target}: a remote file; "
                                                       "pinfold import does not download it"))
                    continue
                layers += self.open(target, where, (*stack, source))
        layers.append(sections)
        return layers

    def display(self, source: str) -> str:
        return source if is_url(source) else self.shown(Path(source))

    @staticmethod
    def resolve(base: str, name: str) -> str:
        if is_url(name):
            return name
        if is_url(base):
            if name.startswith("/"):
                return name
            return base[:base.rfind("/")] + "/" + name
        return str(Path(os.path.normpath(Path(base).parent / name)))


def read_buildout(file: Path | str, *, fetch: Fetcher | None = None) -> BuildoutConfig:
    """Read ``file`` and everything it extends; raise :class:`BuildoutError` with every
    problem (each at its ``file:line``) when the tree cannot be read.

    ``fetch`` downloads remote ``extends``; without one, each URL is named with the
    ``extends`` line that wants it, and nothing is read from the network.
    """
    root = Path(os.path.abspath(file))
    reader = _Reader(root, fetch)
    if not root.is_file():
        raise BuildoutError(f"{display_path(root)}: no such file", tip="give the buildout.cfg to import")
    layers = reader.open(str(root), display_path(root), ())
    if reader.problems:
        raise BuildoutError(f"{reader.cfg.files[0] if reader.cfg.files else root.name}: cannot read the "
                            "Buildout configuration", reader.problems)
    if reader.refused:
        raise BuildoutError("the configuration extends remote files, which are not downloaded without "
                            "--upstream", reader.refused,
                            tip="pass --upstream to download them once (their pins are carried into the "
                                "constraints file), or keep a local copy and point the chain at it")
    merged: dict[str, _Section] = {}
    for layer in layers:
        for name, section in layer.items():
            if name in merged:
                merged[name] = _update_section(merged[name], section)
            else:
                # `+=` / `-=` with nothing inherited: an assignment, and an empty one.
                merged[name] = _update_section({}, section)
    cfg = reader.cfg
    cfg.raw = merged
    if (directory := merged.get("buildout", {}).get("directory")) is not None and directory.text.strip():
        path = Path(directory.text.strip())
        cfg.directory = path if path.is_absolute() else root.parent / path
    return cfg
