"""The no-op fast path: ``pinfold build`` with nothing changed, answered before env.yaml is validated.

A finished environment records what its build read (``watch`` in pinfold.json): the
digest of every file (env.yaml and the files it ``extends``, the locks, the needs files
and what they include), the folders that had to exist (wheelhouses, develop trees), the
interpreter env.yaml named, and what each develop tree holds that the build depends on
(:func:`tree_state`: the digests of its metadata files, the size and mtime of each of its
Twisted plugin modules). When all of those are as recorded, validating env.yaml again
would give the same spec and the plan would be a no-op; :func:`up_to_date` checks exactly
that with the standard library, without starting the interpreter while the files that
decide what it runs as are those the build stamped (:func:`interpreter_stamp`; otherwise one
``python -I -S`` run, in a thread beside the file checks: an interpreter can be replaced in
place), without importing the
pipeline, ``packaging``, the lock parser, ``dataclasses`` (the record is read as JSON,
:func:`_raw_record`, when its checksum says pinfold wrote it as it is; the record's types are
imported to read any other record, and with the results' for :func:`up_to_date`'s answer,
which the ``pinfold`` command does without: :func:`fresh`) or, for an env.yaml of
plain ``key: value`` lines (:func:`_top_keys`), even ``yaml``: a no-op then costs well
under 0.1 s, Python's own start included. With ``extends``,
``path`` and ``python`` may be written in a base file: the fast path follows the chain for
those two keys only (each file once) and requires every file it read to be in the watch,
unchanged.

Anything different or unreadable and it answers None, "not known to be up to date":
the full path (:func:`pinfold.pipeline.build`) decides, with its own messages. So it does
when ``<path>.d`` holds an unfinished entry (a killed build's folder; one listing): the
full path's no-op removes it under the build lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__
from .envdir import Environments
from .envlayout import CHECKSUM, SCHEMA, STATE_FILE, damage, record_checksum
from .errors import CommandError, PinfoldError, interpreter_failed
from .inside.shared import PLUGIN_MARK
from .paths import env_path, find_python, read_bytes
from .runner import Runner

# The record's and the results' types are imported where the full path uses them, never at
# the top: the fast path reads pinfold.json as JSON (`_raw_record`), because importing
# `dataclasses` and generating those classes' methods cost more than the check itself.
TYPE_CHECKING = False  # not typing's: see pinfold.errors
if TYPE_CHECKING:
    from typing import Any

    from .record import EnvRecord, TreeState, Watch
    from .results import BuildResult
    from .spec import Spec

__all__ = ["METADATA", "Fresh", "digest", "fresh", "identity", "interpreter_stamp", "layers_digest",
           "plugin_folders", "rewritten_caches", "stamp_holds", "tree_state", "up_to_date", "watch_of"]


def digest(path: Path | None) -> str:
    """The sha256 of a file's bytes ("" for no file); OSError for what is not a regular file
    (a FIFO swapped in for a watched file must not hang the no-op check)."""
    return hashlib.sha256(read_bytes(path)).hexdigest() if path else ""


def layers_digest(spec: Spec) -> str:
    """The digest of env.yaml and every file it extends: env.yaml's own without ``extends``.

    Names are part of it (a base swapped for another with the same bytes is a change).
    """
    layers = spec.layers or (spec.file,)
    if layers == (spec.file,):
        return digest(spec.file)
    lines = "".join(f"{f}\0{digest(f)}\n" for f in layers)
    return hashlib.sha256(lines.encode()).hexdigest()


#: A file of the interpreter changed this recently is not stamped (:func:`interpreter_stamp`).
RACY_SECONDS = 2.0
#: How a native executable starts: ELF, and Mach-O (32/64-bit, either byte order, universal).
_NATIVE = (b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
           b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


def _ident(path: str) -> list[int] | None:
    """(device, inode, size, mtime, ctime) of ``path`` (not followed), None if it is not there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _native(path: str) -> bool:
    """Whether ``path`` is a regular file holding a native executable (not a script)."""
    try:
        # Non-blocking: a FIFO in the executable's place must not hang the no-op.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, 4) in _NATIVE
    except OSError:
        return False
    finally:
        os.close(fd)


