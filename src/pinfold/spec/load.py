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

import keyword
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import yaml

from ..errors import Problem, SpecError
from ..locks import Lock, parse_lock
from ..needs import NeedsSpec, read_needs
from ..paths import display_path, env_path, file_url_path, find_python, path_problem, read_text, reason
from .model import (
    SCHEMA_VERSION,
    FinalSpec,
    GeneratedScript,
    IndexSpec,
    PluginCacheSpec,
    ProbeSpec,
    ScriptKind,
    ScriptProbe,
    Spec,
    TargetSpec,
)
from .yamlnodes import Located, NodeReader, YamlProblem, compose_text, kind_of

__all__ = ["EXTENDS", "TEST_RUNNER_ENTRY", "Layers", "Purpose", "load_layers", "load_spec",
           "valid_entry_point"]

#: What the caller will do with the spec; it decides which named things must exist.
Purpose = Literal["build", "lock", "fetch", "inspect"]

_T = TypeVar("_T")

_TOP_KEYS = ("version", "python", "path", "index", "requirements", "build_requirements",
             "develop", "final", "needs", "build_needs", "installer", "compile", "scripts", "bin_dir",
             "targets")
#: The values of ``installer:``, one per backend in pinfold.installers.
_INSTALLERS = ("pip", "uv")
#: The key naming the files a file builds on; read per file, never merged.
EXTENDS = "extends"
#: A (version, platform) target: CPython major.minor, Linux with a glibc-based platform.
_TARGET_VERSION = re.compile(r"3\.\d{1,2}")
_TARGET_PLATFORM = re.compile(r"(?:linux-(?P<m1>\w+)|manylinux_(?P<major>\d+)_(?P<minor>\d+)_(?P<m2>\w+))")
_PROBE_KEYS = ("enabled", "reactor", "allow_reactor_import", "imports", "scripts", "commands")
#: The keys of one ``scripts:`` entry; exactly one of the first four says what it runs.
_SCRIPT_KINDS: tuple[ScriptKind, ...] = ("entry_point", "console_script", "interpreter", "test_runner")
_SCRIPT_KEYS = ("name", *_SCRIPT_KINDS, "initialization", "arguments", "extra_paths", "environment",
                "working_directory", "probe")
