"""Check installed files against their wheels' RECORD hashes; run with the environment's Python.

Usage: ``python -I -B record_hashes.py <site-packages> [--kept <previous site-packages> <ns>
<dist-info>...]`` (an update: see :func:`main`). Prints one line per file whose sha256
differs from its RECORD entry (or cannot be read) and exits 1 if there is any.

The uv backend installs by hard-linking files out of uv's cache, and uv does not re-hash
cached files: a file edited in place in any environment would silently change every later
build. This check (a worker per core, about 0.4 s for 9,500 files on 2 cores) proves that
what is installed is still what the hashed wheels held. Only files inside site-packages
are checked: console scripts are written by the installer (and rewritten by pinfold's
hard-link clone), not taken from the wheel. Standard library only, and standalone: run
directly, not through ``_launch.py`` (see :mod:`pinfold.inside`), it loads ``shared.py``
by path itself, at import, so that a worker that re-runs this file has it too.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING


def _load_shared() -> ModuleType:
    """``shared.py``, next to this file, loaded by path: nothing is added to ``sys.path``."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shared.py")
    spec = importlib.util.spec_from_file_location("_pinfold_shared", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_pinfold_shared"] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from pinfold.inside import shared
else:
    shared = _load_shared()


def _entries(site: str) -> list[tuple[str, str]]:
    out = []
    for name in sorted(os.listdir(site)):
        record = os.path.join(site, name, "RECORD")
        if not name.endswith(".dist-info") or not os.path.isfile(record):
            continue
        with open(record, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                if len(row) < 2 or not row[1].startswith("sha256=") or row[0].startswith(("../", "/")):
                    continue
                out.append((os.path.join(site, row[0]), row[1][len("sha256="):]))
    return out


def _check(chunk: list[tuple[str, str]]) -> list[str]:
    bad = []
    for path, want in chunk:
        try:
            digest = shared.file_sha256(path)
        except OSError as exc:
            bad.append(f"{path}: cannot read it ({exc.strerror})")
            continue
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != want:
            bad.append(f"{path}: its sha256 differs from the RECORD of its wheel")
    return bad


def _kept(site: str, previous: str, before: int, names: list[str]) -> set[str]:
    """The files of the dist-infos ``names`` that are provably the previous environment's,
    untouched since before its build began: the same inode at the same path in ``previous``
    (the clone's hard link, not something the installer put there) and an mtime before
    ``before`` (an in-place write since would have set a later one). That build checked
    them, or proved them so in turn; an update need not hash them again."""
    out = set()
    for name in names:
        record = os.path.join(site, name, "RECORD")
        try:
            with open(record, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
        except OSError:
            continue
        for row in rows:
            if not row or row[0].startswith(("../", "/")):
                continue
            path = os.path.join(site, row[0])
            try:
                info, old = os.stat(path), os.stat(os.path.join(previous, row[0]))
            except OSError:
                continue
            if info.st_ino == old.st_ino and info.st_dev == old.st_dev and info.st_mtime_ns < before:
                out.add(path)
    return out


def main(site: str, kept: list[str] | None = None) -> int:
    """Check every RECORD of ``site``; print each difference and a count; the exit status.

    ``kept`` (an update): ``[<previous site-packages>, <before, ns>, <dist-info>...]``: those
    distributions' files that are provably the previous environment's (see :func:`_kept`)
    are not hashed again.
    """
    entries = _entries(site)
    proven = _kept(site, kept[0], int(kept[1]), kept[2:]) if kept else set()
    unchanged = len(entries)
    entries = [e for e in entries if e[0] not in proven]
    unchanged -= len(entries)
    workers = os.cpu_count() or 1
    if len(entries) < 500:  # an update's few files: starting workers would cost more than hashing
        bad = sorted(_check(entries))
    else:
        chunks = [entries[i::workers * 4] for i in range(workers * 4)]
        with ProcessPoolExecutor(workers) as pool:
            bad = sorted(line for lines in pool.map(_check, chunks) for line in lines)
    for line in bad:
        print(line)
    print(f"{len(entries)} files checked, {len(bad)} differ ({unchanged} unchanged since the "
          "previous build)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[3:] if sys.argv[2:3] == ["--kept"] else None))