def _stamp_paths(python: str) -> list[str] | None:
    """The executable ``python`` resolves to and each ``pyvenv.cfg`` Python would look for."""
    real = os.path.realpath(python)
    if not _native(real):
        return None
    given = os.path.dirname(os.path.abspath(python))
    folders = (given, os.path.dirname(given), os.path.dirname(real), os.path.dirname(os.path.dirname(real)))
    return [real, *dict.fromkeys(os.path.join(f, "pyvenv.cfg") for f in folders)]


def interpreter_stamp(python: str, libraries: Sequence[str] = ()) -> dict[str, list[int] | None] | None:
    """The identities of the files that decide what ``python`` runs as, or None when unknown.

    Those files are the native executable ``python`` resolves to (its symlinks resolved: the
    resolved path is a key, so a link moved to another interpreter differs), each
    ``pyvenv.cfg`` where Python looks for one (beside the executable and one folder up, for
    the path as given and as resolved), present or not, and ``libraries``: the shared
    libpython a shared build loaded (:attr:`pinfold.interpreter.Interpreter.libraries`). An
    identity is (device, inode, size, mtime, ctime): replacing a file gives another inode,
    and writing to it, even with its old mtime restored, another ctime. A script (a pyenv
    shim, a wrapper) gives None: what it runs depends on more than its bytes.
    """
    paths = _stamp_paths(python)
    if paths is None:
        return None
    required = [paths[0], *(os.path.realpath(lib) for lib in libraries)]
    try:
        stamp = {path: _ident(path) for path in [*paths, *required]}
    except OSError:  # a folder that cannot be searched: not known
        return None
    if any(stamp[path] is None for path in required):
        return None
    # Changed within the file system clock's granularity, a file's times need not show the
    # change (git's "racy" files): such an interpreter is asked for its identity next time.
    now = time.time_ns()
    if any(now - max(ident[3], ident[4]) < RACY_SECONDS * 1e9 for ident in stamp.values() if ident):
        return None
    return stamp


def stamp_holds(python: str, stamp: dict[str, list[int] | None]) -> bool:
    """Whether every file of a recorded :func:`interpreter_stamp` of ``python`` is as it was."""
    paths = _stamp_paths(python)
    if paths is None or any(path not in stamp for path in paths):
        return False
    try:
        return all(_ident(path) == ident for path, ident in stamp.items())
    except OSError:
        return False


def identity(python: str, runner: Runner) -> str:
    """The cheapest honest identity of an interpreter: -S skips site, so this is ~15 ms."""
    try:
        done = runner.run([python, "-I", "-S", "-c",
                           "import sys; print(sys.executable, sys.version, sys.implementation.cache_tag)"],
                          what=f"running {python}", timeout=60)
    except CommandError as exc:
        raise interpreter_failed(python, exc.problems) from None
    return done.output.strip()


#: A develop tree's files that decide its dependencies and entry points.
METADATA = ("pyproject.toml", "setup.py", "setup.cfg")
_TWISTED_PLUGINS = "twisted.plugins"


def _marked_packages(root: str) -> list[str]:
    """The regular packages under ``root`` whose ``__init__.py`` calls ``pluginPackagePaths``.

    Descends only into folders with an ``__init__.py`` (a plugin package is a regular
    package, and its parents are too in practice), so checkouts' other folders (``.git``,
    ``docs``, ``build``) cost nothing; symlinked folders are not followed (no loops).
    """
    found: list[str] = []
    stack = [(root, "")]
    while stack:
        folder, dotted = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.isidentifier() or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                with open(os.path.join(entry.path, "__init__.py"), "rb") as fh:
                    text = fh.read()
            except OSError:  # not a regular package
                continue
            name = f"{dotted}.{entry.name}" if dotted else entry.name
            if PLUGIN_MARK in text:
                found.append(name)
            stack.append((entry.path, name))
    return found


