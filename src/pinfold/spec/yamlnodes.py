"""A located YAML reader: every value with its ``file:line:col``, every problem collected.

The text is *composed* with PyYAML's safe loader (never constructed with a full
loader), so each node keeps its position. The reader accepts plain YAML only: the
standard tags of mappings, lists, strings, numbers, booleans and null. Anything
else (``!custom``, ``!!python/name:...``, ``!!timestamp``, ``!!set``) is a located
problem, and so is a value that an explicit standard tag cannot construct
(``!!int abc``, ``!!bool maybe``). Nesting is bounded before composing, because
PyYAML composes recursively and a few hundred levels would end in ``RecursionError``.

Generic on purpose: env.yaml is read with it, and so can any other YAML file pinfold
reads. Only the schema (which keys, which types) belongs to the caller.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import Problem
from ..paths import display_path

__all__ = ["MAX_DEPTH", "NodeReader", "YamlProblem", "compose_text", "kind_of"]

#: Deeper nesting than any configuration needs, and far below Python's recursion limit.
MAX_DEPTH = 64

_T = TypeVar("_T")
_STD = "tag:yaml.org,2002:"
#: The tags a node may carry: plain YAML's, for its kind of node.
_SCALAR_TAGS = {f"{_STD}{t}" for t in ("str", "int", "float", "bool", "null")}
_MAPPING_TAG = f"{_STD}map"
_SEQUENCE_TAG = f"{_STD}seq"


class YamlProblem(Exception):
    """The text is not YAML pinfold reads (syntax, or nesting too deep); ``problem`` is located."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _where(shown: str, mark: Any) -> str:  # noqa: ANN401 (yaml.Mark: two classes, C and Python)
    return f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown


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
            problems.append(Problem(_where(shown, node.start_mark),
                                    f"the YAML tag {tag} is not supported: write a plain value"))
    return problems


def compose_text(text: str, shown: str) -> yaml.Node | None:
    """Compose ``text`` (shown as ``shown`` in messages); None for an empty document.

    Raises :class:`YamlProblem` for invalid YAML or too deep nesting. Tags are checked
    by :meth:`NodeReader.tag_problems`, which lists all of them.
    """
    try:
        _check_depth(text, shown)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
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


class NodeReader:
    """Walks composed nodes of one file, collecting located problems instead of raising."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.shown = display_path(file)
        self.problems: list[Problem] = []
        self._construct = yaml.constructor.SafeConstructor()

    def tag_problems(self, root: yaml.Node) -> None:
        """Record a problem for every node with a tag other than plain YAML's."""
        self.problems += _check_tags(root, self.shown)

    def where(self, node: yaml.Node) -> str:
        """``file:line:col`` of ``node``."""
        return _where(self.shown, node.start_mark)

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
