"""An environment's manifest: every file and symlink in it, and one digest over them all.

:func:`scan` walks a finished environment (relative POSIX path, size, sha256, mode, link
target, and the distribution whose ``RECORD`` lists the file); the build writes the result
beside the record as ``pinfold-manifest.json`` (:func:`write_manifest`), and ``pinfold
check`` compares the tree with it (:func:`compare`), naming every added, removed and
changed file grouped by its owner.

The **environment digest** (:func:`digest`) is one sha256 over the manifest, made so that
two builds of the same inputs give the same digest in any folder, on any day. The bytes
that depend on where and when a build ran are normalised, each one by an explicit rule
(README, "Environments on disk", lists them):

- the environment's own absolute path, its directory's name (virtualenv's prompt), the
  stable ``path``, the develop trees and the folder of env.yaml, wherever they occur in a
  file's bytes or a link's target, are replaced by fixed tokens (:class:`Tokens`);
- a script's shell trampoline (``#!/bin/sh``, then ``'''exec' <python> "$0" "$@"``: what
  pip and uv write instead of ``#!<python>`` when that path is longer than the kernel's
  shebang limit of 127 bytes) is read as the plain ``#!<python>`` line it stands for;
- the base interpreter's location, where virtualenv writes it: an absolute target of a
  ``bin/python*`` link reads as ``<python>``, and in ``pyvenv.cfg`` the values of ``home``,
  ``executable``, ``base-executable``, ``base-prefix`` and ``base-exec-prefix`` read as
  ``<python>`` (:data:`PYVENV_INTERPRETER_KEYS`), so ``pinfold unpack --python`` can point the
  environment at the same interpreter installed elsewhere and keep the digest. Only there:
  a global replacement of, say, ``/usr/bin`` would also rewrite unrelated bytes. The
  version lines (``version_info``, ``version``) are not normalised: they stay in the digest;
- ``pyvenv.cfg``'s ``command`` line: the interpreter that ran ``-m virtualenv`` (pinfold's
  own tool environment, a different folder in every checkout) reads as ``<tool-python>``;
- uv's ``*.dist-info/uv_cache.json``: its ``timestamp`` (the installed archive's mtime in
  nanoseconds: when the artifact was copied or downloaded) reads as null;
- ``RECORD`` files: the hash and size columns are dropped (the files they describe are in
  the digest themselves; a console script's hash covers its shebang, i.e. the path);
- ``.pyc`` files: only their path and the first 8 bytes of the header (magic number and
  flags: interpreter and checked-hash vs timestamp) count. The rest is the source's mtime
  (install time) or hash and the marshalled code, which embeds the absolute source path
  with its length and, for set constants, an order that depends on the build's hash seed;
  the source itself is in the digest;
- modes count by their executable bit only (the rest is the builder's umask).

The check itself compares the raw bytes (sha256) and the full mode: nothing is normalised
there. Excluded by rule, from both: pinfold's own bookkeeping files at the top of the
environment (:data:`BOOKKEEPING` and its temporary files, :func:`is_bookkeeping`), and, in
an environment built with ``compile: false``, ``__pycache__`` folders (Python writes them on
first import).

A build hashes each file once (:class:`HashMemo`): uv's RECORD check
(:func:`record_differences`) and the final scan share what they read, the compile stage
offers the sha256 of each ``.pyc`` it linked from the bytecode cache (:meth:`HashMemo.offer`),
and an update takes from the previous build's :data:`HASHES_FILE` the hashes of the files
its clone carried over unchanged. Standard library only.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .paths import write_atomic
from .results import json_int, json_object, json_str

__all__ = [
    "BOOKKEEPING",
    "HASHES_FILE",
    "MANIFEST_FILE",
    "NOT_OWNED",
    "PYTHON_LINK",
    "PYVENV_INTERPRETER_KEYS",
    "Differences",
    "Entry",
    "HashMemo",
    "Identity",
    "Manifest",
    "Tokens",
    "compare",
    "digest",
    "identity",
    "is_bookkeeping",
    "read_manifest",
    "record_differences",
    "scan",
    "write_manifest",
]

#: The manifest's file name, beside the record (``pinfold.json``) in a finished environment.
MANIFEST_FILE = "pinfold-manifest.json"
#: Beside the manifest: the identity (:func:`identity`) each file had when the build's scan
#: hashed it, so that the next update takes what it carries over unchanged from here
#: instead of reading it again (:class:`HashMemo`). Never packed, never compared.
HASHES_FILE = "pinfold-hashes.json"
#: Top-level files that are pinfold's bookkeeping, not the environment: the record (written
#: after the manifest, and rewritten by nothing but a build), the manifest itself, the
#: hashes beside it, and the marker naming the directory (:data:`pinfold.envdir.MARKER`).
#: Excluded from the manifest.
#: (``.pinfold-build`` and ``.pinfold-pending`` are :data:`pinfold.envdir.MARKER` and ``PENDING``.)
BOOKKEEPING = frozenset({"pinfold.json", MANIFEST_FILE, HASHES_FILE, ".pinfold-build",
                         ".pinfold-pending", ".pinfold-pyc-stamps"})
#: The group of files no ``RECORD`` lists.
NOT_OWNED = "not owned by any distribution"
#: The manifest file's layout version.
SCHEMA = 1

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Tokens:
    """The build-dependent strings the digest replaces by fixed tokens, longest first."""

    #: (absolute path or name, its token), as recorded in the manifest.
    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, env_dir: Path, *, path: Path | None = None, root: Path | None = None,
           develop: Iterable[Path] = ()) -> Tokens:
        """The tokens of an environment built at ``env_dir`` (``path`` its stable symlink,
        ``root`` the folder of env.yaml, ``develop`` its develop trees)."""
        pairs = [(str(env_dir), "<env>")]
        if path is not None:
            pairs += [(str(path) + ".d", "<path>.d"), (str(path), "<path>")]
        pairs += [(str(tree), f"<develop {n}>") for n, tree in enumerate(develop)]
        if root is not None:
            pairs.append((str(root), "<root>"))
        # The directory's bare name is virtualenv's prompt (pyvenv.cfg, activate scripts).
        pairs.append((env_dir.name, "<env-name>"))
        # Longest first: the environment's path contains the root's, and must win.
        unique = dict.fromkeys(p for p in pairs if len(p[0]) > 1)
        return cls(tuple(sorted(unique, key=lambda p: -len(p[0]))))

    def apply(self, data: bytes) -> bytes:
        """``data`` with every occurrence of each string replaced by its token."""
        for text, token in self.pairs:
            data = data.replace(os.fsencode(text), token.encode())
        return data

    def needed(self, data: bytes) -> bool:
        """Whether ``data`` holds any of the strings (most files do not: no second hash)."""
        return any(needle in data for needle in _needles(self.pairs))


@functools.lru_cache(maxsize=16)
def _needles(pairs: tuple[tuple[str, str], ...]) -> tuple[bytes, ...]:
    """The strings of ``pairs`` no other one contains: data holding none of them holds none at all.

    The environment's path contains env.yaml's folder and its own name, so this is usually
    two searches instead of five, over every byte of every file a build scans.
    """
    texts = list(dict.fromkeys(os.fsencode(text) for text, _ in pairs))
    return tuple(t for t in texts if not any(u != t and u in t for u in texts))




#: json's string quoting for ``ensure_ascii`` (its C function where there is one).
_quote = json.encoder.encode_basestring_ascii


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One file or symlink of an environment."""

    #: Relative POSIX path.
    path: str
    kind: Literal["file", "link"]
    #: Bytes (a link: the length of its target).
    size: int
    #: ``stat.S_IMODE`` (0o777 for a link).
    mode: int
    #: sha256 of the bytes, hex ("" for a link).
    sha256: str = ""
    #: A link's target, as stored.
    target: str = ""
    #: The sha256 the digest uses when normalising changed the bytes (see the module docs).
    normalised: str = ""
    #: The distribution whose RECORD lists it (``name version``), or "" for none.
    owner: str = ""

    def same(self, other: Entry) -> bool:
        """The same content and mode (the owner and digest form are not the file)."""
        return (self.kind, self.size, self.mode, self.sha256, self.target) == (
            other.kind, other.size, other.mode, other.sha256, other.target)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (without the path: the manifest's key)."""
        out: dict[str, Any] = {"kind": self.kind, "size": self.size, "mode": f"{self.mode:04o}"}
        if self.kind == "link":
            out["target"] = self.target
        else:
            out["sha256"] = self.sha256
        if self.normalised:
            out["normalised"] = self.normalised
        if self.owner:
            out["owner"] = self.owner
        return out

    def json_row(self) -> str:
        """``  "<path>": {<to_json(), keys sorted>}``: the manifest file's line for this entry,
        exactly as ``json.JSONEncoder(sort_keys=True)`` writes it (every string through json's
        own quoting), put together here because that is twice as fast on 16,000 entries.
        Keep it beside :meth:`to_json`: tests hold the two equal."""
        quote = _quote
        middle = f'"normalised": {quote(self.normalised)}, ' if self.normalised else ""
        if self.owner:
            middle += f'"owner": {quote(self.owner)}, '
        mode = f'"mode": "{self.mode:04o}"'  # an int's octal digits: nothing to escape
        if self.kind == "link":
            body = f'"kind": "link", {mode}, {middle}"size": {int(self.size)}, "target": {quote(self.target)}'
        else:
            body = f'"kind": "file", {mode}, {middle}"sha256": {quote(self.sha256)}, "size": {int(self.size)}'
        return f"  {quote(self.path)}: {{{body}}}"

    @classmethod
    def from_json(cls, path: str, data: object) -> Entry:
        """The inverse of :meth:`to_json`; raises ``KeyError``, ``TypeError`` or ``ValueError``."""
        data = json_object(data)
        kind = data["kind"]
        if kind not in ("file", "link"):
            raise ValueError(f"unknown entry kind {kind!r:.20}")
        return cls(path=path, kind=kind, size=json_int(data["size"]),
                   mode=int(json_str(data["mode"]), 8), sha256=json_str(data.get("sha256", "")),
                   target=json_str(data.get("target", "")),
                   normalised=json_str(data.get("normalised", "")),
                   owner=json_str(data.get("owner", "")))


@dataclass(frozen=True, kw_only=True, slots=True)
class Manifest:
    """Every file and symlink of an environment, and its digest."""

    entries: dict[str, Entry]
    tokens: Tokens = field(default_factory=Tokens)
    #: Built with ``compile: false``: ``__pycache__`` folders are Python's, not the build's.
    runtime_bytecode: bool = False

    @property
    def digest(self) -> str:
        """The environment digest (``sha256:<hex>``), see :func:`digest`."""
        return digest(self.entries.values())

    def to_json(self, *, files: bool = True) -> dict[str, Any]:
        """The manifest file's content (without ``files``: all of it but the entries)."""
        doc = {"schema": SCHEMA, "digest": self.digest, "runtime_bytecode": self.runtime_bytecode,
               "normalised": [{"text": t, "token": k} for t, k in self.tokens.pairs]}
        if files:
            doc["files"] = {p: self.entries[p].to_json() for p in sorted(self.entries)}
        return doc

    @classmethod
    def from_json(cls, data: object) -> Manifest:
        """The inverse of :meth:`to_json`; raises ``KeyError``, ``TypeError`` or ``ValueError``."""
        data = json_object(data)
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unknown manifest schema {data.get('schema')!r:.20}")
        pairs = tuple((json_str(json_object(p)["text"]), json_str(json_object(p)["token"]))
                      for p in data["normalised"])
        files = json_object(data["files"])
        return cls(entries={json_str(p): Entry.from_json(p, e) for p, e in files.items()},
                   tokens=Tokens(pairs), runtime_bytecode=bool(data.get("runtime_bytecode", False)))


def is_bookkeeping(name: str) -> bool:
    """Whether the top-level ``name`` is pinfold's: :data:`BOOKKEEPING`, or one of its
    temporary files (``.pinfold-*.tmp``: an atomic write or a clock reading cut short by a
    kill, e.g. of :data:`HASHES_FILE`, which is written into the finished environment)."""
    return name in BOOKKEEPING or (name.startswith(".pinfold-") and name.endswith(".tmp"))


def _excluded(rel: str, runtime_bytecode: bool) -> bool:
    if "/" not in rel and is_bookkeeping(rel):
        return True
    return runtime_bytecode and ("/__pycache__/" in f"/{rel}")


def _walk(env_dir: Path, runtime_bytecode: bool) -> Iterator[tuple[str, str, os.stat_result]]:
    """Every file and symlink under ``env_dir`` (links not followed): relative path, full path
    and ``lstat``, sorted by name in each folder, a folder's files before its subfolders.

    os.scandir and plain strings (no os.walk, whose symlink checks cost a second stat): a
    build scans every file of its environment. Unreadable folders are skipped, as os.walk does.
    """
    stack = [(str(env_dir), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):  # a symlinked folder is an entry, not a tree
                if not (runtime_bytecode and entry.name == "__pycache__"):
                    subfolders.append((entry.path, f"{prefix}{entry.name}/"))
                continue
            rel = prefix + entry.name
            if _excluded(rel, runtime_bytecode):
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
                yield rel, entry.path, info
        stack.extend(reversed(subfolders))  # popped in name order


#: The ``pyvenv.cfg`` keys whose values name the base interpreter, its folder or its prefixes
#: (virtualenv writes all five, ``python -m venv`` the first two).
PYVENV_INTERPRETER_KEYS = ("home", "executable", "base-executable", "base-prefix", "base-exec-prefix")
_PYVENV_LINE = re.compile(rb"^([ \t]*(?:" + b"|".join(k.encode() for k in PYVENV_INTERPRETER_KEYS)
                          + rb")[ \t]*=[ \t]*)(.*?)([ \t\r]*)$", re.MULTILINE)
_PYVENV_COMMAND = re.compile(rb"^([ \t]*command[ \t]*=[ \t]*)(.+?)( -m )", re.MULTILINE)
#: A virtualenv's links to its interpreter (``bin/python3 -> python`` is relative: not normalised).
PYTHON_LINK = re.compile(r"bin/python[0-9.]*")
#: A RECORD line's path and its two last fields; MULTILINE, over the lines joined by "\n"
#: (one pass over the file: the 120 RECORD files of the medium environment in 35 ms, 57 line by line).
_RECORD_LINE = re.compile(rb"^(.*),[^,\n]*,[^,\n]*$", re.MULTILINE)
#: The long-path trampoline of pip's and uv's scripts (distlib's form): its python is group 1.
_TRAMPOLINE = re.compile(rb"""\A#!/bin/sh\n'''exec' (.+?) "\$0" "\$@"\n' '''\n""")
#: The build-time field of uv's cache record of an installed distribution.
_UV_TIMESTAMP = re.compile(rb'"timestamp":\{[^{}]*\}')


def _shebang(match: re.Match[bytes]) -> bytes:
    python = match.group(1)
    if len(python) > 1 and python[:1] == python[-1:] == b"'":  # uv quotes it, pip does not
        python = python[1:-1]
    return b"#!" + python + b"\n"


def _normalise(rel: str, data: bytes, tokens: Tokens) -> bytes | None:
    """The bytes the digest hashes for file ``rel``, or None when they are the bytes themselves."""
    special = _by_kind(rel, data, tokens)
    if special is not None:
        return special
    return tokens.apply(data) if tokens.needed(data) else None


def _by_kind(rel: str, data: bytes, tokens: Tokens) -> bytes | None:
    """The bytes the digest hashes by the rule of the file's kind, or None for a plain file
    (only the tokens apply to it)."""
    if rel.endswith(".pyc"):
        return data[:8]  # magic number and flags: see the module docs
    if rel.endswith(".dist-info/RECORD"):
        # Each line without its last two fields (sizes and hashes a rebuild may change), the
        # line ends made "\n"; no line holds "\r" or "\n" then, so "^" and "$" are its ends.
        data = _RECORD_LINE.sub(rb"\1", b"\n".join(data.splitlines())) + b"\n"
        return tokens.apply(data)
    if data.startswith(b"#!/bin/sh\n"):
        data = _TRAMPOLINE.sub(_shebang, data, count=1)
        return tokens.apply(data)
    if rel == "pyvenv.cfg":
        data = _PYVENV_LINE.sub(rb"\1<python>\3", data)
        return tokens.apply(_PYVENV_COMMAND.sub(rb"\1<tool-python>\3", data, count=1))
    if rel.endswith(".dist-info/uv_cache.json"):
        return tokens.apply(_UV_TIMESTAMP.sub(b'"timestamp":null', data))
    return None


def _read(full: str, size: int) -> bytes:
    """All the bytes of the file at ``full`` (``size`` from its stat: usually one read)."""
    fd = os.open(full, os.O_RDONLY)
    try:
        # os.read straight into one bytes object: no buffered reader per file (16,000+ files).
        chunks = [os.read(fd, size + 1)]
        while chunks[-1]:  # until end of file, should it have grown since the stat
            chunks.append(os.read(fd, 1 << 20))
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 2 else b"".join(chunks)


class ReadAhead:
    """Reads files in the order given and, once they prove to come from the disk rather than
    the page cache, has a thread queue the reads of the rest with the kernel ahead of them
    (``posix_fadvise(WILLNEED)``: nothing is read into this process).

    A check that reads thousands of small files one after the other waits for the disk once
    per file when they are not in the page cache (a machine that reclaims it). Measured here,
    reading and hashing a 310 MB environment's 16,700 files: 3.3-3.6 s cold, 0.9 s with the
    reads queued ahead, 0.6 s from the page cache. From the page cache, that thread would
    cost a third more (its system calls and this one's trade the interpreter lock), so it
    starts only when the first :data:`PROBE` reads took more than :data:`COLD_NS` each on
    average, less a nanosecond per byte read (copying from the page cache runs at a few GB/s:
    one large file alone must not look like a disk). The thread queues the paths after the
    one just read. Only regular files are opened (a FIFO or a device could block or act on
    open). Where no thread can be started, the reads are only not queued.
    """

    #: Reads timed before deciding; the mean time of one above which they came from the disk.
    PROBE = 32
    COLD_NS = 60_000

    def __init__(self, paths: list[str]) -> None:
        self._paths = paths
        self._done = 0
        self._spent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self, full: str, size: int) -> bytes:
        """The bytes of ``full`` (see :func:`_read`), the next path of the list or another."""
        if self._done >= self.PROBE:
            return _read(full, size)
        start = time.perf_counter_ns()
        data = _read(full, size)
        self._spent += max(0, time.perf_counter_ns() - start - len(data))
        self._done += 1
        if (self._done == self.PROBE and self._spent > self.COLD_NS * self.PROBE
                and hasattr(os, "posix_fadvise")):
            try:
                rest = self._paths[self._paths.index(full) + 1:]
            except ValueError:
                rest = self._paths
            thread = threading.Thread(target=self._queue, args=(rest,), name="pinfold-read-ahead",
                                      daemon=True)
            try:
                thread.start()
                self._thread = thread
            except RuntimeError:  # no thread to be had (a process limit): reads as they come
                pass
        return data

    @property
    def queuing(self) -> bool:
        """Whether the reads proved slow and the thread was started."""
        return self._thread is not None

    def _queue(self, paths: list[str]) -> None:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        for path in paths:
            if self._stop.is_set():
                return
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
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

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _hash_file(full: str, rel: str, tokens: Tokens, size: int = 0) -> tuple[str, str]:
    """(sha256 of the bytes, sha256 of their normalised form or "")."""
    raw, norm, _ = _hash_data(rel, _read(full, size), tokens, _needles(tokens.pairs))
    return raw, norm


#: How a memo's normalised hash depends on the tokens (:class:`HashMemo`): computed for
#: these tokens only; for any tokens (a ``.pyc``: its first 8 bytes); or a plain file whose
#: bytes hold none of the strings searched (``""`` for any tokens whose strings each hold one).
_THESE, _ANY, _CLEAN = 0, 1, 2


def _hash_data(rel: str, data: bytes, tokens: Tokens, searched: tuple[bytes, ...]) -> tuple[str, str, int]:
    """(sha256 of ``data``, sha256 of its normalised form or "", how that depends on the tokens).

    ``searched`` must hold, for each of the tokens' strings, a part of it: bytes that hold
    none of ``searched`` hold none of the tokens' strings.
    """
    raw = hashlib.sha256(data).hexdigest()
    special = _by_kind(rel, data, tokens)
    if special is not None:
        norm = "" if special == data else hashlib.sha256(special).hexdigest()
        return raw, norm, _ANY if rel.endswith(".pyc") else _THESE
    if not any(needle in data for needle in searched):
        return raw, "", _CLEAN
    plain = tokens.apply(data) if tokens.needed(data) else data
    return raw, "" if plain == data else hashlib.sha256(plain).hexdigest(), _THESE


#: A file's identity (:func:`identity`): while it holds, the bytes are the ones hashed.
Identity = tuple[int, int, int, int, int]


def identity(info: os.stat_result) -> Identity:
    """(device, inode, size, mtime, ctime) of an ``lstat``: every write, truncation, chmod,
    replacement or new hard link changes it (the ctime: ``os.utime`` cannot set it back)."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _fs_clock(folder: Path) -> int:
    """The file system's time now: the ctime of a file made (and removed) in ``folder``.

    A change made after this call gets a ctime no smaller than it (the clock of the file
    system, not this process's, which may differ: NFS, coarse timestamps). So a file whose
    ctime is strictly older than it, and whose identity is unchanged later, was not changed
    since the call: git's "racily clean" rule.
    """
    tmp = os.path.join(folder, f".pinfold-clock.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        return os.fstat(fd).st_ctime_ns
    finally:
        os.close(fd)
        os.unlink(tmp)


def _fs_clock_past(folder: Path, moment: int | None) -> int:
    """The file system's clock (:func:`_fs_clock`), past ``moment`` if it gets there within
    50 ms; None: past the clock at the call, so that every change finished before the call
    has an older ctime.

    File system timestamps are coarse: a file written just before the call and the file
    the clock reads are often given the same time (measured here: every time, on a kernel
    with multigrain timestamps), and such a file could not be kept. The tick ends soon
    (here well under a millisecond); a clock that never moves gives its one answer, which
    is only more careful.
    """
    since = _fs_clock(folder)
    if moment is None:
        moment = since
    deadline = time.monotonic() + 0.05
    while since <= moment:
        # The deadline is looked at before a reading, never after it: a process paused past
        # the deadline still takes one more, which a tick ended meanwhile then shows.
        late = time.monotonic() >= deadline
        time.sleep(0.0005)
        since = _fs_clock(folder)
        if late:
            break
    return since


# A memo's record of one file: identity, hard-link count, sha256, normalised hash (None:
# not known for these tokens), how the normalised hash depends on the tokens.
_Known = tuple[Identity, int, str, "str | None", int]


class HashMemo:
    """One build's hashes of its files, so that no byte is hashed twice, nor a file an update
    carried over unchanged hashed again.

    Relative path -> the file's :func:`identity` when it was read and what reading it found.
    A record of a file read here is kept only when the file's ctime is strictly older than
    the file system's clock taken before the ``lstat`` (:func:`_fs_clock`): a change in the
    same clock tick as the read would otherwise leave the identity as it was. Records of
    files linked just now (the clone's, :meth:`settle`; the compile stage's, :meth:`offer`)
    carry the identity right after the link and are kept once the clock has moved past its
    ctime. A lookup answers only while the identity is the same. The normalised hash is
    kept only when it holds for this build's tokens (see :meth:`inherit`). The scan saves
    what it found beside the manifest (:data:`HASHES_FILE`); an update's clone reads it back
    (:meth:`inherit`, :meth:`adopt`).
    """

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        # Besides the tokens' strings: the first 4 characters of the directory's name (its
        # year). The next build's directory name starts with them too (within the year), so a
        # file found free of them here is free of that name as well: see inherit().
        name = next((text for text, fixed in tokens.pairs if fixed == "<env-name>"), "")
        texts = [text for text, _ in tokens.pairs] + ([name[:4]] if len(name) >= 4 else [])
        self.searched: tuple[bytes, ...] = _needles(tuple((t, "") for t in texts))
        self._known: dict[str, _Known] = {}
        self._adopted: list[tuple[str, _Known]] = []
        # What settle() kept of the clone's files: path -> identity right after the link.
        self._carried: dict[str, Identity] = {}
        self._cleanup = (0, 0)  # inherit(): the recording build's cleanup, on its clock
        #: Relative paths of the files read (in order), and how many lookups were answered.
        self.read: list[str] = []
        self.reused = 0

    def knows(self, rel: str) -> bool:
        """Whether there is a record of ``rel`` (with whatever identity)."""
        return rel in self._known

    def lookup(self, rel: str, info: os.stat_result, *, normalised: bool = True) -> tuple[str, str] | None:
        """(sha256, normalised hash) recorded for ``rel`` with this identity, or None."""
        known = self._known.get(rel)
        if known is None or known[0] != identity(info) or (normalised and known[3] is None):
            return None
        self.reused += 1
        return known[2], known[3] or ""

    def hash(self, rel: str, full: str, info: os.stat_result, since: int) -> tuple[str, str]:
        """Read the file (``info`` its ``lstat`` taken after the clock ``since``), hash it, and
        keep the result while the file is unchanged."""
        raw, norm, free = _hash_data(rel, _read(full, info.st_size), self.tokens, self.searched)
        self.read.append(rel)
        self.put(rel, info, raw, norm, free, since)
        return raw, norm

    def put(self, rel: str, info: os.stat_result, raw: str, norm: str | None, free: int, since: int) -> None:
        """Keep what reading ``rel`` found (``info`` its ``lstat`` before the read, taken after
        the file system clock ``since``); a file changed in that clock tick is not kept."""
        if info.st_ctime_ns < since:
            self._known[rel] = (identity(info), info.st_nlink, raw, norm, free)
        else:
            self._known.pop(rel, None)

    def clock(self, folder: Path) -> int:
        """The file system's clock, past every change finished before the call (see
        :func:`_fs_clock_past`), for :meth:`hash` and :meth:`put`."""
        return _fs_clock_past(folder, None)

    # -- across an update ----------------------------------------------------------------

    def inherit(self, src: Path) -> dict[str, _Known]:
        """What the build of the finished environment ``src`` recorded (its :data:`HASHES_FILE`),
        with each normalised hash kept only where it holds for this memo's tokens; {} when
        there is none or it is not ``src``'s own.

        Raw hashes never depend on the tokens. A ``.pyc``'s normalised hash neither. A plain
        file found free of every string ``src``'s build searched has ``""`` here too when each
        string this build searches holds one of those (this build's directory is in the same
        ``<path>.d``, its name starts with the same year; the stable path, the folder of
        env.yaml and the develop trees are checked, not assumed): it then holds none of this
        build's tokens. Every other normalised hash is read again.
        """
        try:
            doc = json_object(json.loads((src / HASHES_FILE).read_bytes()))
            if doc.get("schema") != SCHEMA:
                return {}
            here = os.stat(src)
            if doc.get("dir") != [here.st_dev, here.st_ino]:  # a copy: not this directory's
                return {}
            since, until = doc["cleanup"]
            if not (type(since) is int and type(until) is int):
                return {}
            self._cleanup = (since, until)
            old = tuple(os.fsencode(json_str(s)) for s in doc["searched"])
            covered = all(any(o in s for o in old) for s in self.searched)
            out: dict[str, _Known] = {}
            for rel, row in json_object(doc["files"]).items():
                dev, ino, size, mtime, ctime, nlink, raw, norm, free = row
                # What is only compared for equality needs no check: another type never equals.
                if not (type(nlink) is int and type(raw) is str and (norm is None or type(norm) is str)
                        and free in (_THESE, _ANY, _CLEAN)):
                    return {}  # not what save() writes: trust none of it
                if (free == _CLEAN and not covered) or free == _THESE:
                    norm, free = None, _THESE
                out[rel] = ((dev, ino, size, mtime, ctime), nlink, raw, norm, free)
            return out
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def unchanged(self, known: _Known, info: os.stat_result) -> bool:
        """Whether the file ``known`` (from :meth:`inherit`) describes, ``info`` its ``lstat``
        now, still holds the bytes it had: the same identity, or the same but for a ctime
        within the cleanup of the build that recorded it, with fewer hard links than then.

        That cleanup removed older environments (or an older spare of one, see
        :meth:`pinfold.envdir.Environments.cleanup`), whose names of these inodes changed their
        ctimes (nothing can tell that apart from a write in the same moment that also set
        the mtime back: the one window, as long as that cleanup, where a change is missed).
        """
        now = identity(info)
        if now == known[0]:
            return True
        since, until = self._cleanup
        return now[:4] == known[0][:4] and info.st_nlink < known[1] and since <= now[4] < until

    def adopt(self, rel: str, known: _Known, info: os.stat_result) -> None:
        """A file the clone hard-linked: ``known`` (from :meth:`inherit`) held for the source
        just before the link (its identity was checked), ``info`` is the new link's ``lstat``
        (the link changed the ctime). Kept once :meth:`settle` has the clock after the clone."""
        if identity(info)[:4] == known[0][:4]:
            self._adopted.append((rel, (identity(info), info.st_nlink, known[2], known[3], known[4])))

    def forget_adopted(self) -> None:
        """Drop what :meth:`adopt` holds (a clone that starts over)."""
        self._adopted.clear()

    def settle(self, folder: Path) -> int:
        """Keep the adopted records whose new ctime is older than the file system's clock now
        (the clone is done): a later change gives a newer one. Returns how many were kept."""
        # The clone's last links and the clock often share one coarse tick, and those files
        # would be hashed again (measured here: up to 12% of 2,000 links): wait for it to end.
        newest = max((known[0][4] for _, known in self._adopted), default=None)
        since = _fs_clock_past(folder, newest) if newest is not None else _fs_clock(folder)
        kept = 0
        for rel, known in self._adopted:
            if known[0][4] < since:
                self._known[rel] = known
                self._carried[rel] = known[0]
                kept += 1
        self._adopted.clear()
        return kept

    def offer(self, folder: Path, found: Iterable[tuple[str, Identity, int, str, str]]) -> int:
        """Records of ``.pyc`` files another process of this build read and hashed, then
        linked into ``folder``: (relative path, identity and hard links by an ``lstat`` right
        after the link, sha256, normalised hash). As :meth:`settle` does for the clone's, only
        those whose ctime is older than the file system's clock now are kept (a later change
        gives a newer one); the scan then reads a file only if its identity changed.
        Returns how many were kept."""
        rows = list(found)
        newest = max((row[1][4] for row in rows), default=None)
        if newest is None:
            return 0
        since = _fs_clock_past(folder, newest)
        kept = 0
        for rel, ident, nlink, raw, norm in rows:
            if ident[4] < since and rel.endswith(".pyc"):
                self._known[rel] = (ident, nlink, raw, norm, _ANY)
                kept += 1
        return kept

    def carried(self, rel: str, info: os.stat_result) -> bool:
        """Whether ``rel`` (``info`` its ``lstat`` now) is a file the clone carried over, proven
        unchanged since the previous build's scan, and unchanged since the clone too."""
        return self._carried.get(rel) == identity(info)

    def save(self, env_dir: Path, rels: Iterable[str], *, since: int) -> None:
        """Write :data:`HASHES_FILE` into ``env_dir``: the records of ``rels`` (what its scan
        found), and the file system clock before (``since``) and now, after the build's
        cleanup, which may have removed older environments (or a spare) sharing these files' inodes (a
        removed hard link changes the ctime too; see :meth:`unchanged`)."""
        files: dict[str, list[object]] = {}
        for rel in rels:
            known = self._known.get(rel)
            if known is not None:
                files[rel] = [*known[0], known[1], known[2], known[3], known[4]]
        here = os.stat(env_dir)
        until = _fs_clock_past(env_dir, None)  # the cleanup's last removals are inside the window
        doc = {"schema": SCHEMA, "dir": [here.st_dev, here.st_ino], "cleanup": [since, until],
               "searched": [os.fsdecode(s) for s in self.searched], "files": files}
        write_atomic(env_dir / HASHES_FILE, json.dumps(doc, separators=(",", ":")).encode())