def plugin_folders(tree: Path, listed: Sequence[str] = ()) -> list[Path]:
    """A develop tree's Twisted plugin folders: what its plugin caches are written for.

    The tree is on ``sys.path`` as itself or as its ``src/`` folder (the same rule as
    :func:`pinfold.plugincache.twisted_installed`); in each, the folder of
    ``twisted.plugins``, of ``listed`` (``final.plugin_caches.packages``) and of every package
    there whose ``__init__`` calls ``pluginPackagePaths``.
    """
    out: list[Path] = []
    for root in (tree, tree / "src"):
        if not root.is_dir():
            continue
        names = dict.fromkeys([_TWISTED_PLUGINS, *listed, *_marked_packages(str(root))])
        out += [folder for name in names if (folder := root.joinpath(*name.split("."))).is_dir()]
    return list(dict.fromkeys(out))


def _stamp(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def tree_state(tree: Path, listed: Sequence[str] = ()) -> TreeState:
    """What a build depends on in a develop tree, read cheaply: nothing imported or started.

    The metadata files' digests (a few small files), and for each plugin folder its plugin
    modules (``*.py`` files and subpackages, as Twisted's module walk counts them) by size
    and mtime: Twisted's caches are judged by mtime, so that is what must not move.
    """
    from .record import TreeState  # lazy: see the note at the imports

    return TreeState(**_tree_json(tree, listed))


def _tree_json(tree: Path, listed: Sequence[str]) -> dict[str, dict[str, str]]:
    """:func:`tree_state` as its record holds it (``TreeState.to_json``)."""
    metadata = {name: digest(tree / name) for name in METADATA if (tree / name).is_file()}
    plugins: dict[str, str] = {}
    for folder in plugin_folders(tree, listed):
        rel = folder.relative_to(tree).as_posix()
        plugins[f"{rel}/"] = "folder"
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".py") and entry.is_file():
                stamp = _stamp(entry.path)
            elif entry.name.isidentifier() and entry.is_dir():
                stamp = _stamp(os.path.join(entry.path, "__init__.py"))  # None: not a subpackage
            else:
                continue
            if stamp is not None:
                plugins[f"{rel}/{entry.name}"] = stamp
    return {"metadata": metadata, "plugins": dict(sorted(plugins.items()))}


def rewritten_caches(env_dir: Path, record: EnvRecord) -> list[Path]:
    """The plugin caches outside ``env_dir`` (in develop trees) no longer as its build left them.

    A develop tree's cache is shared: another build (a failed one too) or Twisted itself
    may rewrite it for other modules. Judged by the mtime the plugins stage gave it.
    """
    written = record.outputs.plugin_caches
    if written is None:
        return []
    return _moved_caches(env_dir, [(cache.path, cache.mtime_ns) for cache in written.caches])


def _moved_caches(env_dir: Path, caches: Sequence[tuple[Path, int]]) -> list[Path]:
    """Those of ``caches`` (path, mtime_ns as written) outside ``env_dir`` whose mtime moved."""
    home = env_dir.resolve()
    out = []
    for path, mtime_ns in caches:
        if path.resolve().is_relative_to(home):
            continue
        try:
            moved = os.stat(path).st_mtime_ns != mtime_ns
        except OSError:
            moved = True
        if moved:
            out.append(path)
    return out


