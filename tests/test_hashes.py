"""A build hashes each byte at most once, and an update does not hash again what it carried over.

The build's :class:`~pinfold.manifest.HashMemo` keeps, per file, the identity (device, inode,
size, mtime, ctime) it had when it was read; uv's RECORD check and the final scan share it,
and an update's clone takes the previous build's record (``pinfold-hashes.json``) for the
files whose identity is unchanged. The manifest must stay exactly what reading every file
would give. The unit tests build small trees by hand; the real builds use pip and uv.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, TypeVar

import pytest

import pinfold.pipeline
from pinfold import BuildError, build, check, load_spec
from pinfold.envdir import Environments
from pinfold.errors import ProbeError
from pinfold.manifest import (
    HASHES_FILE,
    HashMemo,
    Identity,
    ReadAhead,
    Tokens,
    compare,
    read_manifest,
    record_differences,
    scan,
)
from pinfold.record import read_digest
from pinfold.stages import s5_compile
from tests.artifacts import Artifact, make_wheel
from tests.conftest import write
from tests.test_manifest import project, wheelhouse  # noqa: F401 (the fixture)

SITE = "lib/python3.11/site-packages"


def settle(folder: Path) -> None:
    """Wait until the file system's clock has moved past every ctime under ``folder`` (a memo
    keeps no record of a file changed in the clock tick it was read in)."""
    newest = max(os.lstat(os.path.join(d, f)).st_ctime_ns for d, _, fs in os.walk(folder) for f in fs)
    for _ in range(200):
        if HashMemo(Tokens()).clock(folder) > newest:
            return
        time.sleep(0.01)
    raise AssertionError("the file system clock does not move")


def edit_in_place(path: Path, data: bytes) -> None:
    """Write ``data`` (same size) into the file's own inode and set its mtime back."""
    info = path.stat()
    assert len(data) == info.st_size
    with path.open("r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (info.st_ino, info.st_mtime_ns)


def finished_env(envs: Environments, name: str) -> Path:
    """A directory as a build leaves it, by hand: marker, files, the scan's hashes saved."""
    env = envs.versions / name
    envs.versions.mkdir(exist_ok=True)
    envs.create(env)
    write(env / "pyvenv.cfg", f"home = /usr/bin\ncommand = /usr/bin/python -m virtualenv {env}\n")
    write(env / "bin" / "tool", f"#!{env}/bin/python\nimport tool\n")
    write(env / SITE / "pkg" / "__init__.py", "x = 1\n")
    write(env / SITE / "pkg" / "paths.py", f"HERE = {str(env)!r}\n")        # holds a token
    write(env / SITE / "pkg" / "dated.py", "YEAR = '2024 edition'\n")     # the year of the name
    (env / SITE / "pkg" / "__pycache__").mkdir()
    (env / SITE / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(
        b"\xa7\r\r\n\0\0\0\0" + str(env).encode() + b"code")
    settle(env)
    memo = HashMemo(Tokens.of(env, path=envs.path, root=envs.path.parent))
    manifest = scan(env, memo=memo)
    memo.save(env, manifest.entries, since=memo.clock(env))
    write(env / "pinfold.json", "{}")  # finished (the clone never copies it)
    return env


# -- unit: trees made by hand ----------------------------------------------------------------


def test_a_memo_reads_each_file_once_and_again_after_any_change(tmp_path: Path) -> None:
    env = tmp_path / "p.d" / "20240101-000000000-aaaaaa"
    write(env / "a.py", "a = 1\n")
    write(env / "b.txt", f"built at {env}\n")
    settle(env)
    memo = HashMemo(Tokens.of(env, path=tmp_path / "p", root=tmp_path))
    first = scan(env, memo=memo)
    assert sorted(memo.read) == ["a.py", "b.txt"]
    assert first.entries == scan(env, memo.tokens).entries  # exactly what reading gives
    assert scan(env, memo=memo).entries == first.entries and sorted(memo.read) == ["a.py", "b.txt"]
    # Written in place, same size, mtime set back: the ctime still moved.
    edit_in_place(env / "a.py", b"a = 2\n")
    settle(env)
    again = scan(env, memo=memo)
    assert memo.read[2:] == ["a.py"]
    assert again.entries["a.py"].sha256 == hashlib.sha256(b"a = 2\n").hexdigest()
    # A chmod is a change of the identity too (and of the entry's mode).
    os.chmod(env / "b.txt", 0o600)
    settle(env)
    assert scan(env, memo=memo).entries == scan(env, memo.tokens).entries
    assert memo.read[3:] == ["b.txt"]


def test_a_file_changed_in_the_tick_it_was_read_is_not_kept(tmp_path: Path) -> None:
    """No record of a file whose ctime is not older than the clock taken before its stat."""
    env = tmp_path / "e"
    write(env / "a.py", "a = 1\n")
    memo = HashMemo(Tokens())
    info = os.lstat(env / "a.py")
    memo.put("a.py", info, "0" * 64, "", 0, since=info.st_ctime_ns)  # the same tick
    assert memo.lookup("a.py", info) is None
    memo.put("a.py", info, "0" * 64, "", 0, since=info.st_ctime_ns + 1)
    assert memo.lookup("a.py", info) == ("0" * 64, "")


def test_a_file_written_just_before_the_clock_is_kept(tmp_path: Path) -> None:
    """The memo's clock is past every change finished before it was asked: files an installer
    wrote a moment before the RECORD check (INSTALLER, REQUESTED) are not read again by the
    scan. File systems give both the same coarse time when the clock is read at once (on a
    kernel with multigrain timestamps: every time)."""
    env = tmp_path / "e"
    memo = HashMemo(Tokens())
    for n in range(50):
        write(env / f"f{n}.txt", f"{n}\n")
        since = memo.clock(env)
        info = os.lstat(env / f"f{n}.txt")
        assert info.st_ctime_ns < since
        memo.hash(f"f{n}.txt", str(env / f"f{n}.txt"), info, since)
        assert memo.lookup(f"f{n}.txt", info) is not None


T = TypeVar("T")


def in_time(call: Callable[[], T], seconds: float = 30.0) -> T:
    """``call()``'s result, from a thread: a read that blocks (a FIFO opened) fails the test
    instead of hanging it."""
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still blocked after {seconds} s"
    return out[0]


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here: nothing is queued")
def test_read_ahead_gives_the_bytes_and_opens_only_regular_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads that prove slow start a thread queueing the rest; what is read is unchanged, and
    a FIFO or a missing file in the list neither blocks nor fails it."""
    monkeypatch.setattr(ReadAhead, "COLD_NS", -1)  # as if every read came from the disk
    files = [tmp_path / f"f{n}" for n in range(ReadAhead.PROBE + 40)]
    for n, path in enumerate(files):
        path.write_bytes(b"%d\n" % n * n)
    os.mkfifo(tmp_path / "fifo")
    paths = [str(p) for p in files[:ReadAhead.PROBE]] + [str(tmp_path / "fifo"), str(tmp_path / "gone")]
    paths += [str(p) for p in files[ReadAhead.PROBE:]]

    def read_all() -> tuple[list[bytes], bool]:
        with ReadAhead(paths) as ahead:
            return [ahead.read(str(p), p.stat().st_size) for p in files], ahead.queuing

    got, queuing = in_time(read_all)
    assert got == [p.read_bytes() for p in files] and queuing
    assert not any(t.name == "pinfold-read-ahead" for t in threading.enumerate())
    # What the thread opens: every regular file, never the FIFO (it would block without
    # O_NONBLOCK; a device could act on being opened).
    opened: list[str] = []
    real_open = os.open

    def recording(path: str, flags: int, *args: int) -> int:
        opened.append(str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", recording)
    in_time(lambda: ReadAhead(paths)._queue(paths))
    monkeypatch.setattr(os, "open", real_open)
    assert sorted(opened) == sorted(str(p) for p in files)
    monkeypatch.setattr(ReadAhead, "COLD_NS", 10**12)  # from the page cache: no thread
    with ReadAhead(paths) as ahead:
        for p in files:
            ahead.read(str(p), p.stat().st_size)
        assert not ahead.queuing


def test_the_record_check_says_a_fifo_is_not_a_file(tmp_path: Path) -> None:
    """A file the RECORD lists that became a FIFO is named, never opened (it would block)."""
    env = tmp_path / "env"
    site = env / SITE
    write(site / "pkg" / "__init__.py", "x = 1\n")
    os.mkfifo(site / "pkg" / "data")
    (site / "pkg" / "link").symlink_to("data")  # a link to it: the read would follow
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"x = 1\n").digest()).rstrip(b"=").decode()
    write(site / "pkg-1.0.dist-info" / "RECORD",
          f"pkg/__init__.py,sha256={digest},6\npkg/data,sha256={digest},6\n"
          f"pkg/link,sha256={digest},6\npkg-1.0.dist-info/RECORD,,\n")
    checked, bad = in_time(lambda: record_differences(site, env, HashMemo(Tokens())))
    assert checked == 3 and bad == [(str(site / "pkg" / name), "it is not a regular file")
                                    for name in ("data", "link")]


def test_an_update_reads_only_what_it_could_not_carry(tmp_path: Path) -> None:
    envs = Environments(tmp_path / "env")
    old = finished_env(envs, "20240101-000000000-aaaaaa")
    assert json.loads((old / HASHES_FILE).read_bytes())["files"]
    edit_in_place(old / SITE / "pkg" / "__init__.py", b"x = 9\n")  # after the hashes were saved
    new = envs.versions / "20240102-000000000-bbbbbb"
    envs.create(new)
    memo = HashMemo(Tokens.of(new, path=envs.path, root=envs.path.parent))
    envs.clone(old, new, memo)
    assert not (new / HASHES_FILE).exists()
    settle(new)
    manifest = scan(new, memo=memo)
    assert sorted(memo.read) == sorted([
        "pyvenv.cfg", "bin/tool",        # rewritten by the clone: new inodes
        f"{SITE}/pkg/__init__.py",      # written in place in the previous environment
        f"{SITE}/pkg/paths.py",         # held the previous directory's path (a token there)
        f"{SITE}/pkg/dated.py",         # holds the year: might hold the new directory's name
    ])  # the .pyc is carried: its digest form is its first 8 bytes, whatever the tokens
    plain = scan(new, memo.tokens)
    assert manifest.entries == plain.entries and manifest.digest == plain.digest
    assert manifest.entries[f"{SITE}/pkg/__init__.py"].sha256 == hashlib.sha256(b"x = 9\n").hexdigest()
    # The check still compares raw bytes, no memo: another in-place write is named.
    edit_in_place(old / SITE / "pkg" / "__init__.py", b"x = 8\n")
    assert list(compare(manifest, new).changed) == [f"{SITE}/pkg/__init__.py"]


def test_files_linked_in_the_clock_tick_that_ends_the_clone_are_carried(tmp_path: Path) -> None:
    """File system timestamps are coarse: the clone's last links share a tick with the clock
    taken right after it. The memo waits for the next tick instead of hashing them again."""
    for n in range(3):  # each clone ends in a tick of its own: more than one chance to share it
        envs = Environments(tmp_path / f"env{n}")
        old = envs.versions / "20240101-000000000-aaaaaa"
        envs.versions.mkdir()
        envs.create(old)
        write(old / "pyvenv.cfg", "home = /usr/bin\n")
        write(old / "bin" / "tool", "#!/bin/sh\n")
        for i in range(400):
            write(old / SITE / "many" / f"m{i}.py", f"n = {i}\n")
        settle(old)
        memo = HashMemo(Tokens.of(old, path=envs.path, root=envs.path.parent))
        memo.save(old, scan(old, memo=memo).entries, since=memo.clock(old))
        write(old / "pinfold.json", "{}")
        new = envs.versions / "20240102-000000000-bbbbbb"
        envs.create(new)
        memo = HashMemo(Tokens.of(new, path=envs.path, root=envs.path.parent))
        envs.clone(old, new, memo)
        scan(new, memo=memo)
        assert [r for r in memo.read if r.startswith(f"{SITE}/many/")] == [], n


def test_hashes_are_trusted_only_in_their_own_finished_directory(tmp_path: Path) -> None:
    envs = Environments(tmp_path / "env")
    old = finished_env(envs, "20240101-000000000-aaaaaa")
    memo = HashMemo(Tokens.of(old))
    assert memo.inherit(old)
    # A copy of the directory (cp -a: other inodes) brings the file along: not trusted.
    other = envs.versions / "20240101-000000000-cccccc"
    shutil.copytree(old, other, symlinks=True)
    assert memo.inherit(other) == {}
    # Cut short or not pinfold's: not trusted.
    data = (old / HASHES_FILE).read_bytes()
    (old / HASHES_FILE).write_bytes(data[: len(data) // 2])
    assert memo.inherit(old) == {}
    doc = json.loads(data)
    doc["files"][f"{SITE}/pkg/__init__.py"][6] = 7
    (old / HASHES_FILE).write_text(json.dumps(doc))
    assert memo.inherit(old) == {}
    # A kill during the write (it happens in the finished directory) leaves a temporary file:
    # never in the manifest, never compared, never cloned.
    (old / HASHES_FILE).write_bytes(data)
    stray = old / f".{HASHES_FILE}.123.abcdef.tmp"
    stray.write_bytes(data[:10])
    (old / ".pinfold-clock.123.abcdef.tmp").write_bytes(b"")
    before = scan(old)
    assert not any(p.startswith(".pinfold-") for p in before.entries)
    new = envs.versions / "20240102-000000000-bbbbbb"
    envs.create(new)
    envs.clone(old, new, HashMemo(Tokens.of(new)))
    assert not list(new.glob(".pinfold-*.tmp"))


# -- real builds -----------------------------------------------------------------------------


class Recording(HashMemo):
    """The build's memo, kept for the test to read (the build itself is not changed)."""

    made: ClassVar[list[HashMemo]] = []

    def __init__(self, tokens: Tokens) -> None:
        super().__init__(tokens)
        Recording.made.append(self)


@pytest.fixture()
def memos(monkeypatch: pytest.MonkeyPatch) -> list[HashMemo]:
    Recording.made = []
    monkeypatch.setattr(pinfold.pipeline, "HashMemo", Recording)
    return Recording.made


@pytest.fixture(params=["pip", "uv"])
def installer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path_factory.mktemp("uv-cache")))
    return str(request.param)


