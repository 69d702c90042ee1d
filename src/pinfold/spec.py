"""env.yaml -> frozen dataclasses, with every problem located and reported together.

The YAML is *composed* with the safe loader (never constructed with a full loader),
so each value keeps its line and column for error messages.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import yaml

from .errors import Problem, SpecError
from .locks import Lock, parse_lock
from .paths import env_path, find_python

__all__ = [
    "FinalSpec",
    "IndexSpec",
    "NeedsSpec",
    "PluginCacheSpec",
    "ProbeSpec",
    "ScriptProbe",
    "Spec",
    "display_path",
    "load_spec",
]

SCHEMA_VERSION = 1
_T = TypeVar("_T")


def display_path(path: Path) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexSpec:
    """The only places artifacts may come from."""

    #: Local folders of wheels and sdists (pip ``--find-links``), absolute.
    find_links: tuple[Path, ...] = ()
    #: A PEP 503 simple index the user runs (pypiserver, devpi), or None.
    url: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PluginCacheSpec:
    """Options of the Twisted plugin-cache stage."""

    #: Run the stage at all (it also runs only when Twisted is installed).
    enabled: bool = True
    #: Plugin packages beyond ``twisted.plugins`` and those found automatically.
    packages: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ScriptProbe:
    """A console script (or any command) to run: an argv list, never a shell string."""

    argv: tuple[str, ...]
    timeout: float = 60.0
    where: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeSpec:
    """Options of the sanity probes (the last stage, and ``pinfold check``)."""

    enabled: bool = True
    #: Reactor name for the consumer-bootstrap probe (``installReactor(name)``).
    reactor: str = "poll"
    #: Plugin modules allowed to install the reactor on import (a warning, not a failure).
    allow_reactor_import: tuple[str, ...] = ()
    #: Modules that must import.
    imports: tuple[str, ...] = ()
    #: Console scripts that must run and exit 0.
    scripts: tuple[ScriptProbe, ...] = ()
    #: Any other command to run inside the environment (argv lists).
    commands: tuple[ScriptProbe, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class FinalSpec:
    """Options of the final stages."""

    plugin_caches: PluginCacheSpec = field(default_factory=PluginCacheSpec)
    probes: ProbeSpec = field(default_factory=ProbeSpec)


@dataclass(frozen=True, kw_only=True, slots=True)
class NeedsSpec:
    """Top-level needs that ``pinfold lock`` resolves: a requirements.in-style file or a list."""

    #: The env.yaml key: ``needs`` or ``build_needs``.
    key: str
    #: The requirements.in-style file (absolute), or None for an inline list.
    file: Path | None = None
    #: The inline list, as written.
    items: tuple[str, ...] = ()
    #: ``env.yaml:LINE:COL`` of the file name, or of each inline item.
    where: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Spec:
    """A parsed, validated env.yaml. Paths are absolute."""

    #: The env.yaml file itself.
    file: Path
    #: The interpreter the environment is for, as written (or the one running pinfold).
    python: str
    #: Where the environment lives.
    path: Path
    index: IndexSpec
    #: The runtime lock and the build lock, parsed.
    requirements: Lock
    build_requirements: Lock | None
    #: Local source trees installed editable.
    develop: tuple[Path, ...] = ()
    final: FinalSpec = field(default_factory=FinalSpec)
    #: The top-level needs and extra build needs the locks are compiled from (``pinfold lock``).
    needs: NeedsSpec | None = None
    build_needs: NeedsSpec | None = None
    #: The installer backend: ``pip`` (default) or ``uv``; both equally hermetic.
    installer: Literal["pip", "uv"] = "pip"
    #: Byte-compile the environment once after install and develop (in parallel).
    compile: bool = True

    @property
    def root(self) -> Path:
        """The folder of env.yaml: relative paths in it start here."""
        return self.file.parent


# --- located reading -------------------------------------------------------------------


class _Reader:
    """Walks composed YAML nodes, collecting located problems instead of raising."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.shown = display_path(file)
        self.problems: list[Problem] = []
        self._construct = yaml.constructor.SafeConstructor()

    def where(self, node: yaml.Node) -> str:
        mark = node.start_mark
        return f"{self.shown}:{mark.line + 1}:{mark.column + 1}"

    def error(self, node: yaml.Node, key: str, message: str) -> None:
        self.problems.append(Problem(self.where(node), f"{key}: {message}" if key else message))

    def mapping(self, node: yaml.Node, key: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        """The keys of a mapping node; unknown keys are errors with a close match."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, key, f"expected a mapping, got {_kind(node)}")
            return {}
        out: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            name = knode.value if isinstance(knode, yaml.ScalarNode) else None
            dotted = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str) or name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                known = ", ".join(allowed)
                self.error(knode, dotted, f"unknown key (known keys: {known}){hint}")
            elif name in out:
                self.error(knode, dotted, "duplicate key")
            else:
                out[name] = vnode
        return out

    def scalar(self, node: yaml.Node, key: str, kind: type[_T], what: str) -> _T | None:
        if isinstance(node, yaml.ScalarNode):
            value = self._construct.construct_object(node)
            # bool is an int in Python: do not accept `true` where a number is meant.
            if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
                return value
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)  # type: ignore[return-value]
        self.error(node, key, f"expected {what}, got {_kind(node)}")
        return None

    def string(self, node: yaml.Node, key: str) -> str | None:
        value = self.scalar(node, key, str, "a string")
        if value is not None and not value.strip():
            self.error(node, key, "must not be empty")
            return None
        return value

    def strings(self, node: yaml.Node, key: str, *, single_ok: bool = False) -> list[str]:
        """A list of strings (or one string, where ``single_ok``)."""
        if single_ok and isinstance(node, yaml.ScalarNode):
            value = self.string(node, key)
            return [value] if value is not None else []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, key, f"expected a list of strings, got {_kind(node)}")
            return []
        out = []
        for i, item in enumerate(node.value):
            value = self.string(item, f"{key}[{i}]")
            if value is not None:
                out.append(value)
        return out

    def items(self, node: yaml.Node, key: str) -> Iterator[tuple[str, yaml.Node]]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, key, f"expected a list, got {_kind(node)}")
            return
        for i, item in enumerate(node.value):
            yield f"{key}[{i}]", item

    def local_path(self, node: yaml.Node, key: str, value: str, *, kind: str) -> Path | None:
        """Resolve ``value`` relative to env.yaml; it must exist as ``kind`` (file or folder)."""
        path = (self.file.parent / os.path.expanduser(value)).resolve()
        ok = path.is_file() if kind == "file" else path.is_dir()
        if not ok:
            state = "does not exist" if not path.exists() else f"is not a {kind}"
            self.error(node, key, f"{value!r} ({display_path(path)}) {state}")
            return None
        return path


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    names = {"str": "a string", "int": "a number", "float": "a number", "bool": "true/false"}
    return "nothing" if tag == "null" else names.get(tag, repr(node.value))


def _resolve_python(reader: _Reader, node: yaml.Node | None) -> str:
    if node is None:
        return sys.executable
    value = reader.string(node, "python")
    if value is None:
        return sys.executable
    found = find_python(reader.file, value)
    if found is None and os.sep in value:
        reader.error(node, "python", f"{value!r} is not an executable file")
        return str(env_path(reader.file, value))
    if found is None:
        reader.error(node, "python", f"{value!r} is not on PATH; give a path or install it")
        return value
    return found


def _opt(reader: _Reader, nodes: dict[str, yaml.Node], key: str, dotted: str,
         read: Callable[[yaml.Node, str], _T | None], default: _T) -> _T:
    node = nodes.get(key)
    if node is None:
        return default
    value = read(node, dotted)
    return default if value is None else value


def _read_scripts(reader: _Reader, node: yaml.Node, key: str) -> tuple[ScriptProbe, ...]:
    out = []
    for dotted, item in reader.items(node, key):
        if isinstance(item, yaml.SequenceNode):
            argv = reader.strings(item, dotted)
            if argv:
                out.append(ScriptProbe(argv=tuple(argv), where=reader.where(item)))
            continue
        keys = reader.mapping(item, dotted, ("argv", "timeout"))
        if "argv" not in keys:
            if isinstance(item, yaml.MappingNode):
                reader.error(item, f"{dotted}.argv", "missing: give the command as a list")
            continue
        argv = reader.strings(keys["argv"], f"{dotted}.argv")
        timeout = _opt(reader, keys, "timeout", f"{dotted}.timeout",
                       lambda n, k: reader.scalar(n, k, float, "a number of seconds"), 60.0)
        if argv:
            out.append(ScriptProbe(argv=tuple(argv), timeout=timeout, where=reader.where(item)))
    return tuple(out)


def _read_final(reader: _Reader, node: yaml.Node) -> FinalSpec:
    top = reader.mapping(node, "final", ("plugin_caches", "probes"))
    caches = PluginCacheSpec()
    if "plugin_caches" in top:
        keys = reader.mapping(top["plugin_caches"], "final.plugin_caches", ("enabled", "packages"))
        caches = PluginCacheSpec(
            enabled=_opt(reader, keys, "enabled", "final.plugin_caches.enabled",
                         lambda n, k: reader.scalar(n, k, bool, "true or false"), True),
            packages=tuple(_opt(reader, keys, "packages", "final.plugin_caches.packages",
                                reader.strings, [])),
        )
    probes = ProbeSpec()
    if "probes" in top:
        k = "final.probes"
        keys = reader.mapping(top["probes"], k, ("enabled", "reactor", "allow_reactor_import",
                                                 "imports", "scripts", "commands"))
        probes = ProbeSpec(
            enabled=_opt(reader, keys, "enabled", f"{k}.enabled",
                         lambda n, d: reader.scalar(n, d, bool, "true or false"), True),
            reactor=_opt(reader, keys, "reactor", f"{k}.reactor", reader.string, "poll"),
            allow_reactor_import=tuple(_opt(reader, keys, "allow_reactor_import",
                                            f"{k}.allow_reactor_import", reader.strings, [])),
            imports=tuple(_opt(reader, keys, "imports", f"{k}.imports", reader.strings, [])),
            scripts=_opt(reader, keys, "scripts", f"{k}.scripts",
                         lambda n, d: _read_scripts(reader, n, d), ()),
            commands=_opt(reader, keys, "commands", f"{k}.commands",
                          lambda n, d: _read_scripts(reader, n, d), ()),
        )
    return FinalSpec(plugin_caches=caches, probes=probes)


def _read_needs(reader: _Reader, node: yaml.Node, key: str) -> NeedsSpec | None:
    """``needs``/``build_needs``: a requirements.in-style file, or an inline list of strings."""
    from .locking.needs import needs_problems  # here: pinfold.locking imports this module

    if isinstance(node, yaml.SequenceNode):
        items = reader.strings(node, key)
        if len(items) != len(node.value):
            return None
        ns = NeedsSpec(key=key, items=tuple(items), where=tuple(reader.where(n) for n in node.value))
    elif isinstance(node, yaml.ScalarNode) and isinstance(node.value, str) and node.tag.endswith(":str"):
        value = reader.string(node, key)
        if value is None or (path := reader.local_path(node, key, value, kind="file")) is None:
            return None
        ns = NeedsSpec(key=key, file=path, where=(reader.where(node),))
    else:
        reader.error(node, key, f"expected a requirements file or a list of requirements, got {_kind(node)}")
        return None
    problems = needs_problems(ns, reader.file)
    reader.problems.extend(problems)
    return None if problems else ns


_TOP_KEYS = ("version", "python", "path", "index", "requirements", "build_requirements",
             "develop", "final", "needs", "build_needs", "installer", "compile")
#: The values of ``installer:``, one per backend in pinfold.installers.
_INSTALLERS = ("pip", "uv")


def load_spec(file: Path | str, *, for_lock: bool = False) -> Spec:
    """Read and validate env.yaml and both locks; raise :class:`SpecError` with every problem.

    Locks that no longer match env.yaml's ``needs``/``build_needs`` are problems too.
    ``for_lock`` reads env.yaml as ``pinfold lock`` does: a lock file may be missing (it
    is read as empty) or stale (it is about to be rewritten). Nothing is written anywhere.
    """
    file = Path(file).absolute()
    shown = display_path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{shown}: no such file",
                        tip="pass the path of an env.yaml (default: ./env.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{shown}: cannot read it: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{shown} is not valid YAML", [Problem(where, problem)]) from None
    reader = _Reader(file)
    if root is None:
        raise SpecError(f"{shown} is empty", tip="see README.md for an annotated example")
    top = reader.mapping(root, "", _TOP_KEYS)

    if "version" in top:
        version = reader.scalar(top["version"], "version", int, "a number")
        if version is not None and version != SCHEMA_VERSION:
            reader.error(top["version"], "version",
                         f"schema version {version} is not supported (this pinfold reads {SCHEMA_VERSION})")

    def required(key: str) -> yaml.Node | None:
        if key not in top and isinstance(root, yaml.MappingNode):
            reader.error(root, key, "missing (required)")
        return top.get(key)

    python = _resolve_python(reader, top.get("python"))

    env_dir = Path()
    node = required("path")
    if node is not None and (value := reader.string(node, "path")) is not None:
        env_dir = env_path(file, value)
        if env_dir == file.parent or env_dir in file.parents:
            reader.error(node, "path", "must be a folder of its own, not env.yaml's folder or above")

    index = IndexSpec()
    node = required("index")
    if node is not None:
        keys = reader.mapping(node, "index", ("find_links", "url"))
        links = []
        if "find_links" in keys:
            kn = keys["find_links"]
            items = kn.value if isinstance(kn, yaml.SequenceNode) else [kn]
            for i, value in enumerate(reader.strings(kn, "index.find_links", single_ok=True)):
                at = items[i] if i < len(items) else kn
                dotted = f"index.find_links[{i}]" if isinstance(kn, yaml.SequenceNode) else "index.find_links"
                if "://" in value:
                    reader.error(at, dotted, f"{value!r} is a URL: find_links takes local folders; "
                                             "put a simple index under index.url")
                elif (p := reader.local_path(at, dotted, value, kind="folder")) is not None:
                    links.append(p)
        url = None
        if "url" in keys and (url := reader.string(keys["url"], "index.url")) is not None:
            if not url.startswith(("http://", "https://", "file://")):
                reader.error(keys["url"], "index.url",
                             f"{url!r} is not an http(s) or file URL of a PEP 503 simple index")
                url = None
            url = url.rstrip("/") + "/" if url else None
        if not keys.get("find_links") and "url" not in keys and isinstance(node, yaml.MappingNode):
            reader.error(node, "index", "no index given: set find_links (wheelhouse folders) "
                                        "and/or url (a local simple index)")
        index = IndexSpec(find_links=tuple(links), url=url)

    locks: dict[str, Lock | None] = {"requirements": None, "build_requirements": None}
    for key in locks:
        node = required(key) if key == "requirements" else top.get(key)
        if node is None or (value := reader.string(node, key)) is None:
            continue
        if for_lock and not (target := (file.parent / os.path.expanduser(value)).resolve()).exists():
            locks[key] = Lock(target, ())  # `pinfold lock` is about to write it
        elif (p := reader.local_path(node, key, value, kind="file")) is not None:
            lock, problems = parse_lock(p)
            reader.problems.extend(problems)
            locks[key] = lock

    develop = []
    if "develop" in top:
        dn = top["develop"]
        for i, value in enumerate(reader.strings(dn, "develop")):
            at = dn.value[i] if isinstance(dn, yaml.SequenceNode) else dn
            p = reader.local_path(at, f"develop[{i}]", value, kind="folder")
            if p is not None and not any((p / f).is_file() for f in ("pyproject.toml", "setup.py")):
                reader.error(at, f"develop[{i}]", f"{value!r} has no pyproject.toml or setup.py")
            elif p is not None:
                develop.append(p)

    final = _read_final(reader, top["final"]) if "final" in top else FinalSpec()

    installer: Literal["pip", "uv"] = "pip"
    if "installer" in top and (value := reader.string(top["installer"], "installer")) is not None:
        if value in _INSTALLERS:
            installer = "uv" if value == "uv" else "pip"
        else:
            reader.error(top["installer"], "installer",
                         f"{value!r} is not an installer (allowed: {', '.join(_INSTALLERS)})")
    compile_ = _opt(reader, top, "compile", "compile",
                    lambda n, k: reader.scalar(n, k, bool, "true or false"), True)

    needs = {key: _read_needs(reader, top[key], key) for key in ("needs", "build_needs") if key in top}

    if reader.problems:
        count = len(reader.problems)
        raise SpecError(f"{shown}: {count} problem{'s' if count > 1 else ''}", reader.problems,
                        tip="fix these and run again; README.md documents every key")
    runtime = locks["requirements"]
    assert runtime is not None
    spec = Spec(file=file, python=python, path=env_dir, index=index, requirements=runtime,
                build_requirements=locks["build_requirements"], develop=tuple(develop), final=final,
                needs=needs.get("needs"), build_needs=needs.get("build_needs"),
                installer=installer, compile=compile_)
    if needs and not for_lock:
        from .locking.needs import stale_problems

        if stale := stale_problems(spec):
            raise SpecError(f"{shown}: the locks do not match its needs", stale,
                            tip="run `pinfold lock` to update them (it keeps every other pin)")
    return spec