def _record_rows(site: str) -> list[tuple[str, str]]:
    """(path, urlsafe-base64 sha256) of every file a ``RECORD`` in ``site`` lists with a sha256."""
    out = []
    for name in sorted(os.listdir(site)):
        record = os.path.join(site, name, "RECORD")
        if not name.endswith(".dist-info") or not os.path.isfile(record):
            continue
        with open(record, newline="", encoding="utf-8", errors="replace") as fh:
            for row in csv.reader(fh):
                if len(row) < 2 or not row[1].startswith("sha256=") or row[0].startswith(("../", "/")):
                    continue
                out.append((os.path.normpath(os.path.join(site, row[0])), row[1][len("sha256="):]))
    return out


def record_differences(site: Path, env_dir: Path, memo: HashMemo | None = None, *,
                       only: Callable[[str], bool] | None = None) -> tuple[int, list[tuple[str, str]]]:
    """Check every file the ``RECORD`` files of ``site`` (inside ``env_dir``) list against its
    sha256 there: (how many files were checked, (path, what differs) sorted by path).

    With ``memo``, a file whose identity it recorded is not read again, and what is read is
    recorded (with its normalised hash: the final scan takes it). With ``only``, just the
    files whose path relative to ``site`` (``/``-separated) it accepts.
    """
    rows = _record_rows(str(site))
    if only is not None:
        inside = os.path.join(str(site), "")
        rows = [row for row in rows
                if only((row[0][len(inside):] if row[0].startswith(inside) else row[0]).replace(os.sep, "/"))]
    base = str(env_dir) + os.sep
    since = memo.clock(env_dir) if memo is not None else 0
    tokens = memo.tokens if memo is not None else Tokens()
    searched = memo.searched if memo is not None else ()

    def one(row: tuple[str, str]) -> tuple[str, str, os.stat_result | None, str, str | None, int]:
        """(path, error, lstat, sha256, normalised, free) of one row, read if need be."""
        full, _ = row
        rel = full[len(base):] if full.startswith(base) else ""
        try:
            info = os.lstat(full)
            if memo is not None and rel and (known := memo.lookup(rel, info, normalised=False)):
                return full, "", None, known[0], None, 0
            mode = os.stat(full).st_mode if stat.S_ISLNK(info.st_mode) else info.st_mode
            if not stat.S_ISREG(mode):
                # A FIFO (or a link to one) would block the read for ever; a device is not
                # what a wheel installs. (Replaced between this stat and the read: not guarded.)
                return full, "it is not a regular file", None, "", None, 0
            data = ahead.read(full, info.st_size)
        except OSError as exc:
            return full, f"cannot read it ({exc.strerror})", None, "", None, 0
        if memo is None or not rel or not stat.S_ISREG(info.st_mode):
            return full, "", None, hashlib.sha256(data).hexdigest(), None, 0
        raw, norm, free = _hash_data(rel, data, tokens, searched)
        return full, "", info, raw, norm, free

    # One thread: most files are small, and a pool of two (hashlib and os.read release the
    # interpreter lock) measured twice as slow as one for site-packages's 9,400 files.
    unknown = [full for full, _ in rows if memo is None or not memo.knows(full[len(base):])]
    with ReadAhead(unknown) as ahead:
        results = [one(row) for row in rows]
    bad = []
    for (full, want), (_, error, info, raw, norm, free) in zip(rows, results, strict=True):
        if error:
            bad.append((full, error))
            continue
        if info is not None and memo is not None:
            memo.read.append(full[len(base):])
            memo.put(full[len(base):], info, raw, norm, free, since)
        if base64.urlsafe_b64encode(bytes.fromhex(raw)).rstrip(b"=").decode() != want:
            bad.append((full, "its sha256 differs from the RECORD of its wheel"))
    return len(rows), sorted(bad)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def owners(env_dir: Path) -> dict[str, str]:
    """Relative path -> ``name version`` of the distribution whose ``RECORD`` lists it."""
    out: dict[str, str] = {}
    for record in sorted(env_dir.glob("lib*/python*/site-packages/*.dist-info/RECORD")):
        dist_info = record.parent
        name, _, version = dist_info.name[: -len(".dist-info")].partition("-")
        owner = f"{_canonical(name)} {version}".strip()
        site = dist_info.parent.relative_to(env_dir).as_posix()
        try:
            text = record.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            # RECORD is CSV; a path with a comma is quoted. The path is all but the last two fields.
            entry = line.rsplit(",", 2)[0].strip('"') if line.count(",") >= 2 else line
            if not entry:
                continue
            rel = os.path.normpath(os.path.join(site, entry)).replace(os.sep, "/")
            if not rel.startswith("../"):
                out.setdefault(rel, owner)
    return out


