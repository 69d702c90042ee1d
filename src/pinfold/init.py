"""``pinfold init``: the files a new project starts from, computed, then written.

:func:`plan_init` computes them (a commented env.yaml, the needs file and, from
``--from``, a constraints file) without touching the disk beyond reading ``--from``;
:func:`init` refuses to overwrite any of them without ``force`` (writing none), then
writes each atomically (a write that fails partway leaves the files written before it,
and names the folder). The text depends on the options alone, so the same command gives
the same bytes.

The env.yaml it writes is valid for ``pinfold lock`` before any lock exists: the locks it
names are the ones ``pinfold lock`` is about to write, and the wheelhouse folder is
created empty (``pinfold lock --upstream`` and ``pinfold fetch`` fill it).

``--from requirements.txt``: each requirement becomes a need with its name, extras and
markers; an exact pin (``==`` or ``===``) is kept as a constraint in
``requirements/constraints.txt`` (``-c`` from the needs file), so the first lock holds
the same versions while the needs file says only what the project needs. Other
specifiers (``>=1.2``) stay on the need. Hashes and index options are dropped (the lock
computes hashes, the index comes from env.yaml), ``-r`` files are read in turn,
``--no-binary``/``--only-binary``/``--prefer-binary``/``--pre`` are kept. Editable
installs and direct references are refused: local trees go under ``develop``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import Problem, SpecError
from .needs import INDEX_OPTIONS
from .paths import display_path, path_problem, read_text, reason, write_atomic
from .reqfile import logical_lines
from .runner import redact

__all__ = ["InitFile", "InitOptions", "InitReport", "init", "plan_init"]

#: Where the files go, relative to the project folder.
SPEC_NAME = "env.yaml"
NEEDS_NAME = "requirements/runtime.in"
CONSTRAINTS_NAME = "requirements/constraints.txt"
WHEELHOUSE_NAME = "wheelhouse"

_KEPT_OPTIONS = ("--no-binary", "--only-binary", "--prefer-binary", "--pre")
_INCLUDES = {"-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c"}
#: Strings YAML reads as themselves when written plain (no quoting needed).
_PLAIN = re.compile(r"[A-Za-z0-9_./~+%@:-]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class InitOptions:
    """What ``pinfold init`` was asked for."""

    #: Requirements given on the command line (``--needs``), as written.
    needs: tuple[str, ...] = ()
    #: An existing requirements file to turn into needs (``--from``).
    from_file: Path | None = None
    #: A wheelhouse folder to use instead of ``<DIR>/wheelhouse`` (created when missing).
    wheelhouse: Path | None = None
    #: A PEP 503 simple index to use instead of a wheelhouse.
    index_url: str | None = None
    #: Overwrite files that exist.
    force: bool = False


@dataclass(frozen=True, slots=True)
class InitFile:
    """One file ``pinfold init`` writes."""

    path: Path
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class InitReport:
    """What ``pinfold init`` wrote."""

    folder: Path
    spec_file: Path
    needs_file: Path
    #: Every file written, in the order written.
    written: tuple[Path, ...]
    #: Folders created (the project folder, the wheelhouse), if they were missing.
    created: tuple[Path, ...]
    #: The needs written to the needs file, and the constraints (from ``--from`` pins).
    needs: tuple[str, ...]
    constraints: tuple[str, ...]
    #: What was left out of ``--from`` and why (index options, hashes).
    notes: tuple[str, ...]
    #: Files that existed and were replaced (``force``).
    replaced: tuple[Path, ...] = ()
    #: Where the index is: the wheelhouse folder, or None with an index URL.
    wheelhouse: Path | None = None
    index_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"folder": str(self.folder), "spec_file": str(self.spec_file),
                "needs_file": str(self.needs_file), "written": [str(p) for p in self.written],
                "replaced": [str(p) for p in self.replaced], "created": [str(p) for p in self.created],
                "needs": list(self.needs), "constraints": list(self.constraints),
                "notes": list(self.notes),
                "wheelhouse": None if self.wheelhouse is None else str(self.wheelhouse),
                "index_url": redact(self.index_url) if self.index_url else None}


@dataclass(frozen=True, slots=True)
class _Plan:
    files: tuple[InitFile, ...]
    folders: tuple[Path, ...]
    needs: tuple[str, ...]
    constraints: tuple[str, ...]
    notes: tuple[str, ...]
    wheelhouse: Path | None


class _FromReader:
    """Reads ``--from``: requirements into needs, exact pins into constraints."""

    def __init__(self) -> None:
        self.needs: dict[str, None] = {}
        self.options: dict[str, None] = {}
        self.constraints: dict[str, None] = {}
        self.notes: dict[str, None] = {}
        self.problems: list[Problem] = []
        self.seen: set[Path] = set()

    def file(self, where: str, path: Path, *, constraint: bool = False) -> None:
        try:
            path = path.resolve()
            if path in self.seen:
                return
            self.seen.add(path)
            text = read_text(path)
        except (OSError, UnicodeDecodeError, RuntimeError) as exc:
            self.problems.append(Problem(where, f"cannot read {display_path(path)}: {reason(exc)}"))
            return
        shown = display_path(path)
        for entry in logical_lines(text):
            self.entry(f"{shown}:{entry.line}", entry.content, path.parent, constraint=constraint)

    def entry(self, where: str, text: str, base: Path, *, constraint: bool) -> None:
        words = text.split()
        head, _, inline = words[0].partition("=") if words[0].startswith("-") else (words[0], "", "")
        rest = [inline, *words[1:]] if inline else words[1:]
        if head in _INCLUDES:
            if not rest:
                self.problems.append(Problem(where, f"{head} needs a file name"))
            else:
                self.file(where, base / rest[0], constraint=constraint or _INCLUDES[head] == "-c")
        elif head in INDEX_OPTIONS:
            self.notes[f"{where}: {head} left out: the index comes from env.yaml's `index`"] = None
        elif head in _KEPT_OPTIONS:
            self.options[" ".join([head, *rest[:1]])] = None
        elif head in ("-e", "--editable"):
            self.problems.append(Problem(where, "an editable install: put local trees under "
                                                "env.yaml's `develop`"))
        elif head.startswith("-"):
            self.problems.append(Problem(where, f"option {head} cannot become a need"))
        else:
            self.requirement(where, text, constraint=constraint)

    def requirement(self, where: str, text: str, *, constraint: bool) -> None:
        # Hashes (`--hash=...` after the requirement) are the lock's business: dropped.
        kept = " ".join(w for w in text.split() if not w.startswith("--hash"))
        if kept != text.strip():
            self.notes["hashes left out: `pinfold lock` hashes every artifact it pins"] = None
        try:
            req = Requirement(kept)
        except InvalidRequirement as exc:
            self.problems.append(Problem(where, f"{kept!r} is not a requirement: {exc}"))
            return
        if req.url:
            self.problems.append(Problem(where, f"{kept!r} is a direct reference: a lock pins "
                                                "name==version from the index; put local trees "
                                                "under env.yaml's `develop`"))
            return
        marker = f"; {req.marker}" if req.marker else ""
        specs = list(req.specifier)
        exact = len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version
        if constraint:  # from a -c file: kept as a constraint, whatever its specifier
            self.constraints[f"{req.name}{req.specifier}{marker}"] = None
            return
        if exact:
            self.constraints[f"{req.name}{specs[0]}{marker}"] = None
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        spec = "" if exact else str(req.specifier)
        self.needs[f"{req.name}{extras}{spec}{marker}"] = None


def _needs_from_cli(values: tuple[str, ...]) -> tuple[list[str], list[Problem]]:
    needs: dict[str, None] = {}
    problems = []
    for value in values:
        try:
            req = Requirement(value)
        except InvalidRequirement as exc:
            problems.append(Problem(f"--needs {value!r}", f"not a requirement: {exc}"))
            continue
        if req.url:
            problems.append(Problem(f"--needs {value!r}", "a direct reference: give NAME or NAME==VERSION "
                                                          "(local trees go under env.yaml's `develop`)"))
            continue
        needs[value.strip()] = None
    return list(needs), problems


def _relative(path: Path, folder: Path) -> str:
    """``path`` as env.yaml writes it: relative to its folder (POSIX), whatever the cwd."""
    return Path(os.path.relpath(path, folder)).as_posix()


def _yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar that reads back as the same string, in a flow list too:
    plain when it does (``wheelhouse``), else a JSON string (a YAML double-quoted scalar)."""
    try:
        if _PLAIN.fullmatch(value) and yaml.safe_load(f"k: [{value}]") == {"k": [value]}:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value, ensure_ascii=False)


