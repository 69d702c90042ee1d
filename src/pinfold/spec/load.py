"""The loader: env.yaml and both locks -> a validated :class:`Spec`, every problem reported together.

What each key may hold is decided here; reading located YAML is :mod:`.yamlnodes`;
the result is the model of :mod:`.model`. Nothing is written anywhere.

How strictly depends on what the caller is about to do (:data:`Purpose`):

- ``build``: everything env.yaml names must exist: the interpreter, the index
  folders, the locks, the develop trees, the needs files.
- ``lock``: as ``build``, but a lock file may be missing (``pinfold lock`` is about to
  write it; it is read as empty).
- ``fetch``: as ``build``, but the first ``find_links`` folder may be missing
  (``pinfold fetch`` creates it and fills it).
- ``inspect``: for commands on environments already built (``check``, ``rollback``,
  ``gc``): the keys must still be well-formed, but nothing they name has to exist any
  more (a pruned wheelhouse, a removed interpreter), locks are read if readable and the
  needs are not read at all.

Layers: ``extends: base.yaml`` (or a list) names files env.yaml builds on, each relative
to the file that names it. The files are linearized (each file's bases before it, in
the order listed, every file once) and merged in that order, env.yaml last
(:meth:`NodeReader.overlay`: mappings key by key, lists and scalars replaced, ``KEY+``
and ``KEY-`` edit an inherited list). Every node keeps the file that wrote it, so a
problem is located in that file and a relative path starts from that file's folder.

Whether the locks still match the needs is not the loader's business: the commands
that install from the locks ask :func:`pinfold.locking.needs.require_current_locks`.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import yaml

from ..errors import Problem, SpecError
from ..locks import Lock, parse_lock
from ..needs import NeedsSpec, read_needs
from ..paths import display_path, env_path, find_python, path_problem, read_text, reason
from .model import (
    SCHEMA_VERSION,
    FinalSpec,
    IndexSpec,
    PluginCacheSpec,
    ProbeSpec,
    ScriptProbe,
    Spec,
)
from .yamlnodes import Located, NodeReader, YamlProblem, compose_text, kind_of

__all__ = ["EXTENDS", "Layers", "Purpose", "load_layers", "load_spec"]

#: What the caller will do with the spec; it decides which named things must exist.
Purpose = Literal["build", "lock", "fetch", "inspect"]

_T = TypeVar("_T")

_TOP_KEYS = ("version", "python", "path", "index", "requirements", "build_requirements",
             "develop", "final", "needs", "build_needs", "installer", "compile")
#: The values of ``installer:``, one per backend in pinfold.installers.
_INSTALLERS = ("pip", "uv")
#: The key naming the files a file builds on; read per file, never merged.
EXTENDS = "extends"
_PROBE_KEYS = ("enabled", "reactor", "allow_reactor_import", "imports", "scripts", "commands")


class _Loader:
    """One reading of one env.yaml: the node reader plus what ``purpose`` demands."""

    def __init__(self, file: Path, purpose: Purpose) -> None:
        self.file = file
        self.purpose = purpose
        self.read = NodeReader(file)

    @property
    def strict(self) -> bool:
        """Whether what env.yaml names must exist (not for environments already built)."""
        return self.purpose != "inspect"

    def local_path(self, node: yaml.Node, key: str, value: str, *, kind: str,
                   must_exist: bool = True) -> Path | None:
        """``value`` resolved relative to the file that wrote ``node`` (env.yaml or a file it
        extends); it must exist as ``kind`` (file or folder)."""
        if (why := path_problem(value)) is not None:
            self.read.error(node, key, f"the path {why}")
            return None
        try:
            path = (self.read.file_of(node).parent / os.path.expanduser(value)).resolve()
            if not must_exist or not self.strict:
                return path
            ok = path.is_file() if kind == "file" else path.is_dir()
            state = "" if ok else ("does not exist" if not path.exists() else f"is not a {kind}")
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            self.read.error(node, key, f"{value!r}: {reason(exc)}")
            return None
        if state:
            self.read.error(node, key, f"{value!r} ({display_path(path)}) {state}")
            return None
        return path

    def opt(self, nodes: dict[str, yaml.Node], key: str, dotted: str,
            read: Callable[[yaml.Node, str], _T | None], default: _T) -> _T:
        """An optional key: its value, or ``default`` when absent or invalid (recorded)."""
        node = nodes.get(key)
        if node is None:
            return default
        value = read(node, dotted)
        return default if value is None else value

    # -- keys ---------------------------------------------------------------------------

    def python(self, node: yaml.Node | None) -> str:
        if node is None:
            return sys.executable
        value = self.read.string(node, "python")
        if value is None:
            return sys.executable
        if (why := path_problem(value)) is not None:
            self.read.error(node, "python", f"the value {why}")
            return sys.executable
        written_in = self.read.file_of(node)
        found = find_python(written_in, value)
        if found is not None:
            return found
        if os.sep in value:
            if self.strict:
                self.read.error(node, "python", f"{value!r} is not an executable file")
            return str(env_path(written_in, value))
        if self.strict:
            self.read.error(node, "python", f"{value!r} is not on PATH; give a path or install it")
        return value

    def env_dir(self, node: yaml.Node) -> Path | None:
        value = self.read.string(node, "path")
        if value is None:
            return None
        if (why := path_problem(value)) is not None:
            self.read.error(node, "path", f"the path {why}")
            return None
        path = env_path(self.read.file_of(node), value)
        folders = {self.file.parent, self.read.file_of(node).parent}
        if not path.name or any(path == f or path in f.parents for f in folders):
            self.read.error(node, "path", "must be a folder of its own, not env.yaml's folder or above")
            return None
        return path

    def index(self, node: yaml.Node) -> IndexSpec:
        keys = self.read.mapping(node, "index", ("find_links", "url", "cert", "timeout", "retries"))
        links = []
        if "find_links" in keys:
            kn = keys["find_links"]
            is_list = isinstance(kn, yaml.SequenceNode)
            if is_list and not kn.value:
                self.read.error(kn, "index.find_links", "is an empty list: give at least one folder "
                                                        "of wheels and sdists, or remove the key")
            for at, value in self.read.strings(kn, "index.find_links", single_ok=True):
                dotted = f"index.find_links[{kn.value.index(at)}]" if is_list else "index.find_links"
                if "://" in value:
                    self.read.error(at, dotted, f"{value!r} is a URL: find_links takes local folders; "
                                                "put a simple index under index.url")
                elif (p := self.local_path(at, dotted, value, kind="folder", must_exist=not (
                        self.purpose == "fetch" and (not is_list or kn.value.index(at) == 0)))) is not None:
                    links.append(p)  # with "fetch", a missing first folder is fetch's to create
        url = None
        if "url" in keys and (url := self.read.string(keys["url"], "index.url")) is not None:
            url = self.index_url(keys["url"], url)
        if "find_links" not in keys and "url" not in keys and isinstance(node, yaml.MappingNode):
            self.read.error(node, "index", "no index given: set find_links (wheelhouse folders) "
                                           "and/or url (a local simple index)")
        cert = None
        if "cert" in keys and (cert_text := self.read.string(keys["cert"], "index.cert")) is not None:
            cert = self.local_path(keys["cert"], "index.cert", cert_text, kind="file")
        timeout = self.opt(keys, "timeout", "index.timeout", self.read.seconds, IndexSpec().timeout)
        retries = self.opt(keys, "retries", "index.retries", self.index_retries, IndexSpec().retries)
        return IndexSpec(find_links=tuple(links), url=url, cert=cert, timeout=timeout, retries=retries)

    def index_retries(self, node: yaml.Node, key: str) -> int | None:
        value = self.read.whole_number(node, key)
        if value is not None and not 0 <= value <= 20:
            self.read.error(node, key, f"expected a whole number from 0 to 20, got {value}")
            return None
        return value

    def index_url(self, node: yaml.Node, url: str) -> str | None:
        if not url.startswith(("http://", "https://", "file://")):
            self.read.error(node, "index.url",
                            f"{url!r} is not an http(s) or file URL of a PEP 503 simple index")
            return None
        if (why := path_problem(url)) is not None:
            self.read.error(node, "index.url", f"the URL {why}")
            return None
        url = url.rstrip("/") + "/"
        if url.startswith("file://") and self.strict:
            # A local index can be checked now; an http(s) one answers (or not) at pre-flight.
            folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
            if not folder.is_dir():
                self.read.error(node, "index.url", f"{url!r}: the folder {folder} does not exist")
                return None
        return url

    def lock(self, node: yaml.Node, key: str) -> Lock | None:
        value = self.read.string(node, key)
        if value is None:
            return None
        path = self.local_path(node, key, value, kind="file", must_exist=False)
        if path is None:
            return None
        try:
            exists = path.exists()
        except OSError:
            exists = False
        if not exists and self.purpose in ("lock", "inspect"):
            return Lock(path, ())  # `pinfold lock` is about to write it; a built env needs none
        if self.local_path(node, key, value, kind="file") is None:
            return None
        lock, problems = parse_lock(path)
        if self.strict:
            self.read.problems.extend(problems)
        return lock

    def develop(self, node: yaml.Node) -> list[Path]:
        out = []
        for at, value in self.read.strings(node, "develop"):
            dotted = f"develop[{node.value.index(at)}]" if isinstance(node, yaml.SequenceNode) else "develop"
            p = self.local_path(at, dotted, value, kind="folder")
            if p is None:
                continue
            if self.strict and not any((p / f).is_file() for f in ("pyproject.toml", "setup.py")):
                self.read.error(at, dotted, f"{value!r} has no pyproject.toml or setup.py")
                continue
            out.append(p)
        return out

    def scripts(self, node: yaml.Node, key: str) -> tuple[ScriptProbe, ...]:
        out = []
        for dotted, item in self.read.items(node, key):
            if isinstance(item, yaml.SequenceNode):
                argv = self.read.string_list(item, dotted)
                if argv and len(argv) == len(item.value):
                    out.append(ScriptProbe(argv=tuple(argv), where=self.read.where(item)))
                continue
            keys = self.read.mapping(item, dotted, ("argv", "timeout"))
            if "argv" not in keys:
                if isinstance(item, yaml.MappingNode):
                    self.read.error(item, f"{dotted}.argv", "missing: give the command as a list")
                continue
            argv = self.read.string_list(keys["argv"], f"{dotted}.argv")
            timeout = self.opt(keys, "timeout", f"{dotted}.timeout", self.read.seconds, 60.0)
            if argv:
                out.append(ScriptProbe(argv=tuple(argv), timeout=timeout, where=self.read.where(item)))
        return tuple(out)

    def final(self, node: yaml.Node) -> FinalSpec:
        read = self.read
        top = read.mapping(node, "final", ("plugin_caches", "probes"))
        caches = PluginCacheSpec()
        if "plugin_caches" in top:
            k = "final.plugin_caches"
            keys = read.mapping(top["plugin_caches"], k, ("enabled", "packages"))
            caches = PluginCacheSpec(
                enabled=self.opt(keys, "enabled", f"{k}.enabled", read.boolean, True),
                packages=tuple(self.opt(keys, "packages", f"{k}.packages", read.string_list, [])),
            )
        probes = ProbeSpec()
        if "probes" in top:
            k = "final.probes"
            keys = read.mapping(top["probes"], k, _PROBE_KEYS)
            probes = ProbeSpec(
                enabled=self.opt(keys, "enabled", f"{k}.enabled", read.boolean, True),
                reactor=self.opt(keys, "reactor", f"{k}.reactor", read.string, "poll"),
                allow_reactor_import=tuple(self.opt(keys, "allow_reactor_import",
                                                    f"{k}.allow_reactor_import", read.string_list, [])),
                imports=tuple(self.opt(keys, "imports", f"{k}.imports", read.string_list, [])),
                scripts=self.opt(keys, "scripts", f"{k}.scripts", self.scripts, ()),
                commands=self.opt(keys, "commands", f"{k}.commands", self.scripts, ()),
            )
        return FinalSpec(plugin_caches=caches, probes=probes)

    def needs(self, node: yaml.Node, key: str) -> NeedsSpec | None:
        """``needs``/``build_needs``: a requirements.in-style file, or an inline list of strings."""
        read = self.read
        if isinstance(node, yaml.SequenceNode):
            items = read.strings(node, key)
            if len(items) != len(node.value):
                return None
            ns = NeedsSpec(key=key, items=tuple(v for _, v in items),
                           where=tuple(read.where(n) for n, _ in items), origin=self.file.name)
        elif isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str"):
            value = read.string(node, key)
            if value is None or (path := self.local_path(node, key, value, kind="file")) is None:
                return None
            ns = NeedsSpec(key=key, file=path, where=(read.where(node),), origin=self.file.name)
        else:
            read.error(node, key, "expected a requirements file or a list of requirements, "
                                  f"got {kind_of(node)}")
            return None
        problems = read_needs(ns, self.file.parent)[1]
        read.problems.extend(problems)
        return None if problems else ns

    def installer(self, node: yaml.Node) -> Literal["pip", "uv"]:
        value = self.read.string(node, "installer")
        if value is None:
            return "pip"
        if value not in _INSTALLERS:
            self.read.error(node, "installer",
                            f"{value!r} is not an installer (allowed: {', '.join(_INSTALLERS)})")
            return "pip"
        return "uv" if value == "uv" else "pip"


def _overlaps(loader: _Loader, node: yaml.Node, env_dir: Path, inputs: list[tuple[str, Path]],
              find_links: tuple[Path, ...]) -> None:
    """``path`` must not be, or hold, anything env.yaml reads, nor live inside a wheelhouse."""
    real = env_dir.parent.resolve() / env_dir.name
    for what, path in inputs:
        if path == real or real in path.parents:
            loader.read.error(node, "path", f"{display_path(env_dir)} would hold {what} "
                                            f"{display_path(path)}: choose a folder of its own")
            return
    for folder in find_links:
        if folder in real.parents:
            loader.read.error(node, "path", f"{display_path(env_dir)} is inside the wheelhouse "
                                            f"{display_path(folder)}: choose a folder of its own")
            return


def _read_file(file: Path) -> str:
    shown = display_path(file)
    try:
        return read_text(file)
    except FileNotFoundError:
        raise SpecError(f"{shown}: no such file",
                        tip="pass the path of an env.yaml (default: ./env.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{shown}: cannot read it: {reason(exc)}") from None


@dataclass(frozen=True, slots=True)
class Layers:
    """env.yaml and the files it extends, merged into one node tree (``extends`` removed).

    Every node keeps the marks of the file that wrote it (:meth:`NodeReader.where`,
    :meth:`NodeReader.file_of`).
    """

    #: env.yaml, absolute.
    file: Path
    #: Every file merged, in the order applied: bases first, env.yaml last.
    files: tuple[Path, ...]
    #: The merged document.
    root: yaml.Node

    def located(self) -> Located:
        """The merged document as plain values, each with the ``file:line`` that wrote it."""
        return NodeReader(self.file).located(self.root)


def _identity(path: Path) -> Path:
    """One name per file, for cycles and for merging a file once (symlinks, ``..``)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


