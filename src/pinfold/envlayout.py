"""Where things are inside an environment's folder, as pinfold (the host side) finds them.

Standard library only and cheap: the no-op fast path (:mod:`pinfold.uptodate`) uses it.
The inside scripts do not: they ask their own interpreter (``sys.path``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["CHECKSUM", "SCHEMA", "STATE_FILE", "damage", "record_checksum", "site_packages"]

#: The record's file name inside a finished environment (its presence marks it finished;
#: :mod:`pinfold.record` reads and writes it).
STATE_FILE = "pinfold.json"
#: The record's layout this pinfold writes; a record without a ``schema`` key is schema 1.
SCHEMA = 2
#: The record's key holding :func:`record_checksum` of the rest of it. Optional (a record from
#: before it has none): a record whose checksum holds is, byte for byte in its values, one
#: :func:`pinfold.record.write_record` wrote, which the record's reader reads back; the no-op
#: fast path then needs no reader of its own for the parts it does not use. A checksum, not a
#: signature: it tells a record edited by hand or damaged from one pinfold wrote.
CHECKSUM = "checksum"


def record_checksum(data: Mapping[str, object]) -> str:
    """``sha256:`` over a record's JSON object without :data:`CHECKSUM`, as sorted, compact JSON."""
    text = json.dumps({k: v for k, v in data.items() if k != CHECKSUM}, sort_keys=True,
                      separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def site_packages(env_dir: Path) -> list[Path]:
    """The environment's ``site-packages`` folders: ``lib/python*/`` ones first, then ``lib64/``.

    Each folder once: a ``lib64`` that is a symlink to ``lib`` (as ``venv`` makes it on
    64-bit Linux) or that holds a link to the same folder adds nothing. Paths are returned
    as found under ``env_dir``, not resolved.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for lib in ("lib", "lib64"):
        for site in sorted(env_dir.glob(f"{lib}/python*/site-packages")):
            real = site.resolve()
            if site.is_dir() and real not in seen:
                seen.add(real)
                out.append(site)
    return out


def damage(env_dir: Path, installed: Sequence[str]) -> str | None:
    """Why a finished environment is damaged (cheap file checks: no interpreter run), or None."""
    if not (env_dir / "bin" / "python").exists():
        return "its interpreter link is broken"
    site = next(iter(site_packages(env_dir)), None)
    if site is None:
        return "it has no site-packages"

    def norm(text: str) -> str:
        return text.lower().replace("_", "-").replace(".", "-")

    present = {norm(d.name[: -len(".dist-info")]) for d in site.iterdir() if d.name.endswith(".dist-info")}
    missing = [p for p in installed if norm(p.replace("==", "-")) not in present]
    return f"{', '.join(missing[:5])} no longer installed" if missing else None