def scan(env_dir: Path, tokens: Tokens | None = None, *, runtime_bytecode: bool = False,
         with_owners: bool = True, memo: HashMemo | None = None) -> Manifest:
    """The manifest of the tree at ``env_dir`` as it is now.

    With ``memo`` (a build's, made for the same tokens), a file whose identity is the one
    the memo recorded is not read again, and what is read is recorded.
    """
    tokens = memo.tokens if memo is not None else tokens if tokens is not None else Tokens()
    since = memo.clock(env_dir) if memo is not None else 0
    owned = owners(env_dir) if with_owners else {}
    entries: dict[str, Entry] = {}
    for rel, full, info in _walk(env_dir, runtime_bytecode):
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(full)
            # The base interpreter's location (module docs): `pinfold unpack --python` moves it.
            interpreter = PYTHON_LINK.fullmatch(rel) is not None and os.path.isabs(target)
            norm = b"<python>" if interpreter else tokens.apply(os.fsencode(target))
            entries[rel] = Entry(path=rel, kind="link", size=len(os.fsencode(target)), mode=0o777,
                                 target=target, owner=owned.get(rel, ""),
                                 normalised="" if norm == os.fsencode(target)
                                 else hashlib.sha256(norm).hexdigest())
            continue
        if memo is None:
            raw, norm_hash = _hash_file(full, rel, tokens, info.st_size)
        else:
            raw, norm_hash = memo.lookup(rel, info) or memo.hash(rel, full, info, since)
        entries[rel] = Entry(path=rel, kind="file", size=info.st_size, mode=stat.S_IMODE(info.st_mode),
                             sha256=raw, normalised=norm_hash, owner=owned.get(rel, ""))
    return Manifest(entries=entries, tokens=tokens, runtime_bytecode=runtime_bytecode)