class _Layering:
    """Reads a file and, recursively, the files it extends; problems go to ``read``."""

    def __init__(self, read: NodeReader) -> None:
        self.read = read
        #: (file, its own document without ``extends``), bases before what extends them.
        self.layers: list[tuple[Path, yaml.Node]] = []

    def add(self, file: Path, root: yaml.Node, stack: tuple[Path, ...]) -> None:
        """``file`` (composed as ``root``) after everything it extends."""
        read = self.read
        read.tag_problems(root)
        if not isinstance(root, yaml.MappingNode):
            # Only the schema knows what a file must hold; say it for env.yaml in its words.
            if stack[:-1]:
                read.error(root, "", f"expected a mapping of env.yaml keys, got {kind_of(root)}")
            else:
                self.layers.append((file, root))
            return
        named = [(k, v) for k, v in root.value
                 if isinstance(k, yaml.ScalarNode) and k.value == EXTENDS]
        own = yaml.MappingNode(root.tag, [(k, v) for k, v in root.value
                                          if not (isinstance(k, yaml.ScalarNode) and k.value == EXTENDS)],
                               root.start_mark, root.end_mark)
        for knode, _ in named[1:]:
            read.error(knode, EXTENDS, "duplicate key")
        if named:
            node = named[0][1]
            is_list = isinstance(node, yaml.SequenceNode)
            for at, value in read.strings(node, EXTENDS, single_ok=True):
                dotted = f"{EXTENDS}[{node.value.index(at)}]" if is_list else EXTENDS
                self._base(file, at, dotted, value, stack)
        self.layers.append((file, own))

    def _base(self, file: Path, at: yaml.Node, dotted: str, value: str, stack: tuple[Path, ...]) -> None:
        read = self.read
        if (why := path_problem(value)) is not None:
            read.error(at, dotted, f"the path {why}")
            return
        target = Path(os.path.normpath(file.parent / os.path.expanduser(value)))
        ident = _identity(target)
        if ident in stack:
            cycle = " -> ".join(display_path(p) for p in (*stack[stack.index(ident):], ident))
            read.error(at, dotted, f"{value!r} extends itself: {cycle}")
            return
        if any(_identity(f) == ident for f, _ in self.layers):
            return  # already merged (two files extend the same base): once, where first named
        shown = display_path(target)
        try:
            text = read_text(target)
        except FileNotFoundError:
            read.error(at, dotted, f"{value!r} ({shown}) does not exist")
            return
        except (OSError, UnicodeDecodeError) as exc:
            read.error(at, dotted, f"{value!r} ({shown}): cannot read it: {reason(exc)}")
            return
        try:
            root = compose_text(text, shown, origin=target)
        except YamlProblem as exc:  # env.yaml's own summary does not say it: each base's does
            read.problems.append(Problem(exc.problem.where, f"not valid YAML: {exc.problem.message}"))
            return
        if root is None:
            self.layers.append((target, yaml.MappingNode("tag:yaml.org,2002:map", [])))
            return  # an empty file adds nothing
        self.add(target, root, (*stack, ident))

    def merged(self) -> yaml.Node:
        """The layers applied in order; the first one normalized (``KEY+`` set, ``KEY-`` refused)."""
        root: yaml.Node | None = None
        for _, own in self.layers:
            root = self.read.overlay(root, own)
        assert root is not None  # env.yaml itself is always a layer
        return root


