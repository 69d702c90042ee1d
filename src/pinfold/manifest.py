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
environment (:data:`BOOKKEEPING`), and, in an environment built with ``compile: false``,
``__pycache__`` folders (Python writes them on first import). Standard library only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .paths import write_atomic
from .results import json_int, json_object, json_str

__all__ = [
    "BOOKKEEPING",
    "MANIFEST_FILE",
    "NOT_OWNED",
    "PYTHON_LINK",
    "PYVENV_INTERPRETER_KEYS",
    "Differences",
    "Entry",
    "Manifest",
    "Tokens",
    "compare",
    "digest",
    "read_manifest",
    "scan",
    "write_manifest",
]

#: The manifest's file name, beside the record (``pinfold.json``) in a finished environment.
MANIFEST_FILE = "pinfold-manifest.json"
#: Top-level files that are pinfold's bookkeeping, not the environment: the record (written
#: after the manifest, and rewritten by nothing but a build), the manifest itself, and the
#: marker naming the directory (:data:`pinfold.envdir.MARKER`). Excluded from the manifest.
#: (``.pinfold-build`` and ``.pinfold-pending`` are :data:`pinfold.envdir.MARKER` and ``PENDING``.)
BOOKKEEPING = frozenset({"pinfold.json", MANIFEST_FILE, ".pinfold-build", ".pinfold-pending",
                         ".pinfold-pyc-stamps"})
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

    def to_json(self) -> dict[str, Any]:
        """The manifest file's content."""
        return {"schema": SCHEMA, "digest": self.digest, "runtime_bytecode": self.runtime_bytecode,
                "normalised": [{"text": t, "token": k} for t, k in self.tokens.pairs],
                "files": {p: self.entries[p].to_json() for p in sorted(self.entries)}}

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


def _excluded(rel: str, runtime_bytecode: bool) -> bool:
    if rel in BOOKKEEPING:
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
_RECORD_LINE = re.compile(rb"^(.*),[^,\n]*,[^,\n]*$")
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
    if rel.endswith(".pyc"):
        return data[:8]  # magic number and flags: see the module docs
    if rel.endswith(".dist-info/RECORD"):
        lines = data.splitlines()
        data = b"\n".join(_RECORD_LINE.sub(rb"\1", line) for line in lines) + b"\n"
        return tokens.apply(data)
    if data.startswith(b"#!/bin/sh\n"):
        data = _TRAMPOLINE.sub(_shebang, data, count=1)
        return tokens.apply(data)
    if rel == "pyvenv.cfg":
        data = _PYVENV_LINE.sub(rb"\1<python>\3", data)
        return tokens.apply(_PYVENV_COMMAND.sub(rb"\1<tool-python>\3", data, count=1))
    if rel.endswith(".dist-info/uv_cache.json"):
        return tokens.apply(_UV_TIMESTAMP.sub(b'"timestamp":null', data))
    return tokens.apply(data) if tokens.needed(data) else None


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


def _hash_file(full: str, rel: str, tokens: Tokens, size: int = 0) -> tuple[str, str]:
    """(sha256 of the bytes, sha256 of their normalised form or "")."""
    data = _read(full, size)
    raw = hashlib.sha256(data).hexdigest()
    norm = _normalise(rel, data, tokens)
    return raw, "" if norm is None or norm == data else hashlib.sha256(norm).hexdigest()


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
         with_owners: bool = True) -> Manifest:
    """The manifest of the tree at ``env_dir`` as it is now."""
    tokens = tokens if tokens is not None else Tokens()
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
        raw, norm_hash = _hash_file(full, rel, tokens, info.st_size)
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
    doc = manifest.to_json()
    files = doc.pop("files")
    # One line per file, as json.dumps(indent=1) would nest it but with each entry on one
    # line: indent forces json's pure-Python encoder (3x slower on 16,000 files); the
    # entries go through the C one.
    one = json.JSONEncoder(sort_keys=True).encode
    rows = ",\n".join(f"  {one(path)}: {one(files[path])}" for path in files)
    parts = {key: one(value) for key, value in doc.items()}
    parts["files"] = f"{{\n{rows}\n }}" if rows else "{}"
    text = "{\n" + ",\n".join(f" {one(key)}: {parts[key]}" for key in sorted(parts)) + "\n}\n"
    write_atomic(env_dir / MANIFEST_FILE, text.encode("utf-8"))
    return str(doc["digest"])
