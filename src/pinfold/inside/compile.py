"""Byte-compile folders in parallel: ``<env python> -I -S compile.py [--plan PLAN.json] <folder>...``.

What ``python -m compileall -q -j 0`` does, faster (README, "Speed", has the figure):
compileall hands files to its workers four at a time, in walk order, and the slowest
chunk decides the end. Here every ``.py`` file is known up front and split into one batch
per core by size (largest first, each to the lightest batch), one forked worker per batch.

Every ``.pyc`` written is a *checked-hash* pyc (PEP 552): its header holds the source's
hash, not its mtime, so it is reproducible, valid whatever mtime an installer gave the
source, and checked against its source by Python at each import. A ``.pyc`` is
rewritten only when it is not a checked-hash pyc of its source (a timestamp pyc, which
a same-second change can fool and which the cache cannot use, is always rewritten).
Every ``.pyc`` that replaces one is written to a temporary file and renamed into place: a
hard-linked ``.pyc`` (an update's clone, or one linked from the cache) is replaced, never
written through; a cached one where there was none is linked straight to its name.

``--plan`` names the bytecode cache (see ``pinfold/pyccache.py``): a JSON object
``{"root": DIR, "dists": [{"site": DIR, "key": KEY, "sources": [REL.py, ...]}]}``. A
distribution's ``.pyc`` files come from its entry ``<root>/<cache_tag>-<magic>/<key>/``
when they pass the checks (sha256 as in the entry's manifest, header hash = this
source's), by a hard link (a copy across file systems); what the entry lacks is
compiled. An entry that was missing or failed a check is then written anew from the
environment's ``.pyc`` files: into a ``.tmp-*`` folder, the manifest last, renamed into
place (the first of two concurrent builds wins; the other discards its folder).

``--stamps FILE`` (the compile stage passes ``<env>/.pinfold-pyc-stamps``) makes an update
cheap: after a run, FILE names each source whose checked-hash pyc was found valid, with the
identity (inode, size, mtime in ns) of the source and of the pyc as they were read, taken
from the very file descriptors the check read; paths are relative to FILE's folder. With
``--previous OLD`` (an update: the previous environment's stamp file; the clone hard-links
every file, so inodes and mtimes are the previous environment's) a source whose two
identities are still those OLD names is skipped: neither was replaced (a new inode) nor
written in place (a new mtime), so the pair is still the one found valid, by this
interpreter (OLD names it). The files OLD names are alive in the previous environment all
through the build, so their inode numbers cannot be reused by a file installed meanwhile. Only files whose
mtimes are at least :data:`RACY_NS` older than the run's start are stamped: within the file
system clock's granularity a later write need not change the mtime (git's "racy" files), so
what was just installed or compiled is checked again next time. The one change a stamp
cannot see is an in-place write of the same size whose mtime is then set back by hand: so
the compile stage passes as OLD only the stamps whose two files its clone also proved
unchanged by their ctimes (``s5_compile._carried_stamps``); and the pyc is a checked-hash
pyc, which Python checks against its source at every import. A stamp file of another interpreter or
layout is ignored; it is written to a temporary name and renamed.

``--hashes FILE``: after a run, FILE holds a line for each pyc linked from the cache whose
bytes are proven to be the ones checked: its path, the sha256 the check computed, its first
8 bytes and its identity (device, inode, size, mtime, ctime in ns, hard links) right after
the link. Proven: the cache file's whole identity, ctime included, just before the link is
the one the read's ``fstat`` gave, its ctime is older than the file system's clock taken in
the first folder given before the first read (a change in the same tick would not move it),
and device, inode, size and mtime right after the link are still those. Left out: copies, paths with a
tab or a newline, anything not proven. The compile stage gives these to the build's hash
memo (``HashMemo.offer``), so that the final scan does not read and hash those pycs again
while that identity holds; the file is written on every run that gets that far (with exit
status 3 too, when the stage ignores it).

Prints ``FAILED <path>: <error>`` for each file that does not compile (like pip, that is
not an error of the build) and a ``compiled N of M files (L from the cache, K kept)``
summary (``K kept, S of them unchanged since the previous build``: S skipped by the
stamps); exits 0 unless the compiler itself could not run, or 3 with a
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
import stat
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable
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
#: The stamp file's layout (its first line is this and the interpreter's key).
STAMPS = "pinfold-pyc-stamps 1"
#: Files changed less than this before a run are not stamped by it (see the module doc).
RACY_NS = 2_000_000_000


def _progress(count: int) -> None:
    sys.stderr.write(f"PROGRESS {count}\n")
    sys.stderr.flush()


def _ident(info: os.stat_result) -> str:
    """A file's identity in a stamp: a replaced file has a new inode, a written one a new mtime."""
    return f"{info.st_ino} {info.st_size} {info.st_mtime_ns}"


