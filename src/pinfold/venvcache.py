"""The empty virtualenv, made once per interpreter and then written from pinfold's cache.

``virtualenv --no-seed`` takes 0.2-0.3 s (its own imports, plug-in discovery, the
interpreter's inspection) to write a dozen small text files and three links. Its output is
a pure function of the target interpreter (its version and its files' identities), the
versions of virtualenv and of what it uses, the interpreter running it (``pyvenv.cfg``'s
``command`` line), the umask and the destination's path (in
``pyvenv.cfg`` and the ``activate*`` scripts, as the path and as the folder's bare name:
virtualenv's prompt). So the create stage keeps what virtualenv wrote as a *template*
(``<cache_root>/venv/<key>.json``) and writes later environments from it, the path and
the name replaced, as an update's clone already relocates the same files.

A template is used only once it has been *proven* relocatable: the build that finds an
unproven one runs virtualenv as usual and compares its output, byte for byte, link for
link, mode for mode, with the template relocated to the same path; equal, the template is
marked proven; different, it is marked never to be used (virtualenv then always runs for
that key). And only between paths made of characters no activator quotes or escapes
(``[A-Za-z0-9_./-]``): for those, each shell's quoting leaves the path as it is, so a
textual replacement is what virtualenv would have written. Anything unexpected (a
template that cannot be read, a file that is not text, a path outside that set) only means
virtualenv runs; the cache never fails a build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from .paths import umask, write_atomic
from .pyccache import cache_root

__all__ = [
    "TEMPLATE_SCHEMA",
    "Snapshot",
    "keep_template",
    "relocated",
    "snapshot",
    "template_key",
    "template_path",
    "written_from_template",
]

#: The layout of a template file.
TEMPLATE_SCHEMA = 1
#: A path that every activator writes as it is (no quoting, no escapes).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./-]+")
#: A folder name as :meth:`pinfold.envdir.Environments.new_dir` makes it: long enough that it
#: names nothing but the folder (the prompt is replaced in ``activate*`` only).
_MIN_NAME = 20

#: One entry of a tree: ``("d", mode, "")``, ``("f", mode, text)`` or ``("l", 0, target)``.
Entry = tuple[str, int, str]
#: A tree by relative path (``/``-separated), pinfold's own files left out.
Snapshot = dict[str, Entry]


def template_key(python: str, identity: str, tools: str) -> str:
    """What virtualenv's output depends on besides the destination, as one digest: the
    target interpreter (``python`` and ``identity``: its version and the identities of its
    files), the virtualenv that writes it and what that uses (``tools``: their versions),
    the interpreter running it (``pyvenv.cfg``'s ``command``) and the umask (the modes)."""
    parts = [str(TEMPLATE_SCHEMA), sys.executable, python, identity, tools, oct(umask())]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def template_path(key: str) -> Path:
    """Where the template of ``key`` lives: ``<cache_root>/venv/<key>.json``."""
    return cache_root() / "venv" / f"{key}.json"


def snapshot(env_dir: Path, skip: frozenset[str]) -> Snapshot | None:
    """The tree at ``env_dir`` (top-level names in ``skip`` left out), or None when it holds
    anything a template cannot (a file that is not UTF-8 text, a FIFO...)."""
    out: Snapshot = {}
    stack = [(str(env_dir), "")]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if not rel and entry.name in skip:
                continue
            name = f"{rel}{entry.name}"
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                out[name] = ("l", 0, os.readlink(entry.path))
            elif stat.S_ISDIR(info.st_mode):
                out[name] = ("d", stat.S_IMODE(info.st_mode), "")
                stack.append((entry.path, f"{name}/"))
            elif stat.S_ISREG(info.st_mode):
                try:
                    text = Path(entry.path).read_bytes().decode("utf-8")
                except UnicodeDecodeError:
                    return None
                out[name] = ("f", stat.S_IMODE(info.st_mode), text)
            else:
                return None
    return out


def relocated(tree: Snapshot, old: str, new: str) -> Snapshot:
    """``tree``, made at ``old``, as virtualenv would have made it at ``new``: the path
    replaced in files and link targets, the folder's bare name in the ``activate*`` scripts."""
    old_name, new_name = os.path.basename(old), os.path.basename(new)
    out: Snapshot = {}
    for rel, (kind, mode, text) in tree.items():
        if kind == "f":
            text = text.replace(old, new)
            if os.path.basename(rel).startswith("activate"):
                text = text.replace(old_name, new_name)
        elif kind == "l" and text.startswith(old + "/"):
            text = new + text[len(old):]
        out[rel] = (kind, mode, text)
    return out


def _plain(path: str) -> bool:
    return _PLAIN_PATH.fullmatch(path) is not None and len(os.path.basename(path)) >= _MIN_NAME


def _read(key: str) -> dict[str, object] | None:
    try:
        data = json.loads(template_path(key).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != TEMPLATE_SCHEMA:
        return None
    return data


def _tree(data: dict[str, object]) -> Snapshot | None:
    """The template's tree, or None unless it is one virtualenv could have written: paths
    inside the folder whose every parent is a folder of the tree (never a link: nothing is
    written through one), plain permission bits, text that is UTF-8 and holds no NUL, and
    at least ``pyvenv.cfg`` and ``bin/python``."""
    raw = data.get("tree")
    if not isinstance(raw, dict):
        return None
    out: Snapshot = {}
    for rel, entry in raw.items():
        if not isinstance(rel, str) or not isinstance(entry, list) or len(entry) != 3:
            return None
        kind, mode, text = entry
        if kind not in ("d", "f", "l") or not isinstance(mode, int) or not isinstance(text, str):
            return None
        if not 0 <= mode <= 0o777 or "\0" in rel or "\0" in text:
            return None
        if rel.startswith("/") or {"", ".", ".."} & set(rel.split("/")):
            return None
        try:
            text.encode("utf-8")
            rel.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return None
        out[rel] = (kind, mode, text)
    for rel in out:
        parent = rel.rpartition("/")[0]
        if parent and out.get(parent, ("",))[0] != "d":
            return None
    if out.get("pyvenv.cfg", ("",))[0] != "f" or out.get("bin/python", ("",))[0] != "l":
        return None
    return out


def _write(key: str, path: str, tree: Snapshot, state: str) -> None:
    doc = {"schema": TEMPLATE_SCHEMA, "path": path, "state": state,
           "tree": {rel: list(entry) for rel, entry in tree.items()}}
    target = template_path(key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, json.dumps(doc, sort_keys=True).encode())
    except OSError:
        pass  # the cache never fails a build: virtualenv runs next time too


def _entries(tree: Snapshot) -> Iterator[tuple[str, Entry]]:
    # Parents before children: sorted paths put "bin" before "bin/python".
    yield from sorted(tree.items())


def written_from_template(key: str, env_dir: Path) -> bool:
    """Write the empty virtualenv into ``env_dir`` (it exists) from the proven template of
    ``key``; False, with nothing of it left in ``env_dir``, when there is none to use."""
    data = _read(key)
    if data is None or data.get("state") != "proven" or not isinstance(data.get("path"), str):
        return False
    old, new = str(data["path"]), str(env_dir)
    tree = _tree(data)
    if tree is None or not _plain(old) or not _plain(new):
        return False
    made: list[tuple[str, str]] = []
    try:
        for rel, (kind, mode, text) in _entries(relocated(tree, old, new)):
            full = os.path.join(new, rel)
            if kind == "d":
                os.mkdir(full)
                made.append((kind, full))
                os.chmod(full, mode)
            elif kind == "l":
                os.symlink(text, full)
                made.append((kind, full))
            else:
                fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                made.append((kind, full))
                with os.fdopen(fd, "wb") as fh:
                    fh.write(text.encode("utf-8"))
                os.chmod(full, mode)
    except (OSError, ValueError, OverflowError):
        # Undo what was made (deepest first; unlink and rmdir follow no link): virtualenv then
        # writes the whole of it, into a folder holding only what it held before.
        for kind, full in reversed(made):
            with contextlib.suppress(OSError):
                if kind == "d":
                    os.rmdir(full)
                else:
                    os.unlink(full)
        return False
    return True


def keep_template(key: str, env_dir: Path, skip: frozenset[str]) -> str:
    """After virtualenv made ``env_dir``: keep its output as the template of ``key``, or prove
    (or disprove) the template already kept. Returns the template's state now ("" for none)."""
    try:
        tree = snapshot(env_dir, skip)
    except OSError:
        tree = None
    data = _read(key)
    if data is None:
        if tree is None or not _plain(str(env_dir)):
            return ""
        _write(key, str(env_dir), tree, "unproven")
        return "unproven"
    state = str(data.get("state", ""))
    if state != "unproven":
        return state
    old = data.get("path")
    kept = _tree(data)
    if not isinstance(old, str) or kept is None or tree is None or not _plain(str(env_dir)):
        return state
    if old == str(env_dir):
        return state  # the same folder again proves nothing about relocating
    verdict = "proven" if relocated(kept, old, str(env_dir)) == tree else "refused"
    _write(key, old, kept, verdict)
    return verdict
