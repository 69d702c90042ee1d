"""A located YAML reader: every value with its ``file:line:col``, every problem collected.

The text is *composed* with PyYAML's safe loader (never constructed with a full
loader), so each node keeps its position. The reader accepts plain YAML only: the
standard tags of mappings, lists, strings, numbers, booleans and null. Anything
else (``!custom``, ``!!python/name:...``, ``!!timestamp``, ``!!set``) is a located
problem, and so is a value that an explicit standard tag cannot construct
(``!!int abc``, ``!!bool maybe``). Nesting is bounded before composing, because
PyYAML composes recursively and a few hundred levels would end in ``RecursionError``.

Layers: documents composed with :func:`compose_text`'s ``origin`` carry their file in
every mark, so a tree merged from several files (:meth:`NodeReader.overlay`) still
locates each value in the file that wrote it (:meth:`NodeReader.where`), and paths in
it can start from that file's folder (:meth:`NodeReader.file_of`).

Generic on purpose: env.yaml is read with it, and so can any other YAML file pinfold
reads. Only the schema (which keys, which types) belongs to the caller.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import Problem
from ..paths import display_path
from ..runner import redact

__all__ = ["APPEND", "MAX_DEPTH", "REMOVE", "Located", "NodeReader", "YamlProblem", "compose_text",
           "kind_of", "plain_of"]

#: Deeper nesting than any configuration needs, and far below Python's recursion limit.
MAX_DEPTH = 64

_T = TypeVar("_T")
_STD = "tag:yaml.org,2002:"
#: The tags a node may carry: plain YAML's, for its kind of node.
_SCALAR_TAGS = {f"{_STD}{t}" for t in ("str", "int", "float", "bool", "null")}
_MAPPING_TAG = f"{_STD}map"
_SEQUENCE_TAG = f"{_STD}seq"
#: Key suffixes of a layer: ``KEY+`` appends to the inherited list, ``KEY-`` removes from it.
APPEND = "+"
REMOVE = "-"


class YamlProblem(Exception):
    """The text is not YAML pinfold reads (syntax, or nesting too deep); ``problem`` is located."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _where(shown: str, mark: Any) -> str:  # noqa: ANN401 (yaml.Mark: two classes, C and Python)
    return f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown


def _origin(mark: Any) -> Path | None:  # noqa: ANN401 (yaml.Mark)
    """The file a mark was composed from, when :func:`compose_text` was given it."""
    name = getattr(mark, "name", None)
    return Path(name) if isinstance(name, str) and os.path.isabs(name) else None


def _shown_at(mark: Any, default: str) -> str:  # noqa: ANN401 (yaml.Mark)
    origin = _origin(mark)
    return display_path(origin) if origin is not None else default


