"""The files probe: the environment's tree against the manifest its build recorded.

Every added, removed and changed file (raw bytes and full mode; see :mod:`pinfold.manifest`
for what is excluded by rule), grouped by the distribution that owns it. Reads files only:
no interpreter starts, so ``pinfold check --files`` is fast.
"""

from __future__ import annotations

from pathlib import Path

from ..manifest import compare, read_manifest
from . import Outcome

__all__ = ["files_match"]


def files_match(env_dir: Path) -> Outcome:
    """ok when the tree is exactly what was built; a warning when no manifest was recorded."""
    recorded = read_manifest(env_dir)
    if recorded is None:
        return Outcome(status="warn", summary="no manifest recorded (built by an older pinfold): "
                                              "the files were not compared",
                       evidence=("rebuild (`pinfold build --fresh`) to record one",))
    found = compare(recorded, env_dir)
    total = len(recorded.entries)
    if not found:
        return Outcome(status="ok", summary=f"{total} files as built ({recorded.digest})")
    counts = ", ".join(f"{len(v)} {what}" for what, v in (("added", found.added), ("removed", found.removed),
                                                         ("changed", found.changed)) if v)
    return Outcome(status="fail", summary=f"the environment differs from its manifest: {counts}",
                   evidence=tuple(found.lines()))
