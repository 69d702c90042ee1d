"""The needs a lock was written for: recorded in its header, compared with env.yaml's.

``pinfold lock`` records the normalized needs (a sorted list and its digest) in each
lock's header. Commands that install from the locks (``build``, ``plan``, ``status``)
compare that record with env.yaml's current needs (:func:`require_current_locks`) and
refuse a lock whose needs were added to or removed since it was written. Reading the
needs themselves is :mod:`pinfold.needs`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..errors import Problem, SpecError
from ..locks import Lock
from ..needs import Needs, read_needs, relative
from ..paths import display_path, read_text
from ..pylock import is_pylock, read_pylock
from ..spec import NeedsSpec, Spec

__all__ = [
    "NeedsRecord",
    "digest",
    "read_record",
    "record_items",
    "render_record",
    "require_current_locks",
    "stale_problems",
]

#: The header line that opens a record: ``# needs: sha256:<hex>``.
_RECORD = re.compile(r"^#\s+(needs|build_needs):\s+sha256:([0-9a-f]{64})\s*$")
_ITEM = re.compile(r"^#\s{3,}(\S.*?)\s*$")

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
    resolved into the runtime lock too; and env.yaml's ``targets`` (``--target LABEL``).
    Needs read from a pyproject.toml are recorded as the
    requirements it declares (those of its extras and groups included), so editing them makes
    the lock stale; for a develop tree's own pyproject.toml, its static ``[project]
    dependencies`` are recorded beside ``-e path`` (:attr:`Needs.through_develop`).
    """
    ns = spec.needs if key == "needs" else spec.build_needs
    if ns is None:
        return [] if key == "build_needs" and spec.needs is not None else None
    needs, _ = read_needs(ns, spec.root)
    items = needs.items()
    if key == "needs":
        # The targets decide the pins as much as the needs do: a lock written for other
        # targets is stale too (recorded as env.yaml writes them, never a machine's path).
        items = sorted(items + [f"-e {relative(d, spec.root)}" for d in spec.develop]
                       + [f"--target {t.label}" for t in spec.targets])
    return items


def render_record(key: str, items: list[str]) -> list[str]:
    """The header lines that record ``items`` (sorted), with their digest."""
    return [f"# {key}: {digest(items)}", *(f"#     {i}" for i in sorted(items))]


def read_record(path: Path, key: str) -> NeedsRecord | None:
    """The record of ``key`` in the header of the lock at ``path``, or None (not written by pinfold)."""
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError):
        return None
    if is_pylock(path):  # a pylock keeps its record under [tool.pinfold.<key>]
        table = read_pylock(text, path.parent, str(path))[0].tool.get(key)
        if not isinstance(table, dict) or not isinstance(table.get("digest"), str):
            return None
        found = re.fullmatch(r"sha256:[0-9a-f]{64}", table["digest"])
        items = table.get("items", [])
        if found is None or not isinstance(items, list):
            return None
        return NeedsRecord(key, table["digest"], tuple(str(i) for i in items))
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
            needs, _ = read_needs(ns, spec.root)
            problems += [Problem(shown, f"does not match env.yaml's `{key}`: {why}")
                         for why in _unsatisfied(needs, lock)]
    return problems


def require_current_locks(spec: Spec) -> None:
    """Raise :class:`SpecError` (exit 2) when a lock no longer matches env.yaml's needs.

    The policy of the commands that install from the locks; ``check``, ``rollback`` and
    ``gc`` work on environments already built and do not ask.
    """
    if spec.needs is None and spec.build_needs is None:
        return
    if stale := stale_problems(spec):
        raise SpecError(f"{display_path(spec.file)}: the locks do not match its needs", stale,
                        tip="run `pinfold lock` to update them (it keeps every other pin)")