def watch_of(spec: Spec) -> Watch:
    """What the no-op fast path must find unchanged: everything validating ``spec`` read."""
    from .needs import read_needs  # lazy: packaging; watch_of runs on the full path only
    from .record import Watch

    files: list[Path] = [*(spec.layers or (spec.file,)), spec.file, spec.requirements.path]
    if spec.build_requirements is not None:
        files.append(spec.build_requirements.path)
    for ns in (spec.needs, spec.build_needs):
        if ns is not None:
            files += read_needs(ns, spec.root)[0].files
    listed = spec.final.plugin_caches.packages
    return Watch(spec=str(spec.file), files={str(f): digest(f) for f in dict.fromkeys(files)},
                 folders=tuple(str(d) for d in (*spec.index.find_links, *spec.develop)),
                 python=spec.python, develop={str(t): tree_state(t, listed) for t in spec.develop},
                 plugin_packages=tuple(listed))


#: The keys the fast path needs; they may be written in a file env.yaml extends.
_KEYS = ("path", "python")


#: What the fast path reads without a YAML parser: top-level keys (``path``, ``python``,
#: ``extends`` and their ``+``/``-`` forms), each on a line of its own at column 0.
_WANTED = frozenset(f"{k}{op}" for k in (*_KEYS, "extends") for op in ("", "+", "-"))
_KEY_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*?[+-]?):(?: +(.*))?")
#: A plain scalar that YAML 1.1 reads as a string whatever its resolvers: path-like
#: characters only, starting with a letter, ``_`` or ``/``, or with ``./``, ``../``, ``~/``.
_PLAIN = re.compile(r"(?:[A-Za-z_/]|\./|\.\./|~/)[A-Za-z0-9_./~+-]*")
_NOT_STRINGS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
_QUOTED = re.compile(r"'([^'\n]*)'" + r'|"([^"\\\n]*)"')
_FLOW_LIST = re.compile(r"\[([^\[\]{}]*)\]")


def _scalar(text: str) -> str | None:
    """A one-line scalar (then maybe a comment) as YAML reads it, if surely a string; else None."""
    if (quoted := _QUOTED.match(text)) is not None:
        rest = text[quoted.end():]
        value = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
    elif (plain := _PLAIN.match(text)) is not None:
        rest, value = text[plain.end():], plain.group(0)
        if value.lower() in _NOT_STRINGS:
            return None
    else:
        return None
    # Only spaces, or spaces then a comment, may follow: "env#x", "env x", "'a'b" are YAML's.
    if rest.strip(" ") and not (rest[0] == " " and rest.lstrip(" ").startswith("#")):
        return None
    return value


