"""Byte-compile folders in parallel: ``<env python> -I compile.py [--plan PLAN.json] <folder>...``.

What ``python -m compileall -q -j 0`` does, faster (README, "Speed", has the figure):
compileall hands files to its workers four at a time, in walk order, and the slowest
chunk decides the end. Here every ``.py`` file is known up front and split into one batch
per core by size (largest first, each to the lightest batch), one forked worker per batch.

Every ``.pyc`` written is a *checked-hash* pyc (PEP 552): its header holds the source's
hash, not its mtime, so it is reproducible, valid whatever mtime an installer gave the
source, and checked against its source by Python at each import. A ``.pyc`` is
rewritten only when it is not a checked-hash pyc of its source (a timestamp pyc, which
a same-second change can fool and which the cache cannot use, is always rewritten).
Every ``.pyc`` is written to a temporary file and renamed into place: a hard-linked
``.pyc`` (an update's clone, or one linked from the cache) is replaced, never written through.

``--plan`` names the bytecode cache (see ``pinfold/pyccache.py``): a JSON object
``{"root": DIR, "dists": [{"site": DIR, "key": KEY, "sources": [REL.py, ...]}]}``. A
distribution's ``.pyc`` files come from its entry ``<root>/<cache_tag>-<magic>/<key>/``
when they pass the checks (sha256 as in the entry's manifest, header hash = this
source's), by a hard link (a copy across file systems); what the entry lacks is
compiled. An entry that was missing or failed a check is then written anew from the
environment's ``.pyc`` files: into a ``.tmp-*`` folder, the manifest last, renamed into
place (the first of two concurrent builds wins; the other discards its folder).

Prints ``FAILED <path>: <error>`` for each file that does not compile (like pip, that is
not an error of the build) and a ``compiled N of M files (L from the cache, K kept)``
summary; exits 0 unless the compiler itself could not run, or 3 with a
``NOSPACE <path>: ...`` line when the disk (or a quota) is full: that is the build's
problem, not a file's, and is said as such. The cache never fails a build: a cache
folder that cannot be read or written only means compiling.
On stderr, for pinfold's live progress: ``FILES <total>`` first, then ``PROGRESS <n>`` from
each worker every :data:`EVERY` files it has looked at (one short write each, so lines
of workers sharing the pipe never mix).
Standard library only, and standalone (run directly, not
through ``_launch.py``: see :mod:`pinfold.inside`); it runs in the environment's interpreter.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import multiprocessing
import os
import py_compile
import shutil
import struct
import sys
import uuid
from typing import Any

MAGIC = importlib.util.MAGIC_NUMBER
#: Header flags of a checked-hash pyc (PEP 552): hash-based, checked against the source.
CHECKED = 0b11
#: Opens the line of a file that could not be written for want of space (then exit status 3).
NO_SPACE = "NOSPACE"
#: Files a worker looks at between two ``PROGRESS`` lines.
EVERY = 200
#: The file that makes a cache entry (see pinfold/pyccache.py).
MANIFEST = "MANIFEST.json"
#: What a file's outcome was, in a worker's result.
KEPT, LINKED, COMPILED, FAILED = "kept", "linked", "compiled", "failed"


def _progress(count: int) -> None:
    sys.stderr.write(f"PROGRESS {count}\n")
    sys.stderr.flush()


def sources(folders: list[str]) -> list[tuple[int, str]]:
    """Every ``.py`` file under ``folders`` (symlinked folders not followed), with its size."""
    out = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    try:
                        out.append((os.stat(path).st_size, path))
                    except OSError:
                        continue
    return out


def batches(files: list[tuple[int, str]], count: int) -> list[list[str]]:
    """Split files into ``count`` batches of about equal total size (largest first)."""
    loads = [0] * count
    out: list[list[str]] = [[] for _ in range(count)]
    for size, path in sorted(files, reverse=True):
        i = loads.index(min(loads))
        loads[i] += size + 2048  # a fixed cost per file: opening, writing, renaming
        out[i].append(path)
    return out


def _matches(head: bytes, source: bytes) -> bool:
    """Whether a pyc header (16 bytes) is a checked-hash header valid for this source.

    A timestamp pyc is replaced even when it matches: an interpreter that imported a module
    before this stage (a ``.pth`` file's import) writes one, and only checked-hash pycs can
    go into the cache and be linked elsewhere. An unchecked-hash pyc is never checked by
    Python at all: replaced too.
    """
    if len(head) < 16 or head[:4] != MAGIC:
        return False
    return struct.unpack("<L", head[4:8])[0] == CHECKED and head[8:16] == importlib.util.source_hash(source)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _place(cfile: str, data: bytes | None, link_from: str | None) -> None:
    """Put a pyc at ``cfile`` through a temporary name: a link to ``link_from``, else ``data``."""
    os.makedirs(os.path.dirname(cfile), exist_ok=True)
    tmp = f"{cfile}.{uuid.uuid4().hex}.tmp"
    try:
        if link_from is not None:
            os.link(link_from, tmp)
        else:
            assert data is not None
            with open(tmp, "wb") as fh:
                fh.write(data)
        os.replace(tmp, cfile)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _from_cache(cached: str, sha: str, source: bytes, cfile: str) -> bool:
    """Link a cache entry's pyc into place when it passes the checks; False when it does not."""
    data = _read(cached)
    if data is None or len(data) < 16 or hashlib.sha256(data).hexdigest() != sha:
        return False
    if struct.unpack("<L", data[4:8])[0] != CHECKED or not _matches(data[:16], source):
        return False
    try:
        _place(cfile, None, cached)
    except OSError:
        try:  # another file system (or links not allowed): a copy of the checked bytes
            _place(cfile, data, None)
        except OSError:
            return False
    return True


def compile_batch(work: list[tuple[str, str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """Make each file's pyc valid: kept, linked from the cache, or compiled.

    ``work`` holds (source, cached pyc or "", its sha256 or ""); returns each file's
    outcome (source, kept/linked/compiled/failed) and the failure lines.
    """
    outcomes: list[tuple[str, str]] = []
    failed: list[str] = []
    for seen, (path, cached, sha) in enumerate(work, 1):
        if seen % EVERY == 0:
            _progress(EVERY)
        cfile = importlib.util.cache_from_source(path)
        try:
            with open(path, "rb") as fh:
                source = fh.read()
        except OSError as exc:
            failed.append(f"FAILED {path}: {exc}")
            outcomes.append((path, FAILED))
            continue
        head = _read(cfile)
        if head is not None and _matches(head[:16], source):
            outcomes.append((path, KEPT))
            continue
        if cached and _from_cache(cached, sha, source, cfile):
            outcomes.append((path, LINKED))
            continue
        try:
            py_compile.compile(path, cfile, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            outcomes.append((path, COMPILED))
            continue
        except py_compile.PyCompileError as exc:
            first = str(exc.msg).strip().splitlines()[-1] if str(exc.msg).strip() else exc.exc_type_name
            failed.append(f"FAILED {path}: {first}")
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # Not this file's fault: every later file would fail the same way.
                failed.append(f"{NO_SPACE} {path}: {exc.strerror}")
                outcomes.append((path, FAILED))
                break
            failed.append(f"FAILED {path}: {exc}")
        except ValueError as exc:
            failed.append(f"FAILED {path}: {exc}")
        outcomes.append((path, FAILED))
    return outcomes, failed


def interpreter_key() -> str:
    """This interpreter's folder in the cache: ``<cache_tag>-<magic number in hex>``."""
    return f"{sys.implementation.cache_tag}-{MAGIC.hex()}"


def _manifest(entry: str) -> dict[str, str] | None:
    data = _read(os.path.join(entry, MANIFEST))
    try:
        files = json.loads(data)["files"] if data is not None else None
    except (ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, dict) else None


class _Dist:
    """One distribution of the plan: its sources, its entry and what the entry holds."""

    def __init__(self, root: str, item: dict[str, Any]) -> None:
        self.site = str(item["site"])
        self.key = str(item["key"])
        self.sources = [os.path.join(self.site, str(s)) for s in item["sources"]]
        self.entry = os.path.join(root, interpreter_key(), self.key)
        self.manifest = _manifest(self.entry) or {}

    def rel_pyc(self, source: str) -> str:
        return os.path.relpath(importlib.util.cache_from_source(source), self.site)


def _fill(dist: _Dist) -> bool:
    """Write ``dist``'s entry anew from the environment's pycs; False when it cannot be."""
    parent = os.path.dirname(dist.entry)
    tmp = os.path.join(parent, f".tmp-{dist.key}-{uuid.uuid4().hex}")
    try:
        os.makedirs(tmp)
        files: dict[str, str] = {}
        for source in dist.sources:
            rel = dist.rel_pyc(source)
            cfile = os.path.join(dist.site, rel)
            data = _read(cfile)
            if data is None or struct.unpack("<L", data[4:8])[0] != CHECKED:
                continue  # did not compile (or a timestamp pyc kept by an update): not cached
            target = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.link(cfile, target)
            except OSError:
                with open(target, "wb") as fh:
                    fh.write(data)
            files[rel] = hashlib.sha256(data).hexdigest()
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as fh:
            json.dump({"files": files}, fh, sort_keys=True)
        if os.path.isdir(dist.entry):
            # A bad entry (or one another build just wrote): out of the way, then ours.
            gone = os.path.join(parent, f".old-{uuid.uuid4().hex}")
            try:
                os.rename(dist.entry, gone)
                shutil.rmtree(gone, ignore_errors=True)
            except OSError:
                pass
        os.rename(tmp, dist.entry)
        return True
    except OSError:
        # Lost the race to another build, or the cache cannot be written: never an error.
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def main(args: list[str]) -> int:
    """Make every pyc under the folders valid; print failures and a summary; the exit status."""
    plan: dict[str, Any] = {}
    if args[:1] == ["--plan"]:
        with open(args[1], encoding="utf-8") as fh:
            plan = json.load(fh)
        args = args[2:]
    files = sources(args)
    sys.stderr.write(f"FILES {len(files)}\n")
    sys.stderr.flush()
    root = str(plan.get("root", ""))
    dists = [_Dist(root, item) for item in plan.get("dists", [])]
    offer: dict[str, tuple[str, str]] = {}  # source -> (cached pyc, its sha256)
    owner: dict[str, _Dist] = {}
    for dist in dists:
        for source in dist.sources:
            owner[source] = dist
            rel = dist.rel_pyc(source)
            if rel in dist.manifest:
                offer[source] = (os.path.join(dist.entry, rel), dist.manifest[rel])
    work = {path: (path, *offer.get(path, ("", ""))) for _, path in files}
    workers = max(1, min(os.cpu_count() or 1, len(files)))
    parts = [[work[p] for p in b] for b in batches(files, workers) if b]
    if len(parts) <= 1:
        results = [compile_batch(parts[0])] if parts else []
    else:
        # fork: the workers need nothing but this module, already imported.
        with multiprocessing.get_context("fork").Pool(len(parts)) as pool:
            results = pool.map(compile_batch, parts, chunksize=1)
    outcome = {path: what for done, _ in results for path, what in done}
    failed = sorted(line for _, lines in results for line in lines)
    added = 0
    if not any(line.startswith(NO_SPACE) for line in failed):
        for dist in dists:
            mine = [outcome.get(s) for s in dist.sources]
            # Nothing compiled: every pyc came from the entry (or was kept, or fails to compile).
            if dist.manifest and COMPILED not in mine:
                with contextlib.suppress(OSError):  # the entry's last use, for `pinfold cache prune`
                    os.utime(os.path.join(dist.entry, MANIFEST))
            elif all(s in outcome for s in dist.sources):
                added += _fill(dist)
    for line in failed:
        print(line)
    count = {w: sum(1 for v in outcome.values() if v == w) for w in (KEPT, LINKED, COMPILED)}
    cache = f" ({count[LINKED]} from the cache, {count[KEPT]} kept)" if dists else ""
    print(f"compiled {count[COMPILED]} of {len(files)} files{cache} with {len(parts)} workers")
    if added:
        print(f"CACHED {added}")
    return 3 if any(line.startswith(NO_SPACE) for line in failed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