def _spec_text(*, index_lines: list[str], needs_name: str) -> str:
    return "\n".join([
        "# env.yaml: one virtualenv, built by `pinfold build` from pinned, hashed locks.",
        "# Written by `pinfold init`. Every key is described in pinfold's README (\"env.yaml\").",
        "version: 1",
        "",
        "# The interpreter the environment is for: a name on PATH or a path relative to",
        "# this file. Default: the Python that runs pinfold (which `pinfold lock` resolves for).",
        "# python: python3.11",
        "",
        "# Where the environment lives: a symlink to env.d/<build>/, switched atomically.",
        "path: env",
        "",
        "# The ONLY places artifacts come from; builds never go online.",
        *index_lines,
        "",
        "# What `pinfold lock` compiles the locks from: one requirement per line.",
        f"needs: {needs_name}",
        "",
        "# The locks `pinfold lock` writes (runtime, and the build dependencies of sdists).",
        "requirements: requirements/runtime.txt",
        "build_requirements: requirements/build.txt",
        "",
        "# pip (default) or uv.",
        "# installer: uv",
        "",
        "# Local source trees installed editable; their dependencies go into the runtime lock.",
        "# develop:",
        "#   - src/myapp",
        "",
        "# The final stages: Twisted plugin caches and sanity probes (pip check, the lock,",
        "# Twisted's plugins) always run; add what your project must be able to do.",
        "# final:",
        "#   probes:",
        "#     imports: [myapp]",
        "#     scripts:",
        "#       - argv: [myapp, --version]",
        "",
    ])


