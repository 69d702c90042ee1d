"""pip's requirements-file syntax, as both lock files and needs files use it: logical lines.

A logical line joins backslash continuations and drops comments (a ``#`` at the start
of a line, or after whitespace, as pip reads it). Full-line comments after an entry are
kept with it: pip-compile writes its ``# via`` annotations there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["LogicalLine", "logical_lines"]

_COMMENT = re.compile(r"(?:^|\s)#")


@dataclass(frozen=True, slots=True)
class LogicalLine:
    """One entry of a requirements file."""

    #: Where it starts: 1-based line and column.
    line: int
    column: int
    #: The entry, continuations joined, comments removed, stripped.
    content: str
    #: The full-line comments that follow it, stripped (``# via ...``).
    comments: list[str] = field(default_factory=list)


def logical_lines(text: str) -> list[LogicalLine]:
    """The entries of ``text`` in order."""
    out: list[LogicalLine] = []
    buf = ""
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and stripped.startswith("#"):
            if out:
                out[-1].comments.append(stripped)
            continue
        if not buf:
            start = no
        content = _COMMENT.split(raw, maxsplit=1)[0]
        if content.rstrip().endswith("\\"):
            buf += content.rstrip()[:-1] + " "
            continue
        buf += content
        if buf.strip():
            column = len(buf) - len(buf.lstrip()) + 1
            out.append(LogicalLine(start, column, buf.strip()))
        buf = ""
    if buf.strip():
        out.append(LogicalLine(start, 1, buf.strip()))
    return out