def lock_without(wh: tuple[Path, list[Artifact]], *names: str) -> str:
    return "".join(f"{a.pin()}\n" for a in wh[1] if a.name not in names)


@pytest.mark.slow
def test_an_update_reads_only_what_changed_and_gives_the_fresh_digest(
        tmp_path: Path, wheelhouse: tuple[Path, list[Artifact]], installer: str,  # noqa: F811
        memos: list[HashMemo]) -> None:
    spec_file = project(tmp_path, wheelhouse, installer, pins=lock_without(wheelhouse, "myplug"))
    first = build(load_spec(spec_file))
    if installer == "uv":  # the RECORD check's reads were not read again by the scan
        assert len(memos[0].read) == len(set(memos[0].read))
    project(tmp_path, wheelhouse, installer)  # the plugin is added: an update
    update = build(load_spec(spec_file))
    assert update.plan is not None and update.plan.mode == "update"
    memo = memos[-1]
    files = read_manifest(update.env_dir)
    assert files is not None
    for rel in memo.read:
        data = (update.env_dir / rel).read_bytes()
        why = (rel == "pyvenv.cfg" or rel.startswith("bin/") or "myplug" in rel
               or "/twisted/plugins/" in rel                      # the regenerated plugin cache
               or rel.endswith(("/RECORD", "/uv_cache.json", "/INSTALLER", "/direct_url.json"))
               or any(s in data for s in memo.searched))           # tokens, or the year
        assert why, f"{rel} was read again although the update carried it over"
    assert len(memo.read) < len(files.entries) // 5, (len(memo.read), len(files.entries))
    assert memo.reused > len(files.entries) // 2
    # The same inputs from scratch: the same digest.
    fresh = build(load_spec(spec_file), fresh=True)
    assert read_digest(fresh.env_dir) == read_digest(update.env_dir) != read_digest(first.env_dir)
    assert check(load_spec(spec_file), files_only=True).outputs.probe_results[0].status == "ok"


