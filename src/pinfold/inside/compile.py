"""Byte-compile folders in parallel: run as ``<env python> -I compile.py <folder>...``.

What ``python -m compileall -q -j 0`` does, faster (README, "Speed", has the figure):
compileall hands files to its workers four at a time, in walk order, and the slowest
chunk decides the end. Here every ``.py`` file is known up front and split into one batch
per core by size (largest first, each to the lightest batch), one forked worker per batch.

A ``.pyc`` is rewritten only when its header does not match the source (magic number,
flags, mtime *and size*; compileall compares the mtime alone, so a same-second change
of a module would keep its stale ``.pyc``). ``py_compile`` writes each ``.pyc`` to a
temporary file and renames it into place: a hard-linked ``.pyc`` (an update's clone) is
replaced, never written through. ``SOURCE_DATE_EPOCH`` selects hash-based ``.pyc``
files, as in py_compile.

Prints ``FAILED <path>: <error>`` for each file that does not compile (like pip, that is
not an error of the build) and a ``compiled N of M`` summary; exits 0 unless the
compiler itself could not run, or 3 with a ``NOSPACE <path>: ...`` line when the disk
(or a quota) is full: that is the build's problem, not a file's, and is said as such.
On stderr, for pinfold's live progress: ``FILES <total>`` first, then ``PROGRESS <n>`` from
each worker every :data:`EVERY` files it has looked at (one short write each, so lines
of workers sharing the pipe never mix).
Standard library only, and standalone (run directly, not
through ``_launch.py``: see :mod:`pinfold.inside`); it runs in the environment's interpreter.
"""

from __future__ import annotations

import errno
import importlib.util
import multiprocessing
import os
import py_compile
import struct
import sys

MAGIC = importlib.util.MAGIC_NUMBER
#: Opens the line of a file that could not be written for want of space (then exit status 3).
NO_SPACE = "NOSPACE"
#: Files a worker looks at between two ``PROGRESS`` lines.
EVERY = 200


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


def _fresh(path: str, cfile: str) -> bool:
    try:
        st = os.stat(path)
        with open(cfile, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    want = MAGIC + struct.pack("<LLL", 0, int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)
    return head == want


def compile_batch(paths: list[str]) -> tuple[int, list[str]]:
    """Compile what is stale; return (files compiled, failure lines)."""
    done, failed = 0, []
    hashed = bool(os.environ.get("SOURCE_DATE_EPOCH"))
    for seen, path in enumerate(paths, 1):
        if seen % EVERY == 0:
            _progress(EVERY)
        cfile = importlib.util.cache_from_source(path)
        if not hashed and _fresh(path, cfile):
            continue
        try:
            py_compile.compile(path, cfile, doraise=True)
            done += 1
        except py_compile.PyCompileError as exc:
            first = str(exc.msg).strip().splitlines()[-1] if str(exc.msg).strip() else exc.exc_type_name
            failed.append(f"FAILED {path}: {first}")
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # Not this file's fault: every later file would fail the same way.
                failed.append(f"{NO_SPACE} {path}: {exc.strerror}")
                break
            failed.append(f"FAILED {path}: {exc}")
        except ValueError as exc:
            failed.append(f"FAILED {path}: {exc}")
    return done, failed


def main(folders: list[str]) -> int:
    """Compile what is stale under ``folders``; print failures and a summary; the exit status."""
    files = sources(folders)
    sys.stderr.write(f"FILES {len(files)}\n")
    sys.stderr.flush()
    workers = max(1, min(os.cpu_count() or 1, len(files)))
    parts = [b for b in batches(files, workers) if b]
    if len(parts) <= 1:
        results = [compile_batch(parts[0])] if parts else []
    else:
        # fork: the workers need nothing but this module, already imported.
        with multiprocessing.get_context("fork").Pool(len(parts)) as pool:
            results = pool.map(compile_batch, parts, chunksize=1)
    failed = sorted(line for _, lines in results for line in lines)
    for line in failed:
        print(line)
    print(f"compiled {sum(n for n, _ in results)} of {len(files)} files with {len(parts)} workers")
    return 3 if any(line.startswith(NO_SPACE) for line in failed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
