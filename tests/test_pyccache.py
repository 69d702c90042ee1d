"""The bytecode cache (pinfold/pyccache.py, pinfold/inside/compile.py) and pre-flight's digest cache.

Behaviour only, never durations: a second build compiles nothing and every ``.pyc`` is
valid for its source; an entry that fails a check is not used and is replaced; concurrent
fills leave one entry; a killed fill leaves nothing a later build trusts; prune bounds the size;
a wheel replaced by other bytes of the same size and mtime is hashed again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pinfold import build, load_spec
from pinfold.index import DigestCache, sha256_of
from pinfold.inside import script
from pinfold.pyccache import MANIFEST, cache_info, distributions, parse_size, prune
from tests.artifacts import make_wheel
from tests.conftest import write
from tests.test_build import Wheelhouse, lock_text, make_project, wheelhouse  # noqa: F401 (a fixture)
from tests.test_json_schema import run as run_json

TAG = sys.implementation.cache_tag

#: Run in an interpreter: every .py under the folders has a checked-hash .pyc valid for it
#: (bad.py excepted); prints the count checked, or the first bad one.
CHECK_ALL = r"""
import importlib.util, os, struct, sys
n = 0
for folder in sys.argv[1:]:
    for root, dirs, files in os.walk(folder):
        for name in files:
            if not name.endswith(".py") or name == "badsyntax.py":
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                src = fh.read()
            try:
                compile(src, path, "exec")
            except SyntaxError:
                continue
            with open(importlib.util.cache_from_source(path), "rb") as fh:
                head = fh.read(16)
            ok = (head[:4] == importlib.util.MAGIC_NUMBER and struct.unpack("<L", head[4:8])[0] == 3
                  and head[8:16] == importlib.util.source_hash(src))
            if not ok:
                sys.exit(f"BAD {path}")
            n += 1
print(n)
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test its own cache folder (PINFOLD_CACHE_DIR moves it)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("PINFOLD_CACHE_DIR", str(root))
    return root


def a_site(folder: Path) -> Path:
    """A site-packages folder with one installed distribution (RECORD included)."""
    write(folder / "pkg" / "__init__.py", "X = 1\n")
    write(folder / "pkg" / "mod.py", "def f():\n    return 2\n")
    write(folder / "pkg" / "bad.py", "print 'python 2'\n")
    write(folder / "pkg-1.0.dist-info" / "METADATA", "Name: pkg\nVersion: 1.0\n")
    write(folder / "pkg-1.0.dist-info" / "RECORD",
          "pkg/__init__.py,,\npkg/mod.py,,\npkg/bad.py,,\npkg-1.0.dist-info/RECORD,,\n")
    return folder


def compile_site(site: Path, root: Path) -> str:
    """The compile stage's script on ``site``, with ``root`` as the cache; its stdout."""
    dists = distributions([site], {"pkg==1.0": "a" * 64})
    plan = site.parent / f"{site.name}.plan.json"
    plan.write_text(json.dumps({"root": str(root / "pyc"), "dists": [
        {"site": str(d.site), "key": d.key, "sources": list(d.sources)} for d in dists]}))
    done = subprocess.run([sys.executable, "-I", str(script("compile")), "--plan", str(plan), str(site)],
                          capture_output=True, text=True, check=True)
    return done.stdout