def walk(folders: list[str]) -> list[tuple[int, str, os.stat_result]]:
    """Every ``.py`` file under ``folders`` (symlinked folders not followed), with its stat."""
    out = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    try:
                        info = os.stat(path)
                    except OSError:
                        continue
                    out.append((info.st_size, path, info))
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


def _load(path: str, limit: int = -1) -> tuple[bytes, os.stat_result]:
    """A file's bytes (its first ``limit``, if given) and the identity of the very file read.

    os.open/os.read rather than open(): one fstat and one read for a whole file, where a
    buffered file object adds an fstat, a TTY check and seeks (7,000 files a build).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        # A short read of a regular file is its end; one that fills the buffer may not be.
        want = limit if limit >= 0 else info.st_size + 1
        chunks = [os.read(fd, want)]
        while limit < 0 and len(chunks[-1]) == want:
            want = 1 << 20
            chunks.append(os.read(fd, want))
        return b"".join(chunks), info
    finally:
        os.close(fd)


def _read(path: str) -> bytes | None:
    try:
        return _load(path)[0]
    except OSError:
        return None


def _head(path: str) -> tuple[bytes, os.stat_result] | None:
    """A pyc's first 16 bytes and the identity of the very file they were read from."""
    try:
        return _load(path, 16)
    except OSError:
        return None


#: Folders this process made or found: a fresh environment's 7,000 pycs sit in ~800 of them.
_MADE: set[str] = set()


def _place(cfile: str, data: bytes | None, link_from: str | None, *, fresh: bool = False) -> None:
    """Put a pyc at ``cfile``: a link to ``link_from``, else ``data``, through a temporary name.

    ``fresh`` (no pyc was there when looked at): a link straight to ``cfile``, which cannot
    write through anything; if a file appeared there meanwhile, the temporary name after all.
    """
    folder = os.path.dirname(cfile)
    if folder not in _MADE:
        os.makedirs(folder, exist_ok=True)
        _MADE.add(folder)
    if fresh and link_from is not None:
        try:
            os.link(link_from, cfile)
            return
        except FileExistsError:
            pass
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


def _from_cache(cached: str, sha: str, source: bytes, cfile: str, *, fresh: bool = False,
                load: Callable[[str], tuple[bytes, os.stat_result]] = _load, clock: int = -1,
                ) -> tuple[os.stat_result, str] | bool:
    """Link a cache entry's pyc into place when it passes the checks; False when it does not.

    Linked: the identity of the file checked (the pyc in place is that inode) and its
    :func:`_hashed` record, "" unless the bytes checked are proven to be the file's up to
    the link (its whole identity unchanged since the read, its last change older than
    ``clock``, the file system's clock before the first read: :func:`fs_clock`); copied:
    True. ``fresh``: no pyc was at ``cfile`` (see :func:`_place`).
    """
    try:
        data, info = load(cached)
    except OSError:
        return False
    if len(data) < 16 or hashlib.sha256(data).hexdigest() != sha:
        return False
    if struct.unpack("<L", data[4:8])[0] != CHECKED or not _matches(data[:16], source):
        return False
    # The bytes just checked are the file's, up to the link, when its whole identity (ctime
    # included: every write moves it) is still the one the read's fstat gave, and its last
    # change came before the clock: a change in the same tick would not have moved it.
    try:
        proven = info.st_ctime_ns < clock and _whole(os.lstat(cached)) == _whole(info)
    except OSError:
        proven = False
    try:
        _place(cfile, None, cached, fresh=fresh)
        return info, _hashed(cfile, info, sha, data) if proven else ""
    except OSError:
        try:  # another file system (or links not allowed): a copy of the checked bytes
            _place(cfile, data, None)
        except OSError:
            return False
    return True