class Tampering(Recording):
    """The build's memo, which edits one of the pycs the compile stage just linked from the
    bytecode cache in place (same size, mtime set back: only the ctime moves) right after
    the compile stage offered their hashes."""

    edited: ClassVar[list[str]] = []

    def offer(self, folder: Path, found: Iterable[tuple[str, Identity, int, str, str]]) -> int:
        rows = list(found)
        kept = super().offer(folder, rows)
        # Every one kept (else the test proves nothing): the scan would take this one's hash.
        assert rows and kept == len(rows), (kept, len(rows))
        # A test module's: no probe imports it (its code may no longer load).
        rel = sorted(r[0] for r in rows if "/test/" in r[0] or "/tests/" in r[0])[0]
        assert self.lookup(rel, os.lstat(folder / rel)) is not None
        data = (folder / rel).read_bytes()
        edit_in_place(folder / rel, data[:-1] + bytes([data[-1] ^ 1]))
        Tampering.edited.append(rel)
        return kept


def test_the_compile_stages_hashes_file_is_read_with_care(tmp_path: Path) -> None:
    """Lines that do not parse, name another folder or a file that is not a pyc are left out;
    the one good line is kept, and nothing raises."""
    env = tmp_path / "env"
    pyc = write(env / SITE / "pkg" / "__pycache__" / "m.cpython-311.pyc", "x" * 20)
    settle(env)
    info = os.lstat(pyc)
    sha, head = hashlib.sha256(pyc.read_bytes()).hexdigest(), b"xxxxxxxx".hex()
    ident = " ".join(str(n) for n in (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns,
                                      info.st_ctime_ns, info.st_nlink))
    other = write(env / SITE / "pkg" / "m.py", "x = 1\n")
    lines = [f"{pyc}\t{sha} {head} {ident}",
             f"{tmp_path / 'elsewhere.pyc'}\t{sha} {head} {ident}",       # not in the environment
             f"{other}\t{sha} {head} {ident}",                             # not a pyc
             f"{pyc}\t{sha} {head} {ident} 7",                             # a field too many
             f"{pyc}\t{'g' * 64} {head} {ident}",                          # not a sha256
             f"{pyc}\t{sha} {head[:-1]}z {ident}",                          # not hex
             f"{pyc}\t{sha} {head} x {ident.split(' ', 1)[1]}",             # not a number
             "\udcff\tgarbage", "", "no tab at all"]
    hashes = tmp_path / "hashes"
    hashes.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    memo = HashMemo(Tokens())
    s5_compile._offer(hashes, env, memo)
    rel = f"{SITE}/pkg/__pycache__/m.cpython-311.pyc"
    assert memo.lookup(rel, os.lstat(pyc)) == (sha, hashlib.sha256(b"xxxxxxxx").hexdigest())
    assert not memo.knows(f"{SITE}/pkg/m.py")
    s5_compile._offer(tmp_path / "missing", env, HashMemo(Tokens()))  # no file: nothing