def check_all(python: str, *folders: Path) -> int:
    done = subprocess.run([python, "-I", "-c", CHECK_ALL, *map(str, folders)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def entry_of(root: Path) -> Path:
    (entry,) = (p for p in (root / "pyc").glob("*/*") if not p.name.startswith("."))
    return entry


def test_distributions_read_the_record(tmp_path: Path) -> None:
    site = a_site(tmp_path / "site")
    (d,) = distributions([site], {"pkg==1.0": "k"})
    assert d.sources == ("pkg/__init__.py", "pkg/bad.py", "pkg/mod.py") and d.key == "k"
    assert distributions([site], {"other==1.0": "k"}) == []


def test_second_compile_links_from_the_cache(tmp_path: Path, own_cache: Path) -> None:
    first = compile_site(a_site(tmp_path / "one"), own_cache)
    assert "compiled 2 of 3 files (0 from the cache" in first and "CACHED 1" in first
    second = compile_site(a_site(tmp_path / "two"), own_cache)
    assert "compiled 0 of 3 files (2 from the cache" in second, second
    assert "FAILED" in second  # the file that does not compile is still said
    assert check_all(sys.executable, tmp_path / "two") == 2
    linked = tmp_path / "two" / "pkg" / "__pycache__" / f"mod.{TAG}.pyc"
    assert linked.stat().st_nlink >= 2  # a hard link, not a copy
    manifest = json.loads((entry_of(own_cache) / MANIFEST).read_text())
    assert sorted(manifest["files"]) == [f"pkg/__pycache__/__init__.{TAG}.pyc",
                                         f"pkg/__pycache__/mod.{TAG}.pyc"]


def test_a_changed_source_is_compiled_not_linked(tmp_path: Path, own_cache: Path) -> None:
    compile_site(a_site(tmp_path / "one"), own_cache)
    site = a_site(tmp_path / "two")
    write(site / "pkg" / "mod.py", "def f():\n    return 3\n")  # not what the artifact holds
    out = compile_site(site, own_cache)
    assert "compiled 1 of 3 files (1 from the cache" in out, out
    assert check_all(sys.executable, site) == 2


def test_a_tampered_entry_is_not_used_and_is_replaced(tmp_path: Path, own_cache: Path) -> None:
    compile_site(a_site(tmp_path / "one"), own_cache)
    cached = entry_of(own_cache) / "pkg" / "__pycache__" / f"mod.{TAG}.pyc"
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF  # the code, not the header: only the manifest's sha256 can tell
    replacement = cached.with_name("x")
    replacement.write_bytes(bytes(data))
    replacement.replace(cached)
    site = a_site(tmp_path / "two")
    out = compile_site(site, own_cache)
    assert "compiled 1 of 3 files (1 from the cache" in out and "CACHED 1" in out, out
    pyc = site / "pkg" / "__pycache__" / f"mod.{TAG}.pyc"
    assert pyc.read_bytes() != bytes(data)
    assert check_all(sys.executable, site) == 2
    # The entry was written anew: a third build links everything again.
    fresh = entry_of(own_cache) / "pkg" / "__pycache__" / f"mod.{TAG}.pyc"
    assert fresh.read_bytes() == pyc.read_bytes()
    assert "compiled 0 of 3" in compile_site(a_site(tmp_path / "three"), own_cache)


def test_concurrent_fills_leave_one_entry(tmp_path: Path, own_cache: Path) -> None:
    sites = [a_site(tmp_path / f"s{i}") for i in range(4)]
    plans = []
    for site in sites:
        dists = distributions([site], {"pkg==1.0": "a" * 64})
        plan = site.parent / f"{site.name}.plan.json"
        plan.write_text(json.dumps({"root": str(own_cache / "pyc"), "dists": [
            {"site": str(d.site), "key": d.key, "sources": list(d.sources)} for d in dists]}))
        plans.append(subprocess.Popen([sys.executable, "-I", str(script("compile")), "--plan", str(plan),
                                       str(site)], stdout=subprocess.DEVNULL))
    assert [p.wait() for p in plans] == [0, 0, 0, 0]
    entries = list((own_cache / "pyc").glob("*/*"))
    assert len(entries) == 1 and not entries[0].name.startswith("."), entries
    for site in sites:
        assert check_all(sys.executable, site) == 2
    assert "compiled 0 of 3" in compile_site(a_site(tmp_path / "after"), own_cache)


def test_a_killed_fill_is_never_trusted(tmp_path: Path, own_cache: Path) -> None:
    """What a fill killed before its rename leaves (a .tmp-* folder, even one with a manifest
    and files), and an entry folder without a manifest, are never read."""
    compile_site(a_site(tmp_path / "one"), own_cache)
    entry = entry_of(own_cache)
    killed = entry.with_name(f".tmp-{entry.name}-dead")
    shutil.copytree(entry, killed)
    shutil.rmtree(entry)
    for pyc in killed.rglob("*.pyc"):
        pyc.write_bytes(pyc.read_bytes()[:16] + b"garbage")
    out = compile_site(a_site(tmp_path / "two"), own_cache)
    assert "compiled 2 of 3 files (0 from the cache" in out, out
    (entry_of(own_cache) / MANIFEST).unlink()  # no manifest: not an entry
    assert "compiled 2 of 3 files (0 from the cache" in compile_site(a_site(tmp_path / "three"), own_cache)
    # Stale leftovers are pruned; a fresh .tmp-* folder (a fill in progress) is kept.
    assert cache_info().leftovers >= 1
    prune(1 << 40, now=time.time() + 7200)
    assert cache_info().leftovers == 0


def test_prune_bounds_the_size(tmp_path: Path, own_cache: Path) -> None:
    for i in range(3):
        site = a_site(tmp_path / f"s{i}")
        dists = distributions([site], {"pkg==1.0": f"{i}" * 64})
        plan = tmp_path / f"p{i}.json"
        plan.write_text(json.dumps({"root": str(own_cache / "pyc"), "dists": [
            {"site": str(d.site), "key": d.key, "sources": list(d.sources)} for d in dists]}))
        subprocess.run([sys.executable, "-I", str(script("compile")), "--plan", str(plan), str(site)],
                       check=True, capture_output=True)
        os.utime(next((own_cache / "pyc").glob("*/" + str(i) * 64)) / MANIFEST, (1000 + i, 1000 + i))
    info = cache_info()
    assert info.entries == 3 and info.pyc_bytes > 0
    one = info.pyc_bytes // 3
    done = prune(one + one // 2)
    assert done.removed == 2 and done.info.size <= one + one // 2
    # The most recently used entry is the one kept.
    assert [p.name for p in (own_cache / "pyc").glob("*/*")] == ["2" * 64]
    os.chdir(tmp_path)
    assert run_json("cache", "info")["entries"] == 1
    result = run_json("cache", "prune", "--max-size", "0")
    assert result["size"] == 0 and result["removed"] == 1 and result["max_size"] == 0


def test_parse_size() -> None:
    assert [parse_size(s) for s in ("0", "4096", "1K", "500M", "2G", "1.5GiB")] == [
        0, 4096, 1024, 500 << 20, 2 << 30, 3 << 29]
    with pytest.raises(ValueError):
        parse_size("lots")


def test_digest_cache_catches_a_replaced_file(tmp_path: Path) -> None:
    """Same size, mtime set back with os.utime: the ctime still changes, so it is hashed again."""
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"A" * 1000)
    os.utime(wheel, (1_000_000, 1_000_000))
    cache = DigestCache(tmp_path / "digests")
    # Just written: racy, hashed but not remembered.
    assert cache.digest(wheel, "sha256") == hashlib.sha256(b"A" * 1000).hexdigest()
    assert not (tmp_path / "digests").exists() or not list((tmp_path / "digests").iterdir())
    cache.RACY_SECONDS = 0.0
    assert cache.digest(wheel, "sha256") == hashlib.sha256(b"A" * 1000).hexdigest()
    assert len(list((tmp_path / "digests").iterdir())) == 1
    time.sleep(0.05)  # past the file system clock's tick
    wheel.write_bytes(b"B" * 1000)
    os.utime(wheel, (1_000_000, 1_000_000))
    assert cache.digest(wheel, "sha256") == hashlib.sha256(b"B" * 1000).hexdigest()
    assert f"sha256:{cache.digest(wheel, 'sha256')}" == sha256_of(wheel)


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_second_build_compiles_nothing(tmp_path: Path, wheelhouse: Wheelhouse,  # noqa: F811
                                       installer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh build after a first one links every .pyc of the locked artifacts (wheels and
    sdist-built ones) from the cache, and every .pyc is valid for its source."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "uv-cache"))
    spec_file = make_project(tmp_path, wheelhouse, installer=installer)
    first = build(load_spec(spec_file))
    detail = {s.name: s.detail for s in first.stages}["compile"]
    assert "compiled 0 of" not in detail, detail
    second = build(load_spec(spec_file), fresh=True)
    detail = {s.name: s.detail for s in second.stages}["compile"]
    assert detail.startswith("compiled 0 of "), detail
    site = next(second.env_dir.glob("lib/python*/site-packages"))
    assert check_all(str(second.env_dir / "bin" / "python"), site) > 0
    # sdist-built wheels too: keyed by the sdist's hash and the build lock.
    assert any(p.name.startswith("src-") for p in (tmp_path / "cache" / "pyc").glob("*/*"))


def _compile_counts(detail: str) -> tuple[int, int, int, int, int]:
    """(compiled, total, from the cache, kept, unchanged) of the compile stage's detail."""
    match = re.match(r"compiled (\d+) of (\d+) files \((\d+) from the bytecode cache, (\d+) kept"
                     r"(?:, (\d+) of them unchanged since the previous build)?\)", detail)
    assert match, detail
    compiled, total, linked, kept, unchanged = match.groups()
    return int(compiled), int(total), int(linked), int(kept), int(unchanged or 0)


@pytest.mark.slow
def test_an_update_reads_only_what_changed(tmp_path: Path, wheelhouse: Wheelhouse,  # noqa: F811
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An update's compile stage skips the files the previous build stamped and the clone kept;
    it checks what the plan installed and what changed since (a source written in place, a
    pyc replaced by a foreign one with the stamped mtime), and every .pyc ends valid."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "uv-cache"))
    spec_file = make_project(tmp_path, wheelhouse, installer="pip")
    first = build(load_spec(spec_file))
    # Stamped only once older than the file system clock's racy window: the first build's
    # compiled files are stamped by the next build that checks them.
    time.sleep(2.1)
    newer = make_wheel(tmp_path / "wheelhouse", "plain-wheel", "2.0")
    old_lock = (tmp_path / "runtime.txt").read_text()
    kept = [a for a in wheelhouse.runtime if a.name != "plain-wheel"]
    write(tmp_path / "runtime.txt", lock_text([*kept, newer]))
    second = build(load_spec(spec_file))
    assert second.plan is not None and second.plan.mode == "update"
    _, total, _, _, unchanged = _compile_counts({s.name: s.detail for s in second.stages}["compile"])
    assert unchanged == 0  # everything the first build compiled was too new to be stamped
    time.sleep(2.1)
    site = next(second.env_dir.glob("lib/python*/site-packages"))
    # A source of a distribution the plan keeps, written in place (same size, new mtime)...
    edited = next(p for p in sorted((site / "pbr").glob("*.py")) if b"# " in p.read_bytes())
    data = edited.read_bytes()
    at = data.index(b"# ") + 2
    edited.write_bytes(data[:at] + (b"X" if data[at:at + 1] != b"X" else b"Y") + data[at + 1:])
    # ...another written in place with its mtime set back (the stamp alone would not see it:
    # the clone's proof, by ctime, does)...
    hidden = next(p for p in sorted((site / "pbr").glob("*.py")) if p != edited and b"# " in p.read_bytes())
    kept_times = hidden.stat()
    data = hidden.read_bytes()
    at = data.index(b"# ") + 2
    hidden.write_bytes(data[:at] + (b"X" if data[at:at + 1] != b"X" else b"Y") + data[at + 1:])
    os.utime(hidden, ns=(kept_times.st_atime_ns, kept_times.st_mtime_ns))
    # ...and a pyc replaced by a foreign one (a timestamp pyc) given the stamped mtime.
    other = next(p for p in sorted((site / "setuptools").glob("*.py")) if p != edited)
    cfile = Path(importlib.util.cache_from_source(str(other)))
    before = cfile.stat()
    foreign = cfile.with_name("foreign.tmp")
    py_compile.compile(str(other), str(foreign), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    os.utime(foreign, ns=(before.st_mtime_ns, before.st_mtime_ns))
    os.replace(foreign, cfile)
    write(tmp_path / "runtime.txt", old_lock)
    third = build(load_spec(spec_file))
    assert third.plan is not None and third.plan.mode == "update"
    detail = {s.name: s.detail for s in third.stages}["compile"]
    compiled, total3, linked, still, unchanged = _compile_counts(detail)
    failed = sum(1 for w in third.warnings if w.startswith("not byte-compiled: "))
    # Not read: all but plain-wheel's one file (moved by the plan), the two edited sources,
    # the replaced pyc, and the files that do not compile (never stamped).
    assert total3 == total and unchanged == total - 4 - failed, (third.stages, failed)
    assert compiled >= 1 and compiled + linked + still == total - failed
    env_site = next(third.env_dir.glob("lib/python*/site-packages"))
    assert check_all(str(third.env_dir / "bin" / "python"), env_site) > 0
    # The previous environment keeps its own (foreign) pyc: replaced in the clone, not written through.
    assert cfile.read_bytes()[4:8] == b"\0\0\0\0"
    assert first.env_dir.is_dir()


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here: nothing is queued")
def test_a_batch_whose_reads_are_queued_ahead_gives_the_same_pycs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compile script's read-ahead (started when a batch's first reads prove slow) only
    queues reads: every pyc is made and valid, and the thread is gone when the batch is."""
    from pinfold.inside import compile as compile_script  # standalone, but importable

    queued: list[int] = []
    queue = compile_script._Ahead._queue

    def counting(self: compile_script._Ahead, paths: list[str]) -> None:
        queued.append(len(paths))
        queue(self, paths)

    monkeypatch.setattr(compile_script._Ahead, "COLD_NS", -1)  # as if every read came from the disk
    monkeypatch.setattr(compile_script._Ahead, "_queue", counting)
    folder = tmp_path / "site"
    count = compile_script._Ahead.PROBE + 8
    sources = [write(folder / "pkg" / f"m{n}.py", f"X = {n}\n") for n in range(count)]
    done, failed = compile_script.compile_batch([(str(p), "", "") for p in sources])
    assert failed == [] and {what for _, what, _, _ in done} == {compile_script.COMPILED}
    assert queued == [8]  # the sources after the first PROBE
    assert check_all(sys.executable, folder) == len(sources)
    assert not any(t.name == "pinfold-read-ahead" for t in threading.enumerate())


def test_a_cached_pyc_is_claimed_for_the_scan_only_when_unchanged_up_to_the_link(tmp_path: Path) -> None:
    """The compile script's record of a linked pyc (``--hashes``): given when the cache file
    is the one read up to the link and older than the clock; not when it was written in place
    (mtime set back) between the read and the link, nor when its last change shares the
    clock's tick."""
    from pinfold.inside import compile as compile_script  # standalone, but importable

    source = b"X = 1\n"
    src = write(tmp_path / "site" / "m.py", source.decode())
    cached = tmp_path / "cache" / "m.pyc"
    cached.parent.mkdir()
    py_compile.compile(str(src), str(cached), invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    sha = hashlib.sha256(cached.read_bytes()).hexdigest()

    def clock_past() -> int:  # the file system's clock once past the cache file's last change
        for _ in range(300):
            clock = compile_script.fs_clock(str(cached.parent))
            if clock > os.lstat(cached).st_ctime_ns:
                return clock
            time.sleep(0.01)
        raise AssertionError("the file system clock does not move")

    clock = clock_past()

    def link(name: str, **kw: Any) -> tuple[os.stat_result, str] | bool:
        cfile = tmp_path / "site" / "__pycache__" / f"{name}.pyc"
        return compile_script._from_cache(str(cached), sha, source, str(cfile), fresh=True, **kw)

    good = link("a", clock=clock)
    assert isinstance(good, tuple) and good[1].split("\t")[1].split(" ")[0] == sha
    assert isinstance(same_tick := link("b", clock=os.lstat(cached).st_ctime_ns), tuple)
    assert same_tick[1] == ""

    def load_then_edit(path: str) -> tuple[bytes, os.stat_result]:
        data, info = compile_script._load(path)
        info_now = os.stat(path)
        with open(path, "r+b") as fh:  # the same bytes' length, written in place
            fh.seek(len(data) - 1)
            fh.write(bytes([data[-1] ^ 1]))
        os.utime(path, ns=(info_now.st_atime_ns, info_now.st_mtime_ns))
        return data, info

    clock = clock_past()  # the links above moved the cache file's ctime
    assert isinstance(control := link("c", clock=clock), tuple) and control[1] != ""
    clock = clock_past()
    edited = link("d", clock=clock, load=load_then_edit)
    assert isinstance(edited, tuple) and edited[1] == ""  # linked (it was checked), not claimed