def _whole(info: os.stat_result) -> tuple[int, int, int, int, int]:
    """(device, inode, size, mtime, ctime): what any write, replacement or new link changes."""
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def fs_clock(folder: str) -> int:
    """The file system's time now: the ctime of a file made (and removed) in ``folder``
    (pinfold/manifest.py's ``_fs_clock``; its clock, not this process's); -1 if none can be made."""
    tmp = os.path.join(folder, f".pinfold-clock.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:
        return -1
    try:
        return os.fstat(fd).st_ctime_ns
    except OSError:
        return -1
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _hashed(cfile: str, read: os.stat_result, sha: str, data: bytes) -> str:
    """What the build's final scan need not read again, as a line of ``--hashes``:
    ``<cfile>\t<sha256> <first 8 bytes, hex> <dev> <ino> <size> <mtime_ns> <ctime_ns> <nlink>``
    of the pyc just linked at ``cfile`` from the cache file just checked, by its ``lstat``
    right after the link (the link changed its ctime); "" when that is not the same file
    (device, inode, size and mtime) or cannot be looked at."""
    try:
        now = os.lstat(cfile)
    except OSError:
        return ""
    if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (
            read.st_dev, read.st_ino, read.st_size, read.st_mtime_ns):
        return ""
    return (f"{cfile}\t{sha} {data[:8].hex()} {now.st_dev} {now.st_ino} {now.st_size} {now.st_mtime_ns} "
            f"{now.st_ctime_ns} {now.st_nlink}")


def _stamp(src: os.stat_result, pyc: os.stat_result, before: int) -> str:
    """The stamp of a source and its valid pyc, or "" when either changed too recently."""
    if max(src.st_mtime_ns, pyc.st_mtime_ns) > before:
        return ""
    return f"{_ident(src)}\t{_ident(pyc)}"


class _Ahead:
    """Times the first :data:`PROBE` reads of a batch (sources, cached pycs); when they came
    from the disk, not the page cache (a machine that reclaims it), a thread queues the reads
    of the rest of the batch with the kernel (``posix_fadvise(WILLNEED)``), so that they stop
    waiting for the disk one file at a time. pinfold/manifest.py's ``ReadAhead`` is the same
    for the RECORD check and has the figures; it is not imported because this script imports
    nothing of pinfold's (it runs in the target interpreter)."""

    PROBE = 32
    COLD_NS = 60_000

    def __init__(self, work: list[tuple[str, str, str]]) -> None:
        self.work = work
        self.done = self.spent = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def load(self, path: str) -> tuple[bytes, os.stat_result]:
        if self.done >= self.PROBE:
            return _load(path)
        start = time.perf_counter_ns()
        out = _load(path)
        # Less a nanosecond a byte: a large file from the page cache must not look like a disk.
        self.spent += max(0, time.perf_counter_ns() - start - len(out[0]))
        self.done += 1
        cold = self.spent > self.COLD_NS * self.PROBE
        if self.done == self.PROBE and cold and hasattr(os, "posix_fadvise"):
            at = next((i for i, (src, cached, _) in enumerate(self.work) if path in (src, cached)), 0)
            paths = [p for src, cached, _ in self.work[at:] for p in (src, cached) if p and p != path]
            thread = threading.Thread(target=self._queue, args=(paths,), name="pinfold-read-ahead",
                                      daemon=True)
            try:
                thread.start()
                self.thread = thread
            except RuntimeError:  # no thread to be had (a process limit): reads as they come
                pass
        return out

    def _queue(self, paths: list[str]) -> None:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        for path in paths:
            if self.stop.is_set():
                return
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):  # a FIFO or device: not opened
                    continue
                fd = os.open(path, flags)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def compile_batch(work: list[tuple[str, str, str]], before: int = -1, clock: int = -1,
                  ) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """:func:`_compile_batch`, its reads queued ahead should they come from the disk."""
    ahead = _Ahead(work)
    try:
        return _compile_batch(work, before, ahead, clock)
    finally:
        ahead.close()