@pytest.mark.slow
def test_a_fresh_build_does_not_hash_again_the_pycs_it_linked_from_the_bytecode_cache(
        tmp_path: Path, wheelhouse: tuple[Path, list[Artifact]], installer: str,  # noqa: F811
        memos: list[HashMemo], monkeypatch: pytest.MonkeyPatch) -> None:
    """The compile stage hands the scan the sha256 of each pyc it linked (computed by its
    check); the manifest is still exactly what reading every file gives."""
    monkeypatch.setenv("PINFOLD_CACHE_DIR", str(tmp_path / "cache"))
    spec_file = project(tmp_path, wheelhouse, installer)
    build(load_spec(spec_file))  # fills the bytecode cache
    second = build(load_spec(spec_file), fresh=True)
    compiled = {s.name: s.detail for s in second.stages}["compile"]
    assert compiled.startswith("compiled 0 of "), compiled
    manifest = read_manifest(second.env_dir)
    assert manifest is not None
    pycs = [rel for rel in manifest.entries if rel.endswith(".pyc")]
    assert len(pycs) > 10
    assert [rel for rel in memos[-1].read if rel.endswith(".pyc")] == []
    assert manifest.entries == scan(second.env_dir, memos[-1].tokens).entries


@pytest.mark.slow
def test_a_linked_pyc_edited_after_the_compile_stage_is_read_again(
        tmp_path: Path, wheelhouse: tuple[Path, list[Artifact]],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINFOLD_CACHE_DIR", str(tmp_path / "cache"))
    spec_file = project(tmp_path, wheelhouse, "pip")
    build(load_spec(spec_file))
    Recording.made, Tampering.edited = [], []
    monkeypatch.setattr(pinfold.pipeline, "HashMemo", Tampering)
    second = build(load_spec(spec_file), fresh=True)
    (rel,) = Tampering.edited
    assert rel in Recording.made[-1].read
    manifest = read_manifest(second.env_dir)
    assert manifest is not None
    assert manifest.entries[rel].sha256 == hashlib.sha256((second.env_dir / rel).read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_file_edited_in_place_with_its_mtime_set_back_is_read_again(
        tmp_path: Path, wheelhouse: tuple[Path, list[Artifact]], memos: list[HashMemo]) -> None:  # noqa: F811
    spec_file = project(tmp_path, wheelhouse, "pip", pins=lock_without(wheelhouse, "myplug"))
    spec = load_spec(spec_file)
    first = build(spec)
    module = next(first.env_dir.glob("lib/*/site-packages/tool/__init__.py"))
    rel = str(module.relative_to(first.env_dir))
    edit_in_place(module, module.read_bytes().replace(b"return 0", b"return 1"))
    with pytest.raises(ProbeError) as caught:  # `pinfold check` on the previous environment
        check(spec, files_only=True)
    assert rel in "\n".join(caught.value.results[0].evidence)
    project(tmp_path, wheelhouse, "pip")
    update = build(load_spec(spec_file))
    assert rel in memos[-1].read
    manifest = read_manifest(update.env_dir)
    assert manifest is not None
    assert manifest.entries[rel].sha256 == hashlib.sha256(module.read_bytes()).hexdigest()


@pytest.mark.slow
def test_an_update_still_catches_a_uv_cache_file_edited_in_place(
        tmp_path: Path, wheelhouse: tuple[Path, list[Artifact]], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "own-uv-cache"))  # poisoned on purpose
    spec_file = project(tmp_path, wheelhouse, "uv", pins=lock_without(wheelhouse, "myplug"))
    first = build(load_spec(spec_file))
    module = next(first.env_dir.glob("lib/*/site-packages/tool/__init__.py"))
    edit_in_place(module, module.read_bytes().replace(b"return 0", b"return 1"))
    project(tmp_path, wheelhouse, "uv")
    with pytest.raises(BuildError) as info:
        build(load_spec(spec_file))
    assert "installed files differ from the wheels they came from" in str(info.value)
    assert "tool/__init__.py: its sha256 differs from the RECORD of its wheel" in str(info.value)
    assert (tmp_path / "env").resolve() == first.env_dir


@pytest.mark.slow
def test_a_killed_update_leaves_nothing_a_later_build_trusts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after its clone and install (its memo only in memory): the unfinished folder has
    no hashes file, the next build removes it, and its update gives a fresh build's digest."""
    from tests.test_lifecycle import new_dirs, start_build, wait_for

    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "uv-cache"))
    wh = tmp_path / "wheelhouse"
    one = [make_wheel(wh, "a-pkg", "1.0", files={"a_pkg/__init__.py": "A = 1\n"}),
           make_wheel(wh, "b-pkg", "1.0")]
    two = make_wheel(wh, "b-pkg", "2.0")
    write(tmp_path / "runtime.txt", "".join(a.pin() + "\n" for a in one))
    base = "path: env\ninstaller: uv\nindex: {find_links: wheelhouse}\nrequirements: runtime.txt\n"
    spec_file = write(tmp_path / "env.yaml", base)
    old = build(load_spec(spec_file)).env_dir
    assert (old / HASHES_FILE).is_file()
    marker = tmp_path / "reached"
    slow = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    write(spec_file, base + f"final:\n  probes:\n    commands:\n      - [python, -c, {json.dumps(slow)}]\n")
    write(tmp_path / "runtime.txt", one[0].pin() + "\n" + two.pin() + "\n")
    proc = start_build(spec_file)
    wait_for(marker.exists, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    [killed] = new_dirs(tmp_path, old)
    assert not (killed / HASHES_FILE).exists()
    # The compile stage's stamps are only ever read from a finished previous environment.
    assert sorted(p.name for p in killed.glob(".pinfold-*")) == [".pinfold-build", ".pinfold-pyc-stamps"]
    write(spec_file, base)
    update = build(load_spec(spec_file))
    assert update.plan is not None and update.plan.mode == "update"
    assert not killed.exists() and (tmp_path / "env").resolve() == update.env_dir
    fresh = build(load_spec(spec_file), fresh=True)
    assert read_digest(update.env_dir) == read_digest(fresh.env_dir) is not None
    manifest = read_manifest(update.env_dir)
    assert manifest is not None and manifest.entries == scan(update.env_dir, manifest.tokens).entries
