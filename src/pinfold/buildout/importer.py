"""A read Buildout configuration mapped to env.yaml, a needs file and a constraints file.

What has an equivalent is carried over (see README, "Coming from Buildout"); everything
else is a :class:`Finding` naming its ``file:line`` and what to do instead. The files'
bytes depend on the configuration alone: importing twice gives identical files.
"""

from __future__ import annotations

import ast
import json
import os
import re
import tomllib
from collections.abc import Sequence
from configparser import ConfigParser
from configparser import Error as ConfigParserError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import SpecError
from ..paths import display_path, read_text, reason, write_atomic
from .config import BuildoutConfig, Value, is_url

__all__ = ["Finding", "ImportResult", "import_buildout", "nearest_version", "sort_findings", "write_import"]

ENV_YAML = "env.yaml"
NEEDS = "requirements/runtime.in"
CONSTRAINTS = "requirements/constraints.txt"
#: The needs option that makes `pinfold lock` refuse to pick unpinned versions.
REQUIRE_PINS = "--require-pins"

Level = Literal["error", "warning", "note"]

_EGG_RECIPES = ("zc.recipe.egg", "z3c.recipe.scripts")
_TESTRUNNER = "zc.recipe.testrunner"
_BUILDOUT_ONLY = {"zc.buildout", "mr.developer"}
#: [buildout] options with no meaning for pinfold, and why.
_NO_EQUIVALENT = {
    "show-picked-versions": "pinfold lock writes every pin into the lock; nothing is picked at build time",
    "update-versions-file": "pinfold lock writes every pin into the lock",
    "newest": "pinfold lock resolves; a build never does (--upgrade moves pins)",
    "prefer-final": "pinfold lock resolves like pip: final releases unless --pre is in the needs",
    "eggs-directory": "one environment per env.yaml, versioned on disk",
    "develop-eggs-directory": "develop trees are installed editable into the environment",
    "parts-directory": "one environment per env.yaml",
    "install-from-cache": "a build is always offline, from the index in env.yaml",
    "offline": "a build is always offline",
    "relative-paths": "virtualenvs do not relocate",
    "include-site-packages": "the environment holds exactly the lock",
    "allowed-eggs-from-site-packages": "the environment holds exactly the lock",
    "exec-sitecustomize": "the environment holds exactly the lock",
    "executable": "give env.yaml `python:` the interpreter to use",
    "python": "give env.yaml `python:` the interpreter to use",
    "unzip": "pip installs unzipped",
    "allow-hosts": "the index comes from env.yaml alone",
    "use-dependency-links": "the index comes from env.yaml alone",
    "socket-timeout": "only pinfold fetch and lock --upstream go online",
    "log-level": "pinfold -v streams pip's output",
    "installed": "pinfold records the environment in pinfold.json",
}
_BUILDOUT_KNOWN = {"parts", "develop", "extends", "optional-extends", "versions", "allow-picked-versions",
                   "find-links", "index", "download-cache", "bin-directory", "extensions", "directory",
                   "auto-checkout", "always-checkout", "sources", "sources-dir", "eggs",
                   *_NO_EQUIVALENT}
_EGG_KNOWN = {"recipe", "eggs", "scripts", "entry-points", "interpreter", "initialization", "arguments",
              "extra-paths", "dependent-scripts"}
_TEST_KNOWN = {"recipe", "eggs", "script", "defaults", "environment", "initialization",
               "working-directory", "extra-paths"}
_PART_IGNORED = {"include-site-packages": "the environment holds exactly the lock",
                 "exec-sitecustomize": "the environment holds exactly the lock",
                 "allowed-eggs-from-site-packages": "the environment holds exactly the lock",
                 "relative-paths": "virtualenvs do not relocate",
                 "script-initialization": "give each script its own `initialization`",
                 "find-links": "the index comes from env.yaml alone",
                 "index": "the index comes from env.yaml alone",
                 "python": "one interpreter per env.yaml (`python:`)",
                 "executable": "one interpreter per env.yaml (`python:`)"}