def _check_depth(text: str, shown: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`, from the event stream (not recursive)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlProblem(Problem(_where(shown, event.start_mark),
                                          f"nested deeper than {MAX_DEPTH} levels"))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_tags(root: yaml.Node, shown: str) -> list[Problem]:
    """Every node whose tag is not plain YAML's for its kind (aliases are visited once)."""
    problems: list[Problem] = []
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            ok = node.tag == _MAPPING_TAG
            todo += [n for pair in reversed(node.value) for n in reversed(pair)]
        elif isinstance(node, yaml.SequenceNode):
            ok = node.tag == _SEQUENCE_TAG
            todo += list(reversed(node.value))
        else:
            ok = node.tag in _SCALAR_TAGS
        if not ok:
            tag = node.tag.replace(_STD, "!!")
            problems.append(Problem(_where(_shown_at(node.start_mark, shown), node.start_mark),
                                    f"the YAML tag {tag} is not supported: write a plain value"))
    return problems


def compose_text(text: str, shown: str, *, origin: Path | None = None) -> yaml.Node | None:
    """Compose ``text`` (shown as ``shown`` in messages); None for an empty document.

    ``origin``: the absolute path of the file ``text`` was read from; every node's marks
    then name it, so :class:`NodeReader` locates the node in that file even after it was
    merged into another file's tree.

    Raises :class:`YamlProblem` for invalid YAML or too deep nesting. Tags are checked
    by :meth:`NodeReader.tag_problems`, which lists all of them.
    """
    try:
        _check_depth(text, shown)
        loader = yaml.SafeLoader(text)
        if origin is not None:
            loader.name = str(origin)  # the Reader puts its name into every mark it makes
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(Problem(_where(shown, mark), problem)) from None
    return root


def kind_of(node: yaml.Node) -> str:
    """What a node holds, for "expected X, got Y": a kind, or the number or boolean itself."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    if tag == "null":
        return "nothing"
    if tag == "str":
        return "a string"
    value = str(node.value)
    return value if len(value) <= 40 else value[:37] + "..."


def plain_of(node: yaml.Node) -> object:
    """A hashable, comparable form of a node's content (for ``KEY-``: which items to remove).

    Scalars compare by resolved tag and text (``3`` is not ``"3"``), lists item by item,
    mappings key by key in order. Where a value was written plays no part.
    """
    if isinstance(node, yaml.MappingNode):
        return ("map", tuple((plain_of(k), plain_of(v)) for k, v in node.value))
    if isinstance(node, yaml.SequenceNode):
        return ("seq", tuple(plain_of(n) for n in node.value))
    return (node.tag, node.value)


@dataclass(frozen=True, slots=True)
class Located:
    """A value with the ``file:line`` it was written at; lists and mappings hold Located too."""

    #: A str, int, float, bool or None; a list of Located; or a dict of str -> Located.
    value: object
    #: ``file:line`` of the value (of the mapping or list itself for those).
    where: str

    def plain(self) -> object:
        """The value without locations: what ``yaml.safe_load`` of the same text gives."""
        if isinstance(self.value, list):
            return [item.plain() for item in self.value]
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        return self.value

    def origins(self, key: str = "") -> dict[str, str]:
        """``dotted.key[i]`` -> ``file:line`` of every scalar, empty list and empty mapping."""
        if isinstance(self.value, list) and self.value:
            return {k: w for i, item in enumerate(self.value) for k, w in item.origins(f"{key}[{i}]").items()}
        if isinstance(self.value, dict) and self.value:
            return {k: w for name, v in self.value.items()
                    for k, w in v.origins(f"{key}.{name}" if key else name).items()}
        return {key: self.where}


def _key_name(knode: yaml.Node) -> str | None:
    return knode.value if isinstance(knode, yaml.ScalarNode) and isinstance(knode.value, str) else None


def _dotted(key: str, name: str) -> str:
    shown_name = name if len(name) <= 60 else "<key>"
    return f"{key}.{shown_name}" if key else shown_name


class NodeReader:
    """Walks composed nodes of one file (or of layers merged into it), collecting located
    problems instead of raising."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.shown = display_path(file)
        self.problems: list[Problem] = []
        self._construct = yaml.constructor.SafeConstructor()

    def tag_problems(self, root: yaml.Node) -> None:
        """Record a problem for every node with a tag other than plain YAML's."""
        self.problems += _check_tags(root, self.shown)

    def file_of(self, node: yaml.Node) -> Path:
        """The file ``node`` was written in (``file`` unless composed with another ``origin``)."""
        return _origin(node.start_mark) or self.file

    def shown_of(self, node: yaml.Node) -> str:
        """The file that wrote ``node``, as the user would write it (see :meth:`file_of`)."""
        return _shown_at(node.start_mark, self.shown)

    def where(self, node: yaml.Node) -> str:
        """``file:line:col`` of ``node``, in the file that wrote it."""
        return _where(self.shown_of(node), node.start_mark)

    def located(self, node: yaml.Node) -> Located:
        """``node`` as plain values, each with the ``file:line`` that wrote it."""
        where = _where(_shown_at(node.start_mark, self.shown), node.start_mark).rsplit(":", 1)[0]
        if isinstance(node, yaml.MappingNode):
            return Located({str(_key_name(k) or "<key>"): self.located(v) for k, v in node.value}, where)
        if isinstance(node, yaml.SequenceNode):
            return Located([self.located(n) for n in node.value], where)
        try:
            value = self._construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
        except ValueError:  # e.g. `!!int abc`: shown as written; validation reports it
            value = node.value
        if isinstance(value, str):
            value = redact(value)  # what `pinfold config` shows: an index password as ****
        return Located(value, where)

    # -- layers -------------------------------------------------------------------------

    def overlay(self, base: yaml.Node | None, over: yaml.Node, key: str = "") -> yaml.Node:
        """``over`` applied on top of ``base`` (None: nothing inherited); problems recorded.

        Mappings merge key by key; anything else in ``over`` replaces what it inherits.
        In a mapping of ``over``, ``KEY+: [...]`` appends to the inherited list ``KEY``
        (and sets it when nothing is inherited, as Buildout's ``+=``), ``KEY-: [...]``
        removes those items from it (both may be written, applied in the order written; not
        with ``KEY`` itself). The result holds no ``KEY+``/``KEY-`` keys and no
        duplicate keys, and each node keeps the marks of the file that wrote it.
        """
        if not isinstance(over, yaml.MappingNode):
            return over
        inherited: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        if isinstance(base, yaml.MappingNode):
            inherited = {name: (k, v) for k, v in base.value if (name := _key_name(k)) is not None}
        out = dict(inherited)
        others: list[tuple[yaml.Node, yaml.Node]] = []  # keys that are not strings: the schema says no
        if isinstance(base, yaml.MappingNode):
            others = [(k, v) for k, v in base.value if _key_name(k) is None]
        seen: dict[str, list[str]] = {}
        for knode, vnode in over.value:
            name = _key_name(knode)
            if name is None:
                others.append((knode, vnode))
                continue
            dotted = _dotted(key, name)
            op = name[-1] if len(name) > 1 and name[-1] in (APPEND, REMOVE) else ""
            target = name[:-1] if op else name
            names = seen.setdefault(target, [])
            if name in names:
                self.error(knode, dotted, "duplicate key")
                continue
            if names and (not op or target in names):
                # `KEY` with `KEY+`/`KEY-`: which one wins would be a guess. `KEY+` with `KEY-`
                # is fine: the edits apply in the order written.
                self.error(knode, dotted, f"`{target}` is set in the same file: write one of them")
                continue
            names.append(name)
            old = out.get(target)
            if not op:
                out[target] = (knode, self.overlay(old[1] if old else None, vnode, dotted))
                continue
            renamed = yaml.ScalarNode(knode.tag, target, knode.start_mark, knode.end_mark)
            if (merged := self._edit_list(op, old, vnode, dotted, target)) is not None:
                out[target] = (renamed, merged)
        return yaml.MappingNode(_MAPPING_TAG, [*out.values(), *others], over.start_mark, over.end_mark)

    def _edit_list(self, op: str, old: tuple[yaml.Node, yaml.Node] | None, vnode: yaml.Node,
                   dotted: str, target: str) -> yaml.Node | None:
        """``KEY+``/``KEY-``: the inherited list edited by ``vnode``, or None (recorded)."""
        verb = "append" if op == APPEND else "remove"
        if not isinstance(vnode, yaml.SequenceNode):
            self.error(vnode, dotted, f"expected a list of items to {verb}, got {kind_of(vnode)}")
            return None
        if old is None:
            if op == APPEND:
                return vnode  # nothing inherited: `KEY+` sets it, as Buildout's `+=` does
            self.error(vnode, dotted, f"nothing to remove from: no `{target}` is inherited")
            return None
        inherited = old[1]
        if not isinstance(inherited, yaml.SequenceNode):
            self.error(vnode, dotted, f"cannot {verb} items: the inherited `{target}` "
                                      f"({self.where(inherited)}) is {kind_of(inherited)}, not a list")
            return None
        if op == APPEND:
            items = [*inherited.value, *vnode.value]
        else:
            have = {plain_of(n) for n in inherited.value}
            for i, item in enumerate(vnode.value):
                if plain_of(item) not in have:
                    self.error(item, f"{dotted}[{i}]", f"not in the inherited `{target}` "
                                                       f"({self.where(inherited)})")
            gone = {plain_of(n) for n in vnode.value}
            items = [n for n in inherited.value if plain_of(n) not in gone]
        # The list as the last layer that edited it left it; each item keeps its own marks.
        return yaml.SequenceNode(_SEQUENCE_TAG, items, vnode.start_mark, vnode.end_mark,
                                 flow_style=vnode.flow_style)

    # -- values -------------------------------------------------------------------------

    def error(self, node: yaml.Node, key: str, message: str) -> None:
        """Record a problem at ``node``, naming the dotted ``key``."""
        self.problems.append(Problem(self.where(node), f"{key}: {message}" if key else message))

    def mapping(self, node: yaml.Node, key: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        """The keys of a mapping node; unknown keys are errors with a close match."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, key, f"expected a mapping, got {kind_of(node)}")
            return {}
        out: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            name = knode.value if isinstance(knode, yaml.ScalarNode) else None
            shown_name = name if isinstance(name, str) and len(name) <= 60 else "<key>"
            dotted = f"{key}.{shown_name}" if key else shown_name
            if not isinstance(name, str) or name not in allowed:
                close = difflib.get_close_matches(str(name)[:100], allowed, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                known = ", ".join(allowed)
                self.error(knode, dotted, f"unknown key (known keys: {known}){hint}")
            elif name in out:
                self.error(knode, dotted, "duplicate key")
            else:
                out[name] = vnode
        return out

    def _construct_scalar(self, node: yaml.ScalarNode) -> object:
        """The Python value of a plain-YAML scalar; raises ValueError when its tag cannot hold it."""
        if node.tag not in _SCALAR_TAGS:
            raise ValueError(f"the YAML tag {node.tag.replace(_STD, '!!')} is not supported")
        try:
            return self._construct.construct_object(node)
        except (yaml.YAMLError, ValueError, KeyError, TypeError, OverflowError) as exc:
            # e.g. `!!int abc`, `!!bool maybe`: the explicit tag names a type the text is not.
            raise ValueError(f"{node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}") from exc

    def scalar(self, node: yaml.Node, key: str, kind: type[_T], what: str) -> _T | None:
        """A scalar of Python type ``kind`` (``what`` names it for messages), or None (recorded)."""
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self._construct_scalar(node)
            except ValueError as exc:
                self.error(node, key, f"expected {what}: {exc}")
                return None
            # bool is an int in Python: do not accept `true` where a number is meant.
            if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
                return value
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)  # type: ignore[return-value]
        self.error(node, key, f"expected {what}, got {kind_of(node)}")
        return None

    def whole_number(self, node: yaml.Node, key: str) -> int | None:
        """An integer (``1``, not ``1.0``)."""
        return self.scalar(node, key, int, "a whole number")

    def seconds(self, node: yaml.Node, key: str) -> float | None:
        """A positive, finite number of seconds."""
        value = self.scalar(node, key, float, "a number of seconds")
        if value is not None and (not math.isfinite(value) or value <= 0):
            self.error(node, key, f"expected a positive number of seconds, got {node.value}")
            return None
        return value

    def boolean(self, node: yaml.Node, key: str) -> bool | None:
        """``true`` or ``false``."""
        return self.scalar(node, key, bool, "true or false")

    def string(self, node: yaml.Node, key: str) -> str | None:
        """A non-empty string."""
        value = self.scalar(node, key, str, "a string")
        if value is not None and not value.strip():
            self.error(node, key, "must not be empty")
            return None
        return value

    def strings(self, node: yaml.Node, key: str, *, single_ok: bool = False) -> list[tuple[yaml.Node, str]]:
        """The valid items of a list of strings (or one string, where ``single_ok``), each with
        its own node: an invalid item is recorded and left out, so positions stay right."""
        if single_ok and isinstance(node, yaml.ScalarNode):
            value = self.string(node, key)
            return [(node, value)] if value is not None else []
        out = []
        for dotted, item in self.items(node, key, what="a list of strings"):
            value = self.string(item, dotted)
            if value is not None:
                out.append((item, value))
        return out

    def string_list(self, node: yaml.Node, key: str) -> list[str]:
        """The values of :meth:`strings`, for keys whose items need no location."""
        return [value for _, value in self.strings(node, key)]

    def items(self, node: yaml.Node, key: str, *, what: str = "a list") -> Iterator[tuple[str, yaml.Node]]:
        """``(key[i], item)`` for each item of a list node."""
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, key, f"expected {what}, got {kind_of(node)}")
            return
        for i, item in enumerate(node.value):
            yield f"{key}[{i}]", item