def _compile_batch(work: list[tuple[str, str, str]], before: int, ahead: _Ahead, clock: int = -1,
                   ) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Make each file's pyc valid: kept, linked from the cache, or compiled.

    ``work`` holds (source, cached pyc or "", its sha256 or ""); returns each file's
    outcome (source, kept/linked/compiled/failed, its stamp or "", a linked pyc's
    :func:`_hashed` record or "") and the failure lines.
    Stamps are made only for files whose mtimes are not after ``before`` (ns); records for
    the final scan only with ``clock`` (:func:`_from_cache`).
    """
    outcomes: list[tuple[str, str, str, str]] = []
    failed: list[str] = []
    for seen, (path, cached, sha) in enumerate(work, 1):
        if seen % EVERY == 0:
            _progress(EVERY)
        cfile = importlib.util.cache_from_source(path)
        try:
            # The identity of the very file read: a change after this shows in it.
            source, src_info = ahead.load(path)
        except OSError as exc:
            failed.append(f"FAILED {path}: {exc}")
            outcomes.append((path, FAILED, "", ""))
            continue
        head = _head(cfile)
        if head is not None and _matches(head[0], source):
            outcomes.append((path, KEPT, _stamp(src_info, head[1], before), ""))
            continue
        linked = cached and _from_cache(cached, sha, source, cfile, fresh=head is None, load=ahead.load,
                                        clock=clock)
        if isinstance(linked, tuple):
            outcomes.append((path, LINKED, _stamp(src_info, linked[0], before), linked[1]))
            continue
        if linked:
            outcomes.append((path, LINKED, "", ""))
            continue
        try:
            py_compile.compile(path, cfile, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            # Written just now: never stamped (racy); the next run checks it and stamps it.
            outcomes.append((path, COMPILED, "", ""))
            continue
        except py_compile.PyCompileError as exc:
            first = str(exc.msg).strip().splitlines()[-1] if str(exc.msg).strip() else exc.exc_type_name
            failed.append(f"FAILED {path}: {first}")
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # Not this file's fault: every later file would fail the same way.
                failed.append(f"{NO_SPACE} {path}: {exc.strerror}")
                outcomes.append((path, FAILED, "", ""))
                break
            failed.append(f"FAILED {path}: {exc}")
        except ValueError as exc:
            failed.append(f"FAILED {path}: {exc}")
        outcomes.append((path, FAILED, "", ""))
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


def read_stamps(path: str) -> dict[str, str]:
    """A stamp file's entries (path relative to its folder -> the two identities); {} when it
    is missing, unreadable, or of another layout or interpreter."""
    data = _read(path)
    if data is None:
        return {}
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    if lines[0] != f"{STAMPS} {interpreter_key()}":
        return {}
    out = {}
    for line in lines[1:]:
        rel, tab, idents = line.partition("\t")
        if tab:
            out[rel] = idents
    return out


def write_stamps(path: str, stamps: dict[str, str]) -> None:
    """Write the stamp file to a temporary name, then rename it into place."""
    lines = [f"{STAMPS} {interpreter_key()}", *(f"{rel}\t{stamps[rel]}" for rel in sorted(stamps))]
    _place(path, "\n".join(lines).encode("utf-8", "surrogateescape") + b"\n", None)


def _unchanged(path: str, info: os.stat_result, stamp: str | None) -> bool:
    """Whether a source and its pyc are both still the files a stamp names."""
    if stamp is None:
        return False
    src, _, pyc = stamp.partition("\t")
    if src != _ident(info):
        return False
    try:
        return pyc == _ident(os.stat(importlib.util.cache_from_source(path)))
    except OSError:
        return False


def main(args: list[str]) -> int:
    """Make every pyc under the folders valid; print failures and a summary; the exit status."""
    # Before any file is looked at: what changes after this may share its mtime with it.
    before = time.time_ns() - RACY_NS
    plan: dict[str, Any] = {}
    stamp_file = previous = hashes_file = ""
    while args[:1] in (["--plan"], ["--stamps"], ["--previous"], ["--hashes"]):
        if args[0] == "--plan":
            with open(args[1], encoding="utf-8") as fh:
                plan = json.load(fh)
        elif args[0] == "--stamps":
            stamp_file = args[1]
        elif args[0] == "--hashes":
            hashes_file = args[1]
        else:
            previous = args[1]
        args = args[2:]
    found = walk(args)
    files = [(size, path) for size, path, _ in found]
    sys.stderr.write(f"FILES {len(files)}\n")
    sys.stderr.flush()
    # Stamped paths are relative to the stamp file's folder: a clone has its own absolute path.
    base = os.path.join(os.path.dirname(os.path.abspath(stamp_file)), "") if stamp_file else ""
    old = read_stamps(previous) if stamp_file and previous else {}
    stamps: dict[str, str] = {}
    outcome: dict[str, str] = {}
    for _, path, info in found:
        rel = path[len(base):] if base and path.startswith(base) else None
        if rel is not None and _unchanged(path, info, old.get(rel)):
            outcome[path] = KEPT
            stamps[rel] = old[rel]
    skipped = len(outcome)
    if skipped:
        _progress(skipped)
    root = str(plan.get("root", ""))
    dists = [_Dist(root, item) for item in plan.get("dists", [])]
    owner = {source: dist for dist in dists for source in dist.sources}
    todo = [(size, path) for size, path in files if path not in outcome]

    def offer(path: str) -> tuple[str, str, str]:  # (source, cached pyc, its sha256) or no pyc
        dist = owner.get(path)
        rel = dist.rel_pyc(path) if dist is not None else ""
        if dist is None or rel not in dist.manifest:
            return path, "", ""
        return path, os.path.join(dist.entry, rel), dist.manifest[rel]

    work = {path: offer(path) for _, path in todo}
    # Before any cached pyc is read: a record for the scan needs the file unchanged since.
    # The environment's clock: a claim is only made for a hard link, on the same file system.
    clock = fs_clock(args[0]) if hashes_file and args else -1
    # A worker per core, unless there is too little to do to pay for starting them.
    workers = max(1, min(os.cpu_count() or 1, len(todo) // 100))
    parts = [[work[p] for p in b] for b in batches(todo, workers) if b]
    if len(parts) <= 1:
        results = [compile_batch(parts[0], before, clock)] if parts else []
    else:
        # fork: the workers need nothing but this module, already imported.
        with multiprocessing.get_context("fork").Pool(len(parts)) as pool:
            results = pool.starmap(compile_batch, [(part, before, clock) for part in parts], chunksize=1)
    hashed: list[str] = []
    for done, _ in results:
        for path, what, stamp, record in done:
            outcome[path] = what
            if "\n" in path or "\t" in path:
                continue
            if stamp and base and path.startswith(base):
                stamps[path[len(base):]] = stamp
            if record:
                hashed.append(record)
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
        if stamp_file:
            try:
                write_stamps(stamp_file, stamps)
            except OSError:
                # No stamps only means the next run checks every file: never an error.
                with contextlib.suppress(OSError):
                    os.unlink(stamp_file)
    if hashes_file:
        with contextlib.suppress(OSError):  # without it the scan reads those pycs: never an error
            _place(hashes_file, "".join(f"{line}\n" for line in hashed).encode("utf-8", "surrogateescape"),
                   None)
    for line in failed:
        print(line)
    count = {w: sum(1 for v in outcome.values() if v == w) for w in (KEPT, LINKED, COMPILED)}
    unchanged = f", {skipped} of them unchanged since the previous build" if skipped else ""
    cache = f" ({count[LINKED]} from the cache, {count[KEPT]} kept{unchanged})" if dists else ""
    print(f"compiled {count[COMPILED]} of {len(files)} files{cache} with {len(parts)} workers")
    if added:
        print(f"CACHED {added}")
    return 3 if any(line.startswith(NO_SPACE) for line in failed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