_RECIPE_TIPS = {
    "plone.recipe.command": "run the command from your deployment tool or a Makefile after `pinfold build`",
    "collective.recipe.template": "render the template with your deployment tool",
    "plone.recipe.zope2instance": "its eggs are in the needs; write zope.conf and the instance "
                                  "script with your deployment tool (or a `scripts:` entry)",
    "collective.recipe.omelette": "the develop trees and site-packages are browsable as they are",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: what could not be carried over (or what changed), where, and
    what to do."""

    level: Level
    where: str
    message: str
    suggestion: str = ""

    def to_json(self) -> dict[str, str]:
        """For ``--json``."""
        return {"level": self.level, "where": self.where, "message": self.message,
                "suggestion": self.suggestion}


@dataclass(slots=True)
class ImportResult:
    """The files to write (relative name -> text), what was mapped, and the report."""

    source: Path
    output_dir: Path
    files: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    mapping: dict[str, Any] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A part that defines scripts or eggs could not be (wholly) mapped: exit 1."""
        return any(f.level == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """For ``--json``: the mapping, the files and the report."""
        return {"source": str(self.source), "output_dir": str(self.output_dir), "files": self.files,
                "written": self.written, "mapping": self.mapping,
                "report": [f.to_json() for f in self.findings]}


def nearest_version(text: str) -> str | None:
    """The PEP 440 form of a Buildout version that is not one, when one is close
    (``13.0.0-p2`` -> ``13.0.0.post2``, ``1.4.0dev-gary-r102684`` -> ``1.4.0.dev0+gary.r102684``)."""
    candidates = [re.sub(r"[-_.]?p(\d+)$", r".post\1", text)]
    for cut in range(len(text), 0, -1):
        head, rest = text[:cut], text[cut:]
        try:
            Version(head)
        except InvalidVersion:
            continue
        local = re.sub(r"[^A-Za-z0-9]+", ".", rest).strip(".")
        candidates.append(f"{head}+{local}" if local else head)
        break
    for c in candidates:
        try:
            return str(Version(c))
        except InvalidVersion:
            continue
    return None


class _Importer:
    def __init__(self, cfg: BuildoutConfig, out: Path) -> None:
        self.cfg = cfg
        self.out = out
        self.findings: list[Finding] = [Finding("note", w, m, s) for w, m, s in cfg.notes]
        self.needs: dict[str, str] = {}  # normalized requirement -> the part's comment
        self.needs_order: list[tuple[str, str]] = []
        self.develop: list[tuple[str, str]] = []  # (path as written in env.yaml, comment)
        self.develop_names: dict[str, str] = {}  # canonical name -> env.yaml path
        self.find_links: list[tuple[str, str]] = []
        self.scripts: list[tuple[str, list[str]]] = []  # (comment, yaml lines of one entry)
        self.script_names: set[str] = set()
        self.require_pins = False
        self.used_only_by_buildout: set[str] = set(_BUILDOUT_ONLY)
        self.mapping: dict[str, Any] = {"parts": {}}

    def report(self, level: Level, where: str, message: str, suggestion: str = "") -> None:
        self.findings.append(Finding(level, where, message, suggestion))

    # -- paths ------------------------------------------------------------------------------

    def local(self, text: str) -> Path:
        path = Path(text)
        return path if path.is_absolute() else self.cfg.directory / path

    def rel(self, path: Path) -> str:
        return Path(os.path.relpath(os.path.normpath(path), self.out)).as_posix()

    # -- [buildout] -------------------------------------------------------------------------

    def buildout(self) -> None:
        cfg = self.cfg
        section = cfg.section("buildout")
        for key, value in sorted(section.items()):
            if key in _NO_EQUIVALENT:
                self.report("note", value.where, f"[buildout] {key}: no equivalent ({_NO_EQUIVALENT[key]})",
                            "nothing to do")
            elif key not in _BUILDOUT_KNOWN and not key.startswith("<"):
                self.report("warning", value.where, f"[buildout] {key}: no equivalent in pinfold",
                            "see README, Coming from Buildout")
        v = section.get("allow-picked-versions")
        if v is not None and v.text.strip().lower() in ("false", "no", "off", "0"):
            self.require_pins = True
            self.report("note", v.where, "allow-picked-versions = false: the needs say --require-pins, "
                                         "so `pinfold lock` refuses to pick a version the constraints "
                                         "do not pin")
        for text, at in (section["develop"].words() if "develop" in section else []):
            tree = self.local(text)
            if not tree.is_dir():
                self.report("error", at, f"develop {text}: {self.rel(tree)} is not a folder",
                            "check out the tree there, or remove it from develop")
                continue
            shown = self.rel(tree)
            self.develop.append((shown, f"[buildout] develop ({at})"))
            if (name := _project_name(tree)) is not None:
                self.develop_names[canonicalize_name(name)] = shown
        self.index(section)
        self.extensions(section)
        if (bd := section.get("bin-directory")) is not None:
            self.bin_dir = self.rel(self.local(bd.text.strip()))
        else:
            self.bin_dir = self.rel(self.cfg.directory / "bin")

    def index(self, section: dict[str, Value]) -> None:
        for key in ("find-links", "download-cache"):
            for text, at in (section[key].words() if key in section else []):
                if is_url(text) and not text.startswith("file://"):
                    self.report("warning", at, f"{key} {text}: a URL, not a local index",
                                "`pinfold lock --upstream` fills the wheelhouse instead; or add a local "
                                "mirror to index.find_links")
                    continue
                folder = self.local(text.removeprefix("file://"))
                if key == "download-cache" and (folder / "dist").is_dir():
                    folder = folder / "dist"  # Buildout keeps the distributions in dist/
                if not folder.is_dir():
                    self.report("warning", at, f"{key} {text}: {self.rel(folder)} is not a folder",
                                "create it, or drop it")
                    continue
                self.find_links.append((self.rel(folder), f"[buildout] {key} ({at})"))
                eggs = sorted(p.name for p in folder.iterdir() if p.suffix == ".egg")
                if eggs:
                    self.report("warning", at, f"{key} {self.rel(folder)} holds eggs, which pip cannot "
                                               "install: " + ", ".join(eggs),
                                "put a wheel or an sdist of each there instead")
        if (v := section.get("index")) is not None and v.text.strip():
            self.report("warning", v.where, f"index {v.text.strip()}: not used as a local index",
                        "`pinfold lock --upstream URL` resolves against it; or set index.url to a "
                        "simple index you run")
        if not self.find_links:
            self.find_links.append(("wheelhouse", "no local index in the configuration: "
                                                  "`pinfold lock --upstream` and `pinfold fetch` fill it"))
            self.report("note", self.cfg.files[0], "the configuration names no local index: env.yaml gets "
                                                   "index.find_links [wheelhouse]",
                        "`pinfold lock --upstream` creates and fills it")

    def extensions(self, section: dict[str, Value]) -> None:
        for text, at in (section["extensions"].words() if "extensions" in section else []):
            self.used_only_by_buildout.add(text)
            if text == "mr.developer":
                self.report("note", at, "extension mr.developer: its local checkouts become develop trees",
                            "clone the other sources yourself")
                self.mr_developer(section)
            else:
                self.report("warning", at, f"extension {text}: Buildout extensions do not apply to pinfold",
                            "drop it")

    def mr_developer(self, section: dict[str, Value]) -> None:
        sources = self.cfg.section(section["sources"].text.strip() if "sources" in section else "sources")
        src = self.local(section["sources-dir"].text.strip() if "sources-dir" in section else "src")
        wanted = [w for k in ("auto-checkout", "always-checkout") if k in section for w in section[k].words()]
        names = [n for n, _ in wanted]
        if "*" in names:
            wanted = [(n, v.where) for n, v in sorted(sources.items())]
        known = {self.rel(self.local(p)) for p, _ in self.develop}
        for name, at in wanted:
            if name not in sources:
                self.report("warning", at, f"auto-checkout {name}: no such entry in [sources]")
                continue
            tree = src / name
            spec = sources[name].text.split()
            for word in spec[2:]:
                if word.startswith("path="):
                    tree = self.local(word[5:]) / name
            shown = self.rel(tree)
            if (tree / "setup.py").exists() or (tree / "pyproject.toml").exists():
                if shown not in known:
                    self.develop.append((shown, f"[sources] {name} ({sources[name].where})"))
                    if (pname := _project_name(tree)) is not None:
                        self.develop_names[canonicalize_name(pname)] = shown
            else:
                self.report("warning", sources[name].where,
                            f"mr.developer source {name} ({' '.join(spec[:2])}) is not checked out "
                            f"at {shown}",
                            f"clone it to {shown} and import again, or list it in develop")

    # -- parts ------------------------------------------------------------------------------

    def parts(self) -> None:
        section = self.cfg.section("buildout")
        for name, at in (section["parts"].words() if "parts" in section else []):
            if not self.cfg.has(name):
                self.report("error", at, f"part {name}: no [{name}] section")
                continue
            options = self.cfg.section(name)
            recipe_value = options.get("recipe")
            if recipe_value is None:
                self.report("error", at, f"part {name}: no recipe")
                continue
            recipe = recipe_value.text.strip().split(":")[0].split("=")[0].strip()
            self.used_only_by_buildout.add(recipe)
            where = self.cfg.section_where.get(name, at)
            self.mapping["parts"][name] = recipe
            if recipe in _EGG_RECIPES:
                self.egg_part(name, recipe, options, where)
            elif recipe == _TESTRUNNER:
                self.test_part(name, options, where)
            else:
                if "eggs" in options:
                    self.eggs(name, recipe, options["eggs"])
                self.report("warning", recipe_value.where, f"part {name} ({recipe}): no equivalent, not "
                                                           "carried over" + (" (its eggs are in the needs)"
                                                                             if "eggs" in options else ""),
                            _RECIPE_TIPS.get(recipe, "do what it does with your deployment tool"))

    def eggs(self, part: str, recipe: str, value: Value) -> list[str]:
        names: list[str] = []
        for text, at in value.items():
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                self.report("error", at, f"[{part}] eggs: {text!r} is not a requirement ({exc})",
                            "write it as Name, Name[extra] or Name>=1")
                continue
            key = canonicalize_name(req.name)
            names.append(key)
            if key in self.develop_names:
                if req.extras:
                    self.report("warning", at, f"[{part}] eggs: {text}: the extras of develop tree "
                                               f"{req.name} are not installed by `develop`",
                                "add the extras' requirements to the needs file")
                continue
            req.name = req.name  # the spelling is kept; pip normalizes
            line = str(req)
            if line not in self.needs:
                self.needs[line] = f"[{part}] {recipe} ({at})"
                self.needs_order.append((line, self.needs[line]))
        return names

    def add_script(self, comment: str, name: str, lines: list[str], at: str) -> None:
        if name in self.script_names:
            self.report("error", at, f"script {name}: generated by two parts", "rename one")
            return
        self.script_names.add(name)
        self.scripts.append((comment, lines))

    def common(self, part: str, options: dict[str, Value], *, arguments: bool) -> list[str]:
        lines: list[str] = []
        if "extra-paths" in options:
            paths = []
            for text, at in options["extra-paths"].items():
                folder = self.local(text)
                if not folder.is_dir():
                    self.report("warning", at, f"[{part}] extra-paths {text}: {self.rel(folder)} is not a "
                                               "folder, left out", "create it and add it to extra_paths")
                    continue
                paths.append(self.rel(folder))
            if paths:
                lines.append("extra_paths: [" + ", ".join(_q(p) for p in paths) + "]")
        if (init := options.get("initialization")) is not None and init.text.strip():
            try:
                compile(init.text, init.where, "exec")
            except SyntaxError as exc:
                self.report("error", init.where, f"[{part}] initialization: {exc.msg} (line {exc.lineno})",
                            "fix the Python source")
            else:
                lines += _block("initialization", init.text)
        if arguments and (args := options.get("arguments")) is not None and args.text.strip():
            lines.append(f"arguments: {_q(' '.join(args.text.split()))}")
        return lines

    def egg_part(self, name: str, recipe: str, options: dict[str, Value], where: str) -> None:
        comment = f"[{name}] {recipe} ({where})"
        for key, value in sorted(options.items()):
            if key in _PART_IGNORED:
                self.report("note", value.where, f"[{name}] {key}: no equivalent ({_PART_IGNORED[key]})")
            elif key == "dependent-scripts":
                self.report("note", value.where, f"[{name}] dependent-scripts: pip writes every installed "
                                                 "console script into the environment's bin/")
            elif key not in _EGG_KNOWN:
                self.report("warning", value.where, f"[{name}] {key}: no equivalent in pinfold")
        eggs = self.eggs(name, recipe, options["eggs"]) if "eggs" in options else []
        if "eggs" not in options:
            self.eggs(name, recipe, Value(((name, where),), where))
        common = self.common(name, options, arguments=True)
        if "scripts" in options:
            for text, at in options["scripts"].words():
                script, _, renamed = text.partition("=")
                if not renamed or renamed == script:
                    self.report("note", at, f"[{name}] scripts {script}: pip writes it into the "
                                            "environment's bin/ itself",
                                f"run it as <path>/bin/{script}, or rename it ({script}={script}-app) "
                                "to get a bin/ launcher")
                    continue
                self.add_script(comment, renamed, [f"name: {_q(renamed)}", f"console_script: {_q(script)}",
                                                   *common], at)
        elif eggs:
            self.report("note", where, f"[{name}]: its eggs' console scripts are written by pip into the "
                                       "environment's bin/", "list `scripts:` entries for bin/ launchers")
        for text, at in (options["entry-points"].words() if "entry-points" in options else []):
            script, eq, target = text.partition("=")
            if not eq or ":" not in target:
                self.report("error", at, f"[{name}] entry-points {text!r}: not NAME=module:attr")
                continue
            self.add_script(comment, script, [f"name: {_q(script)}", f"entry_point: {_q(target)}", *common],
                            at)
        if (interp := options.get("interpreter")) is not None and interp.text.strip():
            self.add_script(comment, interp.text.strip(), [f"interpreter: {_q(interp.text.strip())}",
                                                          *self.common(name, options, arguments=False)],
                            interp.where)

    def test_part(self, name: str, options: dict[str, Value], where: str) -> None:
        comment = f"[{name}] {_TESTRUNNER} ({where})"
        for key, value in sorted(options.items()):
            if key in _PART_IGNORED:
                self.report("note", value.where, f"[{name}] {key}: no equivalent ({_PART_IGNORED[key]})")
            elif key not in _TEST_KNOWN:
                self.report("warning", value.where, f"[{name}] {key}: no equivalent in pinfold")
        paths: list[str] = []
        eggs = options.get("eggs")
        if eggs is not None:
            self.eggs(name, _TESTRUNNER, eggs)
            for text, at in eggs.items():
                try:
                    key = canonicalize_name(Requirement(text).name)
                except InvalidRequirement:
                    continue
                tree = self.develop_names.get(key)
                if tree is None:
                    self.report("warning", at, f"[{name}] eggs {text}: not a develop tree, so its tests are "
                                               "not run", "add its folder to test_runner.paths")
                    continue
                src = self.out / tree / "src"
                paths.append(self.rel(src) if src.is_dir() else tree)
        if not paths:
            self.report("error", where, f"[{name}]: no develop tree among its eggs: no test folder to run",
                        "write the scripts: entry by hand with test_runner.paths")
            return
        if "zope.testrunner" not in {canonicalize_name(Requirement(r).name) for r in self.needs}:
            self.needs["zope.testrunner"] = f"[{name}] {_TESTRUNNER}: its runner"
            self.needs_order.append(("zope.testrunner", self.needs["zope.testrunner"]))
        script = options["script"].text.strip() if "script" in options else name
        lines = [f"name: {_q(script)}", "test_runner:", "  paths: [" + ", ".join(_q(p) for p in paths) + "]"]
        if (defaults := options.get("defaults")) is not None and defaults.text.strip():
            try:
                parsed = ast.literal_eval(defaults.text.strip())
                if not isinstance(parsed, (list, tuple)) or not all(isinstance(a, str) for a in parsed):
                    raise ValueError
            except (ValueError, SyntaxError):
                self.report("error", defaults.where, f"[{name}] defaults: not a literal list of strings",
                            "write test_runner.defaults by hand")
            else:
                lines.append("  defaults: [" + ", ".join(_q(a) for a in parsed) + "]")
        if (env := options.get("environment")) is not None and env.text.strip():
            variables = self.cfg.section(env.text.strip()) if self.cfg.has(env.text.strip()) else None
            if variables is None:
                self.report("error", env.where, f"[{name}] environment = {env.text.strip()}: no such section")
            elif variables:
                lines.append("environment:")
                lines += [f"  {k}: {_q(v.text)}" for k, v in sorted(variables.items())]
        if (wd := options.get("working-directory")) is not None and wd.text.strip():
            folder = self.local(wd.text.strip())
            if folder.is_dir():
                lines.append(f"working_directory: {_q(self.rel(folder))}")
            else:
                self.report("warning", wd.where, f"[{name}] working-directory: {self.rel(folder)} is not a "
                                                 "folder, left out", "create it and set working_directory")
        lines += self.common(name, options, arguments=False)
        self.add_script(comment, script, lines, where)

    # -- versions ---------------------------------------------------------------------------

    def constraints(self) -> list[str]:
        cfg = self.cfg
        chosen = cfg.section("buildout").get("versions")
        versions_name = chosen.text.strip() if chosen is not None else "versions"
        pins = cfg.section(versions_name) if cfg.has(versions_name) else {}
        conditional: dict[str, list[str]] = {}
        for cp in cfg.conditional_pins:
            if cp.section == versions_name and cp.condition.negation is not None:
                conditional.setdefault(canonicalize_name(cp.name), []).append(cp.condition.negation)
        lines = ["# Written by `pinfold import`: the [versions] of the Buildout configuration, after",
                 "# layering; each pin names where it was written. Used by the needs file (-c).", ""]
        entries: list[tuple[str, str]] = []
        unused: list[str] = []
        for name, value in sorted(pins.items(), key=lambda kv: (canonicalize_name(kv[0]), kv[0])):
            markers = conditional.get(canonicalize_name(name), [])
            marker = " and ".join(f"({m})" for m in markers) if len(markers) > 1 else "".join(markers)
            entry = self.pin(name, value, marker)
            if entry is not None:
                entries.append((canonicalize_name(name), entry))
                if canonicalize_name(name) in {canonicalize_name(n) for n in self.used_only_by_buildout}:
                    unused.append(name)
        for cp in cfg.conditional_pins:
            if cp.section == versions_name and cp.condition.marker is not None:
                entry = self.pin(cp.name, cp.value, cp.condition.marker)
                if entry is not None:
                    entries.append((canonicalize_name(cp.name), entry))
        lines += [e for _, e in sorted(entries, key=lambda e: e[0])]
        if unused:
            self.report("note", cfg.section_where.get(versions_name, ""),
                        "pins of names only Buildout itself uses, kept as constraints but unused: "
                        + ", ".join(sorted(unused, key=str.lower)), "remove them from the constraints file")
        if entries:
            # Which of the other pins something needs is known only once resolved.
            self.report("note", cfg.section_where.get(versions_name, ""),
                        f"{len(entries)} pins carried over as constraints; `pinfold lock` lists each "
                        "one that pins nothing (no need asks for it)", "")
        self.mapping["constraints"] = len(entries)
        return lines

    def pin(self, name: str, value: Value, marker: str) -> str | None:
        text = value.text.strip()
        where = value.where
        if " #" in text or text.startswith("#"):
            self.report("note", where, f"[versions] {name}: the inline comment is dropped from {text!r}")
            text = text.split("#", 1)[0].strip()
        suffix = f" ; {marker}" if marker else ""
        if not text:
            self.report("note", where, f"[versions] {name} has no version: not pinned")
            return None
        spec = text if text[0] in "<>=!~" else f"=={text}"
        try:
            Requirement(f"{name}{spec}")
            if text[0] not in "<>=!~":
                Version(text)
        except (InvalidRequirement, InvalidVersion):
            near = nearest_version(text)
            self.report("warning", where, f"[versions] {name} = {text}: not a PEP 440 version, left out "
                                          "(commented) of the constraints",
                        f"use {name}=={near} if that is the release's PEP 440 form" if near
                        else "pin a release with a PEP 440 version")
            hint = f"; nearest: {near}" if near else ""
            return f"# {name}=={text}{suffix}  # {where}: not PEP 440{hint}"
        return f"{name}{spec}{suffix}  # {where}"

    # -- the files --------------------------------------------------------------------------

    def run(self) -> dict[str, str]:
        self.buildout()
        self.parts()
        constraints = self.constraints()
        root = self.cfg.files[0]
        needs = [f"# Written by `pinfold import` from {root}: the eggs of its installed parts.", ""]
        if self.require_pins:
            needs.append(f"{REQUIRE_PINS}  # allow-picked-versions = false")
        needs.append("-c constraints.txt")
        for line, comment in self.needs_order:
            needs.append(f"{line}  # {comment}")
        env = [f"# Written by `pinfold import` from {root}; each comment names the Buildout section",
               "# a value came from. Next: `pinfold lock` (or `pinfold lock --upstream`), then "
               "`pinfold build`.",
               "version: 1", "path: env", "index:", "  find_links:"]
        env += [f"    - {_q(p)}  # {c}" for p, c in self.find_links]
        env += ["requirements: requirements/runtime.txt", "build_requirements: requirements/build.txt",
                f"needs: {NEEDS}"]
        if self.develop:
            env.append("develop:")
            env += [f"  - {_q(p)}  # {c}" for p, c in self.develop]
        if self.scripts:
            env.append(f"bin_dir: {_q(self.bin_dir)}  # [buildout] bin-directory")
            env.append("scripts:")
            last = ""
            for comment, lines in self.scripts:
                if comment != last:
                    env.append(f"  # {comment}")
                    last = comment
                env.append(f"  - {lines[0]}")
                env += [f"    {line}" for line in lines[1:]]
        self.mapping.update({"needs": [n for n, _ in self.needs_order],
                             "develop": [p for p, _ in self.develop],
                             "find_links": [p for p, _ in self.find_links],
                             "scripts": sorted(self.script_names), "require_pins": self.require_pins})
        return {ENV_YAML: "\n".join(env) + "\n", NEEDS: "\n".join(needs) + "\n",
                CONSTRAINTS: "\n".join(constraints) + "\n"}


_YAML_WORDS = ("true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", ".inf", ".nan")


def _q(text: str) -> str:
    """A YAML string scalar: bare when YAML reads it back as that string, else JSON's
    double-quoted form (YAML too). Anything starting with a digit is quoted, since YAML
    would read ``0``, ``1.0`` or ``2001-12-14`` as a number or a date."""
    if (re.fullmatch(r"[A-Za-z_./][A-Za-z0-9_./+-]*", text)
            and text.lower() not in _YAML_WORDS):
        return text
    return json.dumps(text)


def _block(key: str, text: str) -> list[str]:
    lines = text.split("\n")
    if lines[0][:1].isspace() or any(line != line.rstrip() for line in lines):
        return [f"{key}: {json.dumps(text + chr(10))}"]
    return [f"{key}: |", *(f"  {line}" if line else "" for line in lines)]


def _project_name(tree: Path) -> str | None:
    """The distribution name of a source tree (pyproject.toml, setup.cfg, or setup.py's name=)."""
    try:
        data = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
        if isinstance(name := data.get("project", {}).get("name"), str):
            return name
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        pass
    parser = ConfigParser()
    try:
        parser.read(tree / "setup.cfg", encoding="utf-8")
        if parser.has_option("metadata", "name"):
            return parser.get("metadata", "name")
    except (ConfigParserError, UnicodeDecodeError):
        pass
    try:
        found = re.search(r"""name\s*=\s*['"]([^'"]+)['"]""", (tree / "setup.py").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        found = None
    return found.group(1) if found else None


def import_buildout(cfg: BuildoutConfig, *, output_dir: Path | None = None) -> ImportResult:
    """Map ``cfg`` to the files to write into ``output_dir`` (default: the configuration's folder)."""
    out = Path(os.path.abspath(output_dir or cfg.file.parent))
    importer = _Importer(cfg, out)
    files = importer.run()
    findings = list(importer.findings)
    findings += [Finding("error", where, message, "fix the reference")
                 for where, message in sorted(cfg.problems.items())]
    for url, at in cfg.downloaded:
        findings.append(Finding("note", at, f"downloaded {url}: its pins are in {CONSTRAINTS}"))
    findings = sort_findings(findings, cfg.files)
    return ImportResult(source=cfg.file, output_dir=out, files=files, findings=findings,
                        mapping=importer.mapping)


def sort_findings(findings: Sequence[Finding], files: Sequence[str]) -> list[Finding]:
    """``findings`` in the order a user reads the configuration: file by file as the
    ``extends`` chain reads them (``files``), then by line number (``:10`` after ``:9``).

    A finding without a line comes first in its file; one naming no file read, last. Equal
    places keep the order they were found in (``sorted`` is stable), so the report is the
    same for the same configuration.
    """
    order = {name: i for i, name in enumerate(files)}

    def place(finding: Finding) -> tuple[int, str, int]:
        where = finding.where
        name, sep, line = where.rpartition(":")
        if not sep or not line.isdigit():
            name, line = where, "0"
        return (order.get(name, len(order)), name, int(line))

    return sorted(findings, key=place)


def write_import(result: ImportResult, *, force: bool = False) -> list[str]:
    """Write the files; an existing one with other bytes is replaced only with ``force``.

    An existing file that cannot be read (not UTF-8, not a regular file) is bad input, named
    with its path: it counts as other bytes.
    """
    blocked = []
    for name, text in result.files.items():
        target = result.output_dir / name
        if not target.exists() or force:
            continue
        try:
            same = read_text(target) == text
        except (OSError, UnicodeDecodeError) as exc:
            blocked.append(f"{name} ({reason(exc)})")
        else:
            if not same:
                blocked.append(name)
    if blocked:
        raise SpecError(f"{display_path(result.output_dir)}: would overwrite {', '.join(blocked)}",
                        tip="pass --force to replace them, or --output-dir to write elsewhere")
    written = []
    for name, text in result.files.items():
        target = result.output_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text.encode("utf-8"))
        written.append(name)
    result.written = written
    return written
