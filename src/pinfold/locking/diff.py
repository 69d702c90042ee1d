"""What changed between a lock and its successor: Buildout's show-picked-versions, done right."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..locks import Pin

__all__ = ["LockChanges", "Move", "diff_pins"]


@dataclass(frozen=True, slots=True)
class Move:
    """A pin that moved from one version to another."""

    name: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.name} {self.old} -> {self.new}"


@dataclass(frozen=True, kw_only=True, slots=True)
class LockChanges:
    """The difference between two versions of one lock."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    moved: tuple[Move, ...] = ()
    #: Same version, other hashes (artifacts were added to or removed from the index), as
    #: ``name==version (old -> new hashes)``.
    rehashed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when nothing changed."""
        return not (self.added or self.removed or self.moved or self.rehashed)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"added": list(self.added), "removed": list(self.removed),
                "moved": [{"name": m.name, "from": m.old, "to": m.new} for m in self.moved],
                "rehashed": list(self.rehashed)}


def diff_pins(old: Sequence[Pin], new: Sequence[Pin]) -> LockChanges:
    """Compare two pin lists by name."""
    before = {p.name: p for p in old}
    after = {p.name: p for p in new}
    return LockChanges(
        added=tuple(str(after[n]) for n in sorted(after.keys() - before.keys())),
        removed=tuple(str(before[n]) for n in sorted(before.keys() - after.keys())),
        moved=tuple(Move(n, str(before[n].version), str(after[n].version))
                    for n in sorted(before.keys() & after.keys())
                    if before[n].version != after[n].version),
        rehashed=tuple(f"{after[n]} ({len(before[n].hashes)} -> {len(after[n].hashes)} hashes)"
                       for n in sorted(before.keys() & after.keys())
                       if before[n].version == after[n].version and before[n].hashes != after[n].hashes),
    )