def _top_keys(data: bytes) -> dict[str, object] | None:
    """``path``, ``python``, ``extends`` (and ``+``/``-`` forms) of a simple env.yaml, or None.

    The no-op check reads env.yaml before anything else and needs only those keys; YAML's
    import alone costs more than the rest of the check. So a file whose every column-0
    line is a comment, a ``- `` item or ``key: ...`` with a plain key, and whose wanted
    keys each have a one-line string value (or, for ``extends``, a flow or block list
    of them), is read here; anything else (tabs, CR, document markers, anchors, quoted or
    complex keys, a value that might not be a string, a key given twice) returns None and
    YAML reads it. Even a misreading could not make a changed build look up to date: the
    answer is only "up to date" when the record found through ``path`` was built from
    these very bytes (every file in its watch has the digest it had).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\t" in text or "\r" in text or text.startswith("\ufeff"):
        return None
    found: dict[str, object] = {}
    lines = text.split("\n")
    i = 0
    items_allowed = False  # a "- " item at column 0 belongs to a key without a value
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line or line[0] in " #":
            continue  # inside some other key's value, a comment, or nothing
        if line == "-" or line.startswith("- "):
            if not items_allowed:
                return None  # a list at the top, or an item after a value
            continue
        match = _KEY_LINE.fullmatch(line)
        if match is None:
            return None  # ---, %YAML, {...}, "quoted key", ? complex, <<: merge...
        key, value = match.group(1), (match.group(2) or "").strip()
        items_allowed = not value or value.startswith("#")
        if key not in _WANTED:
            # A value that may go on over lines at column 0 (a quoted or flow one left open)
            # could hide a line that looks like a key: let YAML read such a file.
            if value.startswith(("'", '"')) and _QUOTED.fullmatch(value.split(" #")[0].rstrip()) is None:
                return None
            if value.startswith(("[", "{")) and not value.split(" #")[0].rstrip().endswith(("]", "}")):
                return None
            continue
        if key in found:
            return None
        if key == "extends":
            items = _extends(value, lines, i)
            if items is None:
                return None
            found[key], i = items
        elif (scalar := _scalar(value)) is not None:
            found[key] = scalar
        else:
            return None
        # A plain scalar may go on over the next (indented) lines: then let YAML read it.
        j = i
        while j < len(lines) and (not lines[j].strip() or lines[j].lstrip(" ").startswith("#")):
            j += 1
        if key != "extends" and j < len(lines) and lines[j][:1] == " ":
            return None
    return found


def _extends(value: str, lines: list[str], i: int) -> tuple[list[str] | str, int] | None:
    """``extends``' value starting at ``value`` (its line) and ``lines[i:]``, and the next line."""
    if value and not value.startswith("#"):
        if (flow := _FLOW_LIST.match(value)) is None:
            one = _scalar(value)
            return None if one is None else (one, i)
        rest = value[flow.end():]
        if rest.strip() and not rest.lstrip(" ").startswith("#"):
            return None
        parts = [p.strip() for p in flow.group(1).split(",")]
        if parts == [""]:
            return [], i
        items = [_scalar(p) for p in parts]
        return None if None in items else ([item for item in items if item is not None], i)
    out: list[str] = []
    while i < len(lines):
        line = lines[i].lstrip(" ")
        if not line or line.startswith("#"):
            i += 1
            continue
        if not line.startswith("- "):
            break
        if (one := _scalar(line[2:].strip())) is None:
            return None
        out.append(one)
        i += 1
    if not out or (i < len(lines) and lines[i][:1] == " "):  # empty (null) or not a plain list
        return None
    return out, i


def _json_keys(data: bytes) -> dict[str, object] | None:
    """The top-level object of an env.yaml written as JSON (generated files often are), or None.

    JSON is YAML too; ``json`` is loaded already, YAML's parser is not. Where the two could
    read the same bytes differently (a key given twice, bytes outside ASCII), this answers
    None and YAML reads the file; and as for :func:`_top_keys`, a misreading could only make
    the answer "not known to be up to date", never a wrong "up to date".
    """
    import json  # loaded already by pinfold.record

    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("a key given twice")
        return dict(pairs)

    try:
        raw = json.loads(data.decode("ascii"), object_pairs_hook=unique)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    return {k: v for k, v in raw.items() if k in _WANTED}