def _compose_layers(file: Path, read: NodeReader) -> Layers:
    """env.yaml and everything it extends, merged; problems in the layers go to ``read``.

    Raises :class:`SpecError` when env.yaml itself cannot be read, is not YAML or is empty.
    """
    shown = display_path(file)
    text = _read_file(file)
    try:
        root = compose_text(text, shown, origin=file)
    except YamlProblem as exc:
        raise SpecError(f"{shown} is not valid YAML", [exc.problem]) from None
    if root is None:
        raise SpecError(f"{shown} is empty", tip="see README.md for an annotated example")
    layering = _Layering(read)
    layering.add(file, root, (_identity(file),))
    files = tuple(dict.fromkeys(f for f, _ in layering.layers))
    return Layers(file=file, files=files, root=layering.merged())


def _spec_file(file: Path | str) -> Path:
    if (why := path_problem(str(file))) is not None:
        raise SpecError(f"the env.yaml path {why}")
    return Path(file).absolute()


def _raise_problems(file: Path, problems: list[Problem]) -> None:
    if problems:
        count = len(problems)
        raise SpecError(f"{display_path(file)}: {count} problem{'s' if count > 1 else ''}", problems,
                        tip="fix these and run again; README.md documents every key")


def load_layers(file: Path | str) -> Layers:
    """env.yaml merged with the files it ``extends``, not validated against the schema.

    What ``pinfold config`` shows. Raises :class:`SpecError` with every problem of the
    layering: unreadable or invalid files, a cycle, ``KEY+``/``KEY-`` on what is not a list.
    """
    file = _spec_file(file)
    read = NodeReader(file)
    layers = _compose_layers(file, read)
    _raise_problems(file, read.problems)
    return layers