#: A script's file name: plain, so it is the same in ``bin/``, in ``bin_dir`` and on a shell line.
_SCRIPT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
#: Names the environment's own ``bin/`` already uses (virtualenv's files).
_RESERVED = re.compile(r"python(\d+(\.\d+)?)?|activate.*|pydoc.*|deactivate.*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: zope.testrunner's entry point, what zc.recipe.testrunner's scripts call.
TEST_RUNNER_ENTRY = "zope.testrunner:run"


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
            folder = file_url_path(url)
            if folder is None or not folder.is_dir():
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

    def needs(self, node: yaml.Node, key: str, develop: Sequence[Path] = ()) -> NeedsSpec | None:
        """``needs``/``build_needs``: a requirements.in-style file, an inline list of strings, a
        pyproject.toml, or ``{pyproject: PATH, extras: [...], groups: [...]}``.

        ``develop``: the develop trees; a pyproject.toml of one of them is marked so
        (:attr:`NeedsSpec.develop_tree`): its own dependencies reach the lock through the tree.
        """
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
            if value.endswith("pyproject.toml"):
                ns = NeedsSpec(key=key, pyproject=path, where=(read.where(node),), origin=self.file.name,
                               develop_tree=key == "needs" and path.parent in develop)
            else:
                ns = NeedsSpec(key=key, file=path, where=(read.where(node),), origin=self.file.name)
        elif isinstance(node, yaml.MappingNode):
            keys = read.mapping(node, key, ("pyproject", "extras", "groups"))
            if "pyproject" not in keys:
                read.error(node, f"{key}.pyproject", "missing: name the pyproject.toml to read")
                return None
            value = read.string(keys["pyproject"], f"{key}.pyproject")
            if value is None:
                return None
            if os.path.basename(value.rstrip("/")) != "pyproject.toml" and path_problem(value) is None:
                try:  # a project's folder stands for its pyproject.toml
                    if (read.file_of(keys["pyproject"]).parent / os.path.expanduser(value)).is_dir():
                        value = os.path.join(value, "pyproject.toml")
                except OSError:
                    pass  # local_path names it
            path = self.local_path(keys["pyproject"], f"{key}.pyproject", value, kind="file")
            names = {part: read.strings(keys[part], f"{key}.{part}") if part in keys else []
                     for part in ("extras", "groups")}
            if path is None or any(not isinstance(keys[p], yaml.SequenceNode)
                                   or len(names[p]) != len(keys[p].value) for p in names if p in keys):
                return None
            ns = NeedsSpec(key=key, pyproject=path, where=(read.where(keys["pyproject"]),),
                           origin=self.file.name, develop_tree=key == "needs" and path.parent in develop,
                           extras=tuple(v for _, v in names["extras"]),
                           extras_where=tuple(read.where(n) for n, _ in names["extras"]),
                           groups=tuple(v for _, v in names["groups"]),
                           groups_where=tuple(read.where(n) for n, _ in names["groups"]))
        else:
            read.error(node, key, "expected a requirements file, a list of requirements, a "
                                  "pyproject.toml or {pyproject: PATH, extras: [...], groups: [...]}, "
                                  f"got {kind_of(node)}")
            return None
        problems = read_needs(ns, self.file.parent)[1]
        read.problems.extend(problems)
        return None if problems else ns

    def targets(self, node: yaml.Node) -> tuple[TargetSpec, ...]:
        """``targets``: interpreters (paths or names, like ``python``) and/or
        ``{python_version: "3.12", platform: linux-x86_64}`` pairs (``manylinux_2_28_aarch64``
        names the oldest glibc too; ``linux-ARCH`` means manylinux_2_17)."""
        read = self.read
        out: list[TargetSpec] = []
        for dotted, item in read.items(node, "targets"):
            if isinstance(item, yaml.ScalarNode):
                value = read.string(item, dotted)
                if value is None:
                    continue
                if (why := path_problem(value)) is not None:
                    read.error(item, dotted, f"the value {why}")
                    continue
                found = find_python(read.file_of(item), value)
                if found is None and self.strict:
                    read.error(item, dotted, f"{value!r} is not an executable file" if os.sep in value
                               else f"{value!r} is not on PATH; give a path or install it")
                    continue
                out.append(TargetSpec(python=found or value, label=value))
                continue
            keys = read.mapping(item, dotted, ("python_version", "platform"))
            if not isinstance(item, yaml.MappingNode):
                continue
            missing = [k for k in ("python_version", "platform") if k not in keys]
            if missing:
                read.error(item, f"{dotted}.{missing[0]}", "missing: a target is an interpreter, or "
                                                           "both python_version and platform")
                continue
            version = read.string(keys["python_version"], f"{dotted}.python_version")
            platform = read.string(keys["platform"], f"{dotted}.platform")
            if version is None or platform is None:
                continue
            if not _TARGET_VERSION.fullmatch(version):
                read.error(keys["python_version"], f"{dotted}.python_version",
                           f"{version!r} is not a CPython version like \"3.12\"")
                continue
            match = _TARGET_PLATFORM.fullmatch(platform)
            if match is None:
                read.error(keys["platform"], f"{dotted}.platform",
                           f"{platform!r} is not a platform pinfold can lock for: linux-x86_64, "
                           "linux-aarch64, or manylinux_2_N_MACHINE (Linux with glibc)")
                continue
            glibc = (int(match["major"]), int(match["minor"])) if match["major"] else (2, 17)
            out.append(TargetSpec(python_version=version, machine=match["m1"] or match["m2"],
                                  glibc=glibc, label=f"{version}/{platform}"))
        return tuple(out)

    def installer(self, node: yaml.Node) -> Literal["pip", "uv"]:
        value = self.read.string(node, "installer")
        if value is None:
            return "pip"
        if value not in _INSTALLERS:
            self.read.error(node, "installer",
                            f"{value!r} is not an installer (allowed: {', '.join(_INSTALLERS)})")
            return "pip"
        return "uv" if value == "uv" else "pip"

    # -- generated scripts (``scripts:``, ``bin_dir:``) ---------------------------------

    def bin_dir(self, node: yaml.Node) -> Path | None:
        """``bin_dir``: a folder for launchers, relative to the file that wrote it (env.yaml or a
        file it extends; created when missing)."""
        value = self.read.string(node, "bin_dir")
        if value is None:
            return None
        path = self.local_path(node, "bin_dir", value, kind="folder", must_exist=False)
        if path is not None and self.strict and path.exists() and not path.is_dir():
            self.read.error(node, "bin_dir", f"{value!r} ({display_path(path)}) is not a folder")
            return None
        return path

    def generated_scripts(self, node: yaml.Node) -> tuple[GeneratedScript, ...]:
        """``scripts:``: every entry valid on its own, and no name twice."""
        out: list[GeneratedScript] = []
        seen: dict[str, str] = {}
        for dotted, item in self.read.items(node, "scripts"):
            script = self.generated_script(item, dotted)
            if script is None:
                continue
            if script.name in seen:
                self.read.error(item, f"{dotted}.name",
                                f"{script.name!r} is generated twice (first at {seen[script.name]})")
                continue
            seen[script.name] = script.where
            out.append(script)
        return tuple(out)

    def generated_script(self, item: yaml.Node, dotted: str) -> GeneratedScript | None:
        """One ``scripts:`` entry, or None (every problem recorded)."""
        read = self.read
        if not isinstance(item, yaml.MappingNode):
            read.error(item, dotted, f"expected a mapping (name, entry_point, ...), got {kind_of(item)}")
            return None
        before = len(read.problems)
        keys = read.mapping(item, dotted, _SCRIPT_KEYS)
        kinds = [k for k in _SCRIPT_KINDS if k in keys]
        if len(kinds) != 1:
            read.error(item, dotted, "give exactly one of entry_point, console_script, interpreter, "
                                     f"test_runner (got {', '.join(kinds) or 'none'})")
            return None
        kind = kinds[0]
        target = ""
        test_paths: tuple[Path, ...] = ()
        defaults: tuple[str, ...] = ()
        name = read.string(keys["name"], f"{dotted}.name") if "name" in keys else None
        if kind == "entry_point":
            target = read.string(keys[kind], f"{dotted}.entry_point") or ""
            if target and not valid_entry_point(target):
                read.error(keys[kind], f"{dotted}.entry_point",
                           f"{target!r} is not module:callable (e.g. twisted.scripts.twistd:run)")
            if "name" not in keys:
                read.error(item, f"{dotted}.name", "missing: an entry point needs a script name")
        elif kind == "console_script":
            target = read.string(keys[kind], f"{dotted}.console_script") or ""
            # pip writes the console script itself into bin/ under its own name; the generated
            # one needs another, or removing it from env.yaml later would remove pip's too.
            if target and (name is None or name == target):
                read.error(keys.get("name") or item, f"{dotted}.name",
                           f"give the generated script a name other than {target!r}: pip already "
                           f"writes {target!r} into the environment's bin/")
        elif kind == "interpreter":
            name = read.string(keys[kind], f"{dotted}.interpreter")
            if "name" in keys:
                read.error(keys["name"], f"{dotted}.name", "the interpreter's name is the value of "
                                                           "`interpreter:`; remove `name`")
            if "arguments" in keys:
                read.error(keys["arguments"], f"{dotted}.arguments", "an interpreter takes its "
                                                                     "arguments from the command line")
        else:
            target = TEST_RUNNER_ENTRY
            name = name or "test"
            test_paths, defaults = self.test_runner(keys[kind], f"{dotted}.test_runner")
            if "arguments" in keys:
                read.error(keys["arguments"], f"{dotted}.arguments", "a test runner's arguments are "
                                                                     "test_runner.defaults")
        if name is not None and not self.script_name(keys.get("name") or keys.get(kind) or item,
                                                     f"{dotted}.name", name):
            name = None
        initialization = ""
        if "initialization" in keys:
            initialization = self.python_source(keys["initialization"], f"{dotted}.initialization",
                                                "exec") or ""
        arguments = ""
        if "arguments" in keys and kind in ("entry_point", "console_script"):
            arguments = self.python_source(keys["arguments"], f"{dotted}.arguments", "eval") or ""
        extra = []
        if "extra_paths" in keys:
            kn = keys["extra_paths"]
            for at, value in read.strings(kn, f"{dotted}.extra_paths"):
                at_key = f"{dotted}.extra_paths[{kn.value.index(at)}]"
                if (p := self.local_path(at, at_key, value, kind="folder")) is not None:
                    extra.append(p)
        environment = self.script_environment(keys["environment"], f"{dotted}.environment") \
            if "environment" in keys else ()
        workdir = None
        if "working_directory" in keys:
            key = f"{dotted}.working_directory"
            if (wd := read.string(keys["working_directory"], key)) is not None:
                workdir = self.local_path(keys["working_directory"], key, wd, kind="folder")
        probe = None
        if "probe" in keys:
            pn = keys["probe"]
            args = read.strings(pn, f"{dotted}.probe")
            if isinstance(pn, yaml.SequenceNode) and len(args) == len(pn.value):
                probe = tuple(v for _, v in args)
        if len(read.problems) > before or name is None:
            return None
        return GeneratedScript(name=name, kind=kind, target=target, initialization=initialization,
                               arguments=arguments, extra_paths=tuple(dict.fromkeys(extra)),
                               environment=environment, working_directory=workdir,
                               test_paths=test_paths, defaults=defaults, probe=probe,
                               where=read.where(item))

    def script_name(self, node: yaml.Node, key: str, name: str) -> bool:
        """A plain file name that virtualenv's own files do not use."""
        if not _SCRIPT_NAME.fullmatch(name):
            self.read.error(node, key, f"{name!r} is not a plain file name (letters, digits, "
                                       "_ . + -; no slash, not starting with . or -)")
            return False
        if _RESERVED.fullmatch(name):
            self.read.error(node, key, f"{name!r} is one of the environment's own files in bin/")
            return False
        return True

    def test_runner(self, node: yaml.Node, key: str) -> tuple[tuple[Path, ...], tuple[str, ...]]:
        """``test_runner: {paths: [...], defaults: [...]}``: the --test-path folders, the defaults."""
        keys = self.read.mapping(node, key, ("paths", "defaults"))
        paths = []
        if "paths" not in keys:
            if isinstance(node, yaml.MappingNode):
                self.read.error(node, f"{key}.paths", "missing: give the folders holding the tests "
                                                      "(a develop tree, or its src/)")
        else:
            pn = keys["paths"]
            for at, value in self.read.strings(pn, f"{key}.paths", single_ok=True):
                at_key = f"{key}.paths[{pn.value.index(at)}]" if isinstance(pn, yaml.SequenceNode) \
                    else f"{key}.paths"
                if (p := self.local_path(at, at_key, value, kind="folder")) is not None:
                    paths.append(p)
        defaults: list[str] = []
        if "defaults" in keys:
            defaults = self.read.string_list(keys["defaults"], f"{key}.defaults")
        return tuple(paths), tuple(defaults)

    def script_environment(self, node: yaml.Node, key: str) -> tuple[tuple[str, str], ...]:
        """``environment: {NAME: value}``: string values (quote numbers), valid variable names."""
        out: list[tuple[str, str]] = []
        if not isinstance(node, yaml.MappingNode):
            self.read.error(node, key, f"expected a mapping of variable names to strings, "
                                       f"got {kind_of(node)}")
            return ()
        for knode, vnode in node.value:
            name = knode.value if isinstance(knode, yaml.ScalarNode) else None
            if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
                self.read.error(knode, key, f"{str(name)[:60]!r} is not an environment variable name")
                continue
            value = self.read.scalar(vnode, f"{key}.{name}", str, "a string (quote numbers)")
            if value is not None:
                if "\0" in value:
                    self.read.error(vnode, f"{key}.{name}", "contains a NUL byte")
                    continue
                out.append((name, value))
        if len({n for n, _ in out}) != len(out):
            self.read.error(node, key, "a variable is given twice")
        return tuple(out)

    def python_source(self, node: yaml.Node, key: str, mode: Literal["exec", "eval"]) -> str | None:
        """Python source (``exec``) or an expression (``eval``) that compiles; a SyntaxError is
        reported at its own line in env.yaml."""
        value = self.read.string(node, key)
        if value is None:
            return None
        try:
            compile(value, f"<{key}>", mode, dont_inherit=True)
        except SyntaxError as exc:
            self.read.problems.append(Problem(self.source_where(node, exc), f"{key}: not valid Python: "
                                              f"{exc.msg} (line {exc.lineno} of the value)"))
            return None
        except ValueError as exc:  # a NUL byte
            self.read.error(node, key, f"not valid Python: {exc}")
            return None
        return value

    def source_where(self, node: yaml.Node, exc: SyntaxError) -> str:
        """Where the line ``exc`` names was written, in the file that wrote ``node`` (env.yaml or
        a file it extends; exact for ``|`` block scalars)."""
        mark, shown = node.start_mark, self.read.shown_of(node)
        line = (exc.lineno or 1) - 1
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            row = mark.line + 1 + line  # the block starts on the line after the indicator
            lines = (mark.buffer or "").splitlines()
            text = lines[row] if row < len(lines) else ""
            col = len(text) - len(text.lstrip(" ")) + max((exc.offset or 1), 1)
            return f"{shown}:{row + 1}:{col}"
        if line == 0:
            return f"{shown}:{mark.line + 1}:{mark.column + 1 + max((exc.offset or 1) - 1, 0)}"
        return f"{shown}:{mark.line + 1 + line}:1"


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


def valid_entry_point(value: str) -> bool:
    """``module:attr``, both dotted Python names (``twisted.scripts.twistd:run``)."""
    module, sep, attr = value.partition(":")

    def dotted(name: str) -> bool:
        return all(part.isidentifier() and not keyword.iskeyword(part) for part in name.split("."))

    return bool(sep) and dotted(module) and dotted(attr)


def _bin_dir_overlaps(loader: _Loader, node: yaml.Node, bin_dir: Path, env_dir: Path) -> None:
    """Launchers live outside the environment: ``path`` is replaced by every build."""
    real = env_dir.parent.resolve() / env_dir.name
    if bin_dir == real or real in bin_dir.parents or bin_dir in real.parents:
        loader.read.error(node, "bin_dir", f"{display_path(bin_dir)} overlaps the environment "
                                           f"{display_path(env_dir)}: choose a folder of its own")
    elif bin_dir == loader.file.parent:
        loader.read.error(node, "bin_dir", "must be a folder of its own, not env.yaml's folder")


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
    scripts = loader.generated_scripts(top["scripts"]) if "scripts" in top else ()
    bin_dir = loader.bin_dir(top["bin_dir"]) if "bin_dir" in top else None
    targets = loader.targets(top["targets"]) if "targets" in top else ()
    needs: dict[str, NeedsSpec | None] = {}
    if loader.strict:
        needs = {key: loader.needs(top[key], key, develop) for key in ("needs", "build_needs")
                 if key in top}

    if env_dir is not None and loader.strict:
        inputs = [*(("env.yaml" if f == file else "a file env.yaml extends", f) for f in layers.files),
                  *(("a wheelhouse", p) for p in index.find_links),
                  *(("a lock", lk.path) for lk in (runtime, build) if lk is not None),
                  *(("a develop tree", p) for p in develop),
                  *(("a needs file", f) for ns in needs.values() if ns is not None
                    for f in (ns.file, ns.pyproject) if f is not None)]
        _overlaps(loader, top["path"], env_dir, inputs, index.find_links)
        if bin_dir is not None:
            _bin_dir_overlaps(loader, top["bin_dir"], bin_dir, env_dir)

    _raise_problems(file, read.problems)
    assert env_dir is not None and runtime is not None
    return Spec(file=file, layers=layers.files, python=python, path=env_dir, index=index,
                requirements=runtime,
                build_requirements=build, develop=tuple(develop), final=final,
                needs=needs.get("needs"), build_needs=needs.get("build_needs"),
                installer=installer, compile=compile_, scripts=scripts, bin_dir=bin_dir,
                targets=targets)