def _needs_text(needs: list[str], options: list[str], constraints: bool, source: str | None) -> str:
    lines = ["# What this environment needs: one requirement per line (extras, version",
             "# specifiers and markers allowed), or -r/-c FILE. `pinfold lock` resolves these",
             "# into requirements/runtime.txt; edit, then run `pinfold lock` again."]
    if source is not None:
        lines.append(f"# Converted from {source} by `pinfold init --from`.")
    if constraints:
        lines += ["# Its exact pins are kept as constraints: remove a line there to let",
                  "# `pinfold lock --upgrade` move that package.",
                  f"-c {Path(CONSTRAINTS_NAME).name}"]
    lines += options
    lines += needs
    return "\n".join(lines) + "\n"


def _constraints_text(constraints: list[str], source: str) -> str:
    head = [f"# The exact pins of {source}, kept by `pinfold init --from` as constraints of",
            "# runtime.in: the first `pinfold lock` picks these versions where they are needed."]
    return "\n".join([*head, *constraints]) + "\n"


def plan_init(folder: Path, options: InitOptions) -> tuple[InitFile, ...]:
    """The files ``pinfold init`` would write into ``folder``; raise :class:`SpecError` for
    bad options or a ``--from`` file that cannot become needs. Nothing is written."""
    return _plan(folder, options).files