def _find_keys(file: Path, found: dict[str, tuple[Path, object]], read: list[Path]) -> bool:
    """Fill ``found`` with ``path``/``python`` as the merge would give them, each with the file
    that wrote it; every file opened goes to ``read``. False: not judged here (a cycle, an
    ``extends`` that is not a string or list of strings, ``path+``...)."""
    if len(read) > 100 or file in read:  # a cycle, or a base named twice: the full path decides
        return False
    read.append(file)
    data = read_bytes(file)
    raw = _top_keys(data)
    if raw is None and data.lstrip(b" \n").startswith(b"{"):
        raw = _json_keys(data)
    if raw is None:  # not simple enough to read without a YAML parser
        import yaml  # lazy: 15-25 ms of imports, which most env.yaml files do not need

        raw = yaml.safe_load(data)
    if raw is None:
        return True
    if not isinstance(raw, dict) or any(f"{k}{op}" in raw for k in _KEYS for op in "+-"):
        return False
    for key in _KEYS:
        if key in raw and key not in found:
            found[key] = (file, raw[key])
    bases = raw.get("extends", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        return False
    # The later base wins, and every base over what it extends in turn.
    return all(_find_keys(Path(os.path.normpath(file.parent / os.path.expanduser(b))), found, read)
               for b in reversed(bases))


#: The keys :meth:`pinfold.record.EnvRecord.from_json` requires: a record lacking one is not
#: read by the full path, so not by the fast path either.
RECORD_KEYS = ("develop", "facts", "fingerprint", "hashes", "inputs", "installed", "pinfold",
               "plan", "python", "spec", "stages", "watch")


def _strs(value: object) -> list[str]:
    """A JSON list of strings, else TypeError (which makes the fast path answer None)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return value


def _object(value: object) -> dict[str, Any]:
    """A JSON object, else TypeError."""
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value


def _raw_record(env_dir: Path) -> dict[str, Any] | None:
    """``pinfold.json`` as JSON, if :func:`pinfold.record.read_record` could read it; else None.

    A record whose :data:`~pinfold.envlayout.CHECKSUM` holds is as pinfold wrote it, so of the
    shape the reader reads: only the parts the fast path uses are checked for their types (a
    mistyped one raises TypeError, and :func:`up_to_date` then answers None). Any other record
    (edited by hand, damaged, or without a checksum) goes through the reader's own checks.
    """
    try:
        data = json.loads((env_dir / STATE_FILE).read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not all(key in data for key in RECORD_KEYS):
        return None
    schema = data.get("schema", 1)
    if isinstance(schema, bool) or not isinstance(schema, int) or not 1 <= schema <= SCHEMA:
        return None
    if data.get(CHECKSUM) != record_checksum(data):
        from .record import EnvRecord  # lazy: its types cost more than the rest of the no-op

        try:
            EnvRecord.from_json(data)
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError):  # see read_record
            return None
    return data


def _unchanged(watch: dict[str, Any], spec_file: Path, python: str) -> bool:
    files = _object(watch["files"])
    if watch["spec"] != str(spec_file) or watch["python"] != python or str(spec_file) not in files:
        return False
    try:
        if any(digest(Path(name)) != value for name, value in files.items()):
            return False
    except OSError:  # a file went away: validation will say so
        return False
    if not all(Path(folder).is_dir() for folder in _strs(watch["folders"])):
        return False
    listed = _strs(watch.get("plugin_packages", []))
    return all(_tree_json(Path(tree), listed) == state
               for tree, state in _object(watch.get("develop") or {}).items())


class Fresh:  # a plain class: see pinfold.errors.Problem
    """The fast path's answer: the environment ``path`` points to is what a build would make.

    ``spec_file`` is env.yaml (absolute), ``path`` the symlink and ``env_dir`` the environment it
    points to, ``seconds`` how long the check took, ``digest`` the environment digest its record
    holds (None for an older pinfold's environment). :meth:`to_json` is
    :meth:`pinfold.results.BuildResult.to_json` of :meth:`result`, without importing that
    module: the ``pinfold`` command renders this for a no-op build.
    """

    __slots__ = ("digest", "env_dir", "path", "seconds", "spec_file")

    def __init__(self, *, spec_file: Path, path: Path, env_dir: Path, seconds: float,
                 digest: str | None) -> None:
        self.spec_file = spec_file
        self.path = path
        self.env_dir = env_dir
        self.seconds = seconds
        self.digest = digest

    def result(self) -> BuildResult:
        """The no-op build's result."""
        from .results import BuildResult

        return BuildResult(spec_file=self.spec_file, path=self.path, env_dir=self.env_dir,
                           up_to_date=True, seconds=self.seconds)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, as the build's result gives it (nothing ran: no stages, no facts)."""
        return {"spec_file": str(self.spec_file), "path": str(self.path), "env_dir": str(self.env_dir),
                "up_to_date": True, "stages": [], "warnings": [], "seconds": self.seconds, "facts": {}}


def up_to_date(spec_file: Path | str, runner: Runner) -> BuildResult | None:
    """The no-op result if nothing the current environment was built from changed, else None.

    Never raises: this is only a shortcut, and whatever it cannot judge (an env.yaml too
    deep for ``yaml.safe_load``, a path with a NUL byte, a foreign ``pinfold.json``) the
    full path validates and reports with a proper message.
    """
    answer = fresh(spec_file, runner)
    return None if answer is None else answer.result()


def fresh(spec_file: Path | str, runner: Runner) -> Fresh | None:
    """:func:`up_to_date`'s answer, before any of the results' types is imported."""
    try:
        return _fresh(spec_file, runner)
    except Exception:  # see up_to_date: the full path reports it
        return None


class _Identity:
    """:func:`identity` of one interpreter, run in a thread; :meth:`result` waits for it."""

    def __init__(self, python: str, runner: Runner) -> None:
        self._answer: str | None = None
        self._thread = threading.Thread(target=self._run, args=(python, runner), daemon=True,
                                        name="pinfold-identity")
        self._thread.start()

    def _run(self, python: str, runner: Runner) -> None:
        try:
            self._answer = identity(python, runner)
        except PinfoldError:  # the full path runs it again and reports it
            self._answer = None

    def result(self) -> str | None:
        """The identity, or None when the interpreter could not be run."""
        self._thread.join()
        return self._answer


def _as_now(record: dict[str, Any], current: Path, file: Path, python: str, read: list[Path]) -> bool:
    """Whether ``current`` (its ``record``) was built from what ``file`` and its watch hold now."""
    watch = _object(record["watch"])
    if record["pinfold"] != __version__ or not _unchanged(watch, file, python):
        return False
    if any(str(f) not in watch["files"] for f in read):  # a file the build did not merge
        return False
    # Develop trees, recorded before pinfold watched what they hold: not known to be up to date.
    if _strs(record["develop"]) and watch.get("develop") is None:
        return False
    if damage(current, _strs(record["installed"])) is not None:
        return False
    written = _object(record["facts"]).get("plugin_caches")
    caches = [] if written is None else [_object(c) for c in _object(written)["caches"]]
    for cache in caches:
        if not isinstance(cache["path"], str) or not isinstance(cache["mtime_ns"], int):
            raise TypeError("facts.plugin_caches: expected a path and an mtime")
    return not _moved_caches(current, [(Path(c["path"]), c["mtime_ns"]) for c in caches])


def _fresh(spec_file: Path | str, runner: Runner) -> Fresh | None:
    start = time.monotonic()
    file = Path(spec_file).absolute()
    found: dict[str, tuple[Path, object]] = {}
    read: list[Path] = []
    try:
        if not _find_keys(file, found, read):
            return None
    except Exception:  # OSError, yaml.YAMLError, RecursionError: the full path reports it
        return None
    where, value = found.get("path", (file, None))
    if not isinstance(value, str):
        return None
    path = env_path(where, value)
    where, value = found.get("python", (file, None))
    python = find_python(where, value) if value is None or isinstance(value, str) else None
    if python is None:
        return None
    envs = Environments(path)
    if not path.is_symlink() or (current := envs.current()) is None:
        return None
    if envs.has_leftovers():  # a killed build's folder: the full path's no-op removes it
        return None
    record = _raw_record(current)
    if record is None:
        return None
    # The interpreter the build ran is known by its files' identities (interpreter_stamp);
    # otherwise its identity is asked for, beside the file checks below (its start is most
    # of the wall time of a no-op after Python's own), and awaited on every way out.
    stamp = _object(record["watch"]).get("interpreter")
    known = _object(record["inputs"]).get("python")
    if not isinstance(known, str):
        return None
    asked = None if stamp is not None and stamp_holds(python, _object(stamp)) else _Identity(python, runner)
    try:
        as_now = _as_now(record, current, file, python, read)
    finally:
        answer = known if asked is None else asked.result()
    if not as_now or answer != known:
        return None
    digest = record.get("digest")
    return Fresh(spec_file=file, path=path, env_dir=current, seconds=time.monotonic() - start,
                 digest=digest if isinstance(digest, str) else None)
