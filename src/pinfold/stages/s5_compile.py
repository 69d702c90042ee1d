"""Stage 5: byte-compile the environment once, in parallel, with its own interpreter.

pip compiles one file at a time while it installs (half of a plain pip install's time,
measured) and uv does not compile unless asked, so both backends install with
compilation off and this stage compiles all of site-packages at once, with a worker per
core (``pinfold/inside/compile.py``: compileall's work, split by size into one batch per core,
25% faster than ``compileall -j 0`` on the benchmark environment). It runs after install
and develop and *before* the Twisted plugin caches: compiling writes only ``__pycache__``
files, never a module, so a cache generated afterwards stays fresh.

Updates clone the previous environment with hard links. The previous build's stamps (its
``.pinfold-pyc-stamps``: each source and pyc it found valid, by inode, size and mtime) spare
reading the files the clone kept unchanged: a source is skipped when it and its pyc are
still the very files stamped *and* the clone carried both over proven unchanged since the
previous build's scan (their ctimes: :meth:`pinfold.manifest.HashMemo.carried`). What the
plan installed, and anything else, is checked. Of those, only
``.pyc`` files whose header no longer matches their source are rewritten, and py_compile
writes each to a temporary file and renames it over the old one, so a hard-linked ``.pyc``
is replaced, never written through into the previous environment. The develop trees are
not compiled: they are the user's checkouts.

The bytecode cache (:mod:`pinfold.pyccache`) provides what an earlier build compiled: each
distribution installed from a pin pre-flight chose an artifact for is found by its
dist-info RECORD and keyed by that artifact's hash (an sdist's with the build lock's);
the script links the entry's ``.pyc`` files that pass its checks and compiles the rest,
then writes the entries that were missing or bad. Develop trees are not cached (nor compiled).

After a full uv install with bytecode, uv's RECORD check of the installed files runs in a
thread of pinfold's process while this stage's interpreter compiles (``Context.pending_check``):
the stage waits for it once the script is done, before the memo takes what the script
linked, and a file that differs from its wheel fails the stage; when the stage fails first
(the compiler's timeout, a full disk), it still waits, and reports the check's failure
instead when there is one. The interpreter runs
with ``-S``: no ``.pth`` file or other code of the environment runs before the check has
passed. What the script cached meanwhile of such a file (a new entry, or one replacing an
entry that did not match it) is never linked later: a cached ``.pyc`` must carry its
source's hash.

Like pip, a file that does not compile (test data with Python 2 syntax ships in real
packages) does not fail the build; it is reported as a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from ..envdir import PYC_STAMPS
from ..envlayout import site_packages
from ..errors import BuildError, CommandError, Problem
from ..inside import script
from ..inside.shared import BYTECODE_PLAN
from ..manifest import HashMemo
from ..plugincache import skip_reason as plugins_skip
from ..pyccache import artifact_key, distributions, pyc_root
from ..results import CompileOutput
from .base import Context, Stage

__all__ = ["Compile"]


class Compile(Stage):
    """``<env python> -I -S pinfold/inside/compile.py <site-packages>...``."""

    name: ClassVar[str] = "compile"
    # It writes only __pycache__ files, which a pending RECORD check does not read (the
    # installer checked those before it returned), and settles the check before it hands
    # the memo what it linked and before the stage ends.
    overlaps_checks: ClassVar[bool] = True

    def __init__(self, previous: Path | None = None) -> None:
        #: An update's previous environment: its stamps spare re-checking what the clone kept.
        self.previous = previous

    def skip_reason(self, ctx: Context) -> str | None:
        if ctx.spec.compile:
            return None
        # compile: false: cached bytecode outside the environment serves the plugins stage's
        # imports (Twisted and every plugin module), when it runs and a cache exists.
        if ctx.pycache is not None and plugins_skip(ctx.spec, ctx.env_dir) is None and pyc_root().is_dir():
            return None
        return "disabled (compile: false)"

    def run(self, ctx: Context) -> str:
        try:
            return self._run(ctx)
        except Exception:
            # Whatever failed here (the compiler's timeout, a full /tmp, pinfold stopping), a
            # file that differs from its wheel is the failure to report when the check found
            # one. Not for a KeyboardInterrupt: the pipeline abandons the check then.
            if ctx.pending_check is not None:
                ctx.settle()
            raise

    def _run(self, ctx: Context) -> str:
        sites = site_packages(ctx.env_dir)
        if not sites:
            raise BuildError(f"{ctx.env_dir} has no site-packages to compile")
        if not ctx.spec.compile:
            return self._outside(ctx, sites)
        total, seen = 0, 0

        def line(text: str) -> None:  # the script's progress lines (see pinfold/inside/compile.py)
            nonlocal total, seen
            word, _, number = text.partition(" ")
            if word in ("FILES", "PROGRESS") and number.isdigit():
                total, seen = (int(number), seen) if word == "FILES" else (total, seen + int(number))
                self.progress(ctx, min(seen, total), total, unit="files")

        with tempfile.TemporaryDirectory(prefix="pinfold-compile-") as tmp:
            plan = Path(tmp) / "plan.json"
            plan.write_text(json.dumps(_cache_plan(ctx, sites)), encoding="utf-8")
            # -I: nothing from the caller's environment or the working directory gets in. -S: no
            # site processing, so no code of the environment runs (a `.pth` file's import
            # lines): the script needs only the standard library, and the RECORD check of
            # those files may still be running (see the module doc).
            stamps: list[str | Path] = ["--stamps", ctx.env_dir / PYC_STAMPS]
            hashes = Path(tmp) / "hashes"
            if ctx.hashes is not None:
                stamps += ["--hashes", hashes]
            if self.previous is not None and ctx.hashes is not None and ctx.interpreter is not None:
                previous = Path(tmp) / "previous-stamps"
                if _carried_stamps(self.previous / PYC_STAMPS, previous, ctx.env_dir, ctx.hashes,
                                   ctx.interpreter.abi):
                    stamps += ["--previous", previous]
            argv = [ctx.env_python, "-I", "-S", script("compile"), "--plan", plan, *stamps, *sites]
            done = ctx.runner.run(argv, what="byte-compiling the environment", check=False, on_line=line)
            meanwhile = ""
            if ctx.pending_check is not None:
                # Before the memo gets what the script linked (the check's thread puts what it
                # reads there too), and before compile's own verdict: a file that differs
                # from its wheel is the failure to report.
                waited = time.monotonic()
                checked = ctx.settle()
                meanwhile = f"; meanwhile {checked} (waited {time.monotonic() - waited:.2f}s for that)"
            if done.returncode == 0 and ctx.hashes is not None:
                _offer(hashes, ctx.env_dir, ctx.hashes)
        lines = done.output.splitlines()
        if full := [ln.split(" ", 1)[1] for ln in lines if ln.startswith("NOSPACE ")]:
            raise BuildError("byte-compiling the environment failed: no space left on device",
                             [Problem(*full[0].split(": ", 1))],
                             tip="free space where `path` lives (or set `compile: false`) and build again")
        if done.returncode != 0:
            raise CommandError("byte-compiling the environment failed", argv=done.argv,
                               returncode=done.returncode, output=done.output)
        failed = [ln[len("FAILED "):] for ln in lines if ln.startswith("FAILED ")]
        ctx.warnings += [f"not byte-compiled: {f}" for f in failed]
        ctx.outputs = replace(ctx.outputs, compile=CompileOutput(failed=tuple(failed)))
        summary = next((ln for ln in reversed(lines) if ln.startswith("compiled ")), "compiled")
        summary = summary.replace(" from the cache", " from the bytecode cache")
        note = f"; {len(failed)} file(s) do not compile (warnings)" if failed else ""
        where = ", ".join(s.relative_to(ctx.env_dir).as_posix() for s in sites)
        return f"{summary} in {where}{note}{meanwhile}"


    @staticmethod
    def _outside(ctx: Context, sites: list[Path]) -> str:
        """``compile: false``: the final stages' bytecode folder, outside the environment, gets
        the plan of what the bytecode cache holds of the environment's sources; their imports
        link each cached pyc in as they need it, checked first (``inside/_launch.py``), and
        compile only the rest. Nothing is written into the environment, no interpreter started."""
        assert ctx.pycache is not None
        plan = _cache_plan(ctx, sites)
        try:
            (ctx.pycache / BYTECODE_PLAN).write_text(json.dumps(plan), encoding="utf-8")
        except OSError as exc:  # the cache never fails a build: the final stages compile it all
            return f"compile: false, none in the environment; no cached bytecode offered ({exc.strerror})"
        dists = plan.get("dists", [])
        count = sum(len(d["sources"]) for d in dists) if isinstance(dists, list) else 0
        return (f"compile: false, none in the environment; the final stages take cached pycs "
                f"(of up to {count} files) outside it as their imports need them")


def _carried_stamps(stamps: Path, out: Path, env_dir: Path, memo: HashMemo, cache_tag: str) -> bool:
    """Write to ``out`` the previous build's stamps whose source and ``.pyc`` the clone carried
    over provably unchanged (:meth:`HashMemo.carried`); False when there are none.

    A stamp alone names files by inode, size and mtime, which an in-place write with the
    mtime set back keeps; the clone's proof also holds the ctime, which nothing sets back
    (see :class:`pinfold.manifest.HashMemo`). Only a pair both prove is skipped.
    """
    try:
        lines = stamps.read_bytes().decode("utf-8", "surrogateescape").split("\n")
    except OSError:
        return False
    kept = [lines[0]]
    base = os.path.join(env_dir, "")
    for line in lines[1:]:
        rel, tab, _ = line.partition("\t")
        if not tab:
            continue
        folder, _, name = rel.rpartition("/")
        if not name.endswith(".py"):
            continue
        pyc = f"{folder}/__pycache__/{name[:-3]}.{cache_tag}.pyc" if folder else ""
        try:  # plain strings: 14,000 paths of a 120-distribution update, pathlib 3x slower
            both = pyc and memo.carried(rel, os.lstat(base + rel)) and memo.carried(
                pyc, os.lstat(base + pyc))
        except OSError:
            continue
        if both:
            kept.append(line)
    if len(kept) == 1:
        return False
    out.write_bytes("\n".join(kept).encode("utf-8", "surrogateescape") + b"\n")
    return True


def _offer(hashes: Path, env_dir: Path, memo: HashMemo) -> None:
    """Give the memo what the script's ``--hashes`` file says of the pycs it linked (see
    ``pinfold/inside/compile.py``), so that the final scan does not hash them again. A line
    that does not parse is left out: the scan reads that file, as it always could."""
    try:
        text = hashes.read_bytes().decode("utf-8", "surrogateescape")
    except OSError:
        return
    base = os.path.join(env_dir, "")
    found = []
    for line in text.split("\n"):
        path, tab, rest = line.partition("\t")
        fields = rest.split(" ")
        if not tab or not path.startswith(base) or len(fields) != 8:
            continue
        sha, head = fields[0], fields[1]
        try:
            dev, ino, size, mtime, ctime, nlink = (int(f) for f in fields[2:])
            norm = hashlib.sha256(bytes.fromhex(head)).hexdigest()
        except ValueError:
            continue
        if len(sha) != 64 or len(head) != 16 or sha.strip("0123456789abcdef"):
            continue
        found.append((path[len(base):], (dev, ino, size, mtime, ctime), nlink, sha, norm))
    with contextlib.suppress(OSError):  # no clock to be had (a full disk): the scan reads them
        memo.offer(env_dir, found)


def _cache_plan(ctx: Context, sites: list[Path]) -> dict[str, object]:
    """What the bytecode cache may provide: each installed distribution's key and sources."""
    report = ctx.preflight
    if report is None:
        return {}
    sdists = {str(p) for p in report.from_source}
    build_lock = None
    if sdists and ctx.spec.build_requirements is not None:
        try:
            build_lock = ctx.spec.build_requirements.path.read_bytes()
        except OSError:
            return {}  # it was read a moment ago; without it no sdist key can be trusted
    keys = {pin: key for pin, chosen in report.chosen.items()
            if (key := artifact_key(chosen.digest, from_source=pin in sdists, build_lock=build_lock))}
    dists = distributions(sites, keys)
    return {"root": str(pyc_root()),
            "dists": [{"site": str(d.site), "key": d.key, "sources": list(d.sources)} for d in dists]}