def digest(entries: Iterable[Entry]) -> str:
    """One sha256 over every entry's path, kind, executable bit and (normalised) content.

    Sizes are not hashed apart (the content hash covers them, and a normalised file's size
    is the builder's); nor are owners (RECORD files are in the digest).
    """
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.path):
        if e.kind == "link":
            content = e.normalised or hashlib.sha256(os.fsencode(e.target)).hexdigest()
        else:
            content = e.normalised or e.sha256
        x = "x" if e.kind == "file" and e.mode & 0o111 else "-"
        h.update(f"{e.kind} {x} {content} {e.path}\n".encode())
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class Differences:
    """What differs between a manifest and the tree: relative paths, each with its owner."""

    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def by_owner(self) -> dict[str, list[tuple[str, str]]]:
        """Owner -> sorted (``added``/``removed``/``changed``, path); owners sorted, the
        files no distribution owns last."""
        groups: dict[str, list[tuple[str, str]]] = {}
        for what, found in (("added", self.added), ("removed", self.removed), ("changed", self.changed)):
            for path, owner in found.items():
                groups.setdefault(owner or NOT_OWNED, []).append((what, path))
        order = sorted(groups, key=lambda o: (o == NOT_OWNED, o))
        return {o: sorted(groups[o], key=lambda w: (w[1], w[0])) for o in order}

    def lines(self) -> list[str]:
        """One line per file, under one line per owner."""
        out: list[str] = []
        for owner, files in self.by_owner().items():
            out.append(f"{owner}:")
            out += [f"  {what} {path}" for what, path in files]
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"added": dict(sorted(self.added.items())), "removed": dict(sorted(self.removed.items())),
                "changed": dict(sorted(self.changed.items()))}