def _plan(folder: Path, options: InitOptions) -> _Plan:
    folder = folder.absolute()
    problems: list[Problem] = []
    if options.wheelhouse is not None and options.index_url is not None:
        problems.append(Problem("--wheelhouse", "give a wheelhouse folder or an index URL, not both"))
    needs, cli_problems = _needs_from_cli(options.needs)
    problems += cli_problems
    reader = _FromReader()
    source = None
    if options.from_file is not None:
        source = display_path(options.from_file.absolute())
        reader.file(f"--from {options.from_file}", options.from_file)
        problems += reader.problems
    wheelhouse: Path | None = None
    if options.index_url is not None:
        url = options.index_url
        if not url.startswith(("http://", "https://", "file://")) or path_problem(url) is not None:
            problems.append(Problem(f"--index-url {url!r}",
                                    "not an http(s) or file URL of a PEP 503 simple index"))
        index_lines = ["index:", f"  url: {_yaml_scalar(url.rstrip('/') + '/')}   # a PEP 503 simple index"]
    else:
        wheelhouse = (options.wheelhouse.absolute() if options.wheelhouse is not None
                      else folder / WHEELHOUSE_NAME)
        index_lines = ["index:",
                       "  # Wheelhouse folders of wheels and sdists; `pinfold lock --upstream` and",
                       "  # `pinfold fetch` download the locked artifacts into the first one.",
                       f"  find_links: [{_yaml_scalar(_relative(wheelhouse, folder))}]",
                       "  # url: http://127.0.0.1:3141/simple/   # or a PEP 503 simple index you run"]
    if problems:
        raise SpecError("pinfold init: nothing was written", problems)
    for need in reader.needs:
        if canonicalize_name(Requirement(need).name) not in {canonicalize_name(Requirement(n).name)
                                                              for n in needs}:
            needs.append(need)
    constraints = list(reader.constraints)
    files = [InitFile(folder / SPEC_NAME, _spec_text(index_lines=index_lines, needs_name=NEEDS_NAME)),
             InitFile(folder / NEEDS_NAME, _needs_text(needs, list(reader.options), bool(constraints),
                                                       source))]
    if constraints:
        assert source is not None
        files.append(InitFile(folder / CONSTRAINTS_NAME, _constraints_text(constraints, source)))
    folders = [folder, *([wheelhouse] if wheelhouse is not None else [])]
    return _Plan(files=tuple(files), folders=tuple(folders), needs=tuple(needs),
                 constraints=tuple(constraints), notes=tuple(reader.notes), wheelhouse=wheelhouse)


def init(folder: Path, options: InitOptions) -> InitReport:
    """Write a new project's env.yaml and needs file into ``folder`` (created if missing).

    Raises :class:`SpecError`, writing nothing, when a file exists and ``options.force``
    is not set (naming every such file), or when the options are bad.
    """
    plan = _plan(folder, options)
    folder = plan.folders[0]
    existing = [f.path for f in plan.files if f.path.exists() or f.path.is_symlink()]
    if existing and not options.force:
        raise SpecError("pinfold init: nothing was written",
                        [Problem(display_path(p), "exists: pass --force to overwrite it") for p in existing],
                        tip="or pick another folder: pinfold init DIR")
    created = []
    try:
        for path in plan.folders:
            if not path.is_dir():
                path.mkdir(parents=True)
                created.append(path)
        for f in plan.files:
            f.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(f.path, f.text.encode("utf-8"))
    except OSError as exc:
        raise SpecError(f"pinfold init: cannot write into {display_path(folder)}: {reason(exc)}") from None
    return InitReport(folder=folder, spec_file=plan.files[0].path, needs_file=plan.files[1].path,
                      written=tuple(f.path for f in plan.files), created=tuple(created),
                      replaced=tuple(existing), needs=plan.needs, constraints=plan.constraints,
                      notes=plan.notes, wheelhouse=plan.wheelhouse, index_url=options.index_url)