def load_spec(file: Path | str, *, purpose: Purpose = "build") -> Spec:
    """Read and validate env.yaml (merged with what it ``extends``) and both locks; raise
    :class:`SpecError` with every problem.

    ``purpose`` says what must exist (see the module docstring). Nothing is written.
    """
    file = _spec_file(file)
    loader = _Loader(file, purpose)
    read = loader.read
    layers = _compose_layers(file, read)
    root = layers.root
    top = read.mapping(root, "", _TOP_KEYS)

    if "version" in top:
        version = read.whole_number(top["version"], "version")
        if version is not None and version != SCHEMA_VERSION:
            read.error(top["version"], "version",
                       f"schema version {version} is not supported (this pinfold reads {SCHEMA_VERSION})")

    def required(key: str) -> yaml.Node | None:
        if key not in top and isinstance(root, yaml.MappingNode):
            read.error(root, key, "missing (required)")
        return top.get(key)

    python = loader.python(top.get("python"))
    node = required("path")
    env_dir = loader.env_dir(node) if node is not None else None
    node = required("index")
    index = loader.index(node) if node is not None else IndexSpec()
    node = required("requirements")
    runtime = loader.lock(node, "requirements") if node is not None else None
    node = top.get("build_requirements")
    build = loader.lock(node, "build_requirements") if node is not None else None
    develop = loader.develop(top["develop"]) if "develop" in top else []
    final = loader.final(top["final"]) if "final" in top else FinalSpec()
    installer = loader.installer(top["installer"]) if "installer" in top else "pip"
    compile_ = loader.opt(top, "compile", "compile", read.boolean, True)
    needs: dict[str, NeedsSpec | None] = {}
    if loader.strict:
        needs = {key: loader.needs(top[key], key) for key in ("needs", "build_needs") if key in top}

    if env_dir is not None and loader.strict:
        inputs = [*(("env.yaml" if f == file else "a file env.yaml extends", f) for f in layers.files),
                  *(("a wheelhouse", p) for p in index.find_links),
                  *(("a lock", lk.path) for lk in (runtime, build) if lk is not None),
                  *(("a develop tree", p) for p in develop),
                  *(("a needs file", ns.file) for ns in needs.values() if ns is not None and ns.file)]
        _overlaps(loader, top["path"], env_dir, inputs, index.find_links)

    _raise_problems(file, read.problems)
    assert env_dir is not None and runtime is not None
    return Spec(file=file, layers=layers.files, python=python, path=env_dir, index=index,
                requirements=runtime,
                build_requirements=build, develop=tuple(develop), final=final,
                needs=needs.get("needs"), build_needs=needs.get("build_needs"),
                installer=installer, compile=compile_)