def compare(recorded: Manifest, env_dir: Path) -> Differences:
    """The tree at ``env_dir`` against ``recorded``: raw bytes and full modes, nothing normalised.

    A file's owner is the one recorded; a file the manifest does not know gets the owner
    its distribution's ``RECORD`` now names (a stray ``pip install`` brings its own).
    """
    now = scan(env_dir, recorded.tokens, runtime_bytecode=recorded.runtime_bytecode,
               with_owners=False)
    old, new = recorded.entries, now.entries
    stray: Mapping[str, str] = owners(env_dir) if set(new) - set(old) else {}
    return Differences(
        added={p: stray.get(p, "") for p in new if p not in old},
        removed={p: old[p].owner for p in old if p not in new},
        changed={p: old[p].owner for p in old if p in new and not old[p].same(new[p])},
    )


def read_manifest(env_dir: Path) -> Manifest | None:
    """The manifest recorded in ``env_dir``, or None (none, unreadable, or of an older pinfold)."""
    try:
        return Manifest.from_json(json.loads((env_dir / MANIFEST_FILE).read_bytes()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_manifest(env_dir: Path, manifest: Manifest) -> str:
    """Write ``manifest`` into ``env_dir`` atomically (before the record, which finishes it);
    return its digest (computed once: it sorts and hashes every entry)."""
    doc = manifest.to_json(files=False)
    # One line per file, as json.dumps(indent=1) would nest it but with each entry on one
    # line: indent forces json's pure-Python encoder (3x slower on 16,000 files), and so
    # each row is put together by Entry.json_row rather than encoded as a dict (twice as slow).
    one = json.JSONEncoder(sort_keys=True).encode
    entries = manifest.entries
    rows = ",\n".join(entries[path].json_row() for path in sorted(entries))
    parts = {key: one(value) for key, value in doc.items()}
    parts["files"] = f"{{\n{rows}\n }}" if rows else "{}"
    text = "{\n" + ",\n".join(f" {one(key)}: {parts[key]}" for key in sorted(parts)) + "\n}\n"
    write_atomic(env_dir / MANIFEST_FILE, text.encode("utf-8"))
    return str(doc["digest"])
