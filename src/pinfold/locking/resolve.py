"""Resolution for one target, against one source only, and its failures in plain words.

Two resolvers, chosen per target by :func:`compile_pins`: pip-compile when the target
is pinfold's own kind of interpreter (same implementation, Python version, platform and
machine: pip-compile evaluates markers and wheel tags for the interpreter it runs in),
and uv's ``pip compile`` for any other target, with ``--python`` (an interpreter) or
``--python-version`` and ``--python-platform`` (a version/platform pair), so the
target's markers and wheel tags decide whatever runs pinfold. uv hashes only the wheels
that fit the target and never a local sdist; pinfold adds the hash of every artifact
the index holds for each pin itself (see ``lock._Locker``), as pip-compile does.

pip-compile runs as pinfold's tool Python through the Runner: a scrubbed environment
with the index given as flags *and* as ``PIP_*`` variables, exactly as the installer
does, because pip's build subprocesses (which prepare sdist metadata) re-read the
environment: flags alone would let a caller's ``PIP_INDEX_URL`` or pip config reach them.
Its output is parsed back into
pins; pinfold writes the lock files itself, so their bytes depend on the pins only.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import CommandError, Problem
from ..index import (
    ArtifactIndex,
    index_environ,
    index_flags,
    parse_filename,
    redact,
    upstream_environ,
    upstream_flags,
)
from ..locks import Lock, Pin, parse_lock
from ..runner import Runner
from ..spec import Spec
from .errors import LockError

__all__ = ["Source", "compile_pins", "explain_pip_failure", "explain_uv_failure", "uv_binary"]

#: The flags every compile uses: exact pins with every matching artifact's hash, setuptools
#: and pip included, no extras, nothing about the index (it comes from env.yaml alone).
_COMPILE_FLAGS = (
    "--no-config", "--verbose", "--no-header", "--generate-hashes", "--allow-unsafe",
    "--strip-extras", "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host",
    "--no-emit-options",
    # Hash what the index holds now, not only what the previous lock listed (pip-compile
    # would reuse those and miss a wheel added since). The caller merges the old hashes
    # back in for pins that stay (`_Locker.keep_hashes`): a wheelhouse missing other
    # platforms' files must not drop their hashes.
    "--no-reuse-hashes",
)  # fmt: skip


#: uv's flags for the same lock as :data:`_COMPILE_FLAGS`: exact pins, hashes, no header and
#: no index options; markers stripped (each compile is for one target: pinfold adds the
#: target markers where targets differ); pip and setuptools are kept by default.
_UV_COMPILE_FLAGS = ("--no-config", "--no-header", "--generate-hashes", "--no-progress",
                     "--color", "never", "--python-preference", "only-system")
#: uv reads these variables: never download a Python, no config, no progress bars.
_UV_ENV = {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1", "UV_NO_CONFIG": "1"}


def uv_binary() -> str:
    """The uv pinned in pinfold's tool environment."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return str(Path(sys.executable).with_name("uv"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """Where resolution and build-dependency discovery look: the spec's index, or upstream."""

    #: pip flags naming the index (``--no-index --find-links ...`` or ``--index-url ...``).
    flags: tuple[str, ...]
    #: The same as ``PIP_*`` variables, for pip's build subprocesses.
    environ: Mapping[str, str] = field(default_factory=dict)
    #: True for an upstream index: the Runner keeps certificate and proxy variables.
    online: bool = False
    #: The index as the user named it, for messages.
    description: str = ""

    @classmethod
    def local(cls, spec: Spec) -> Source:
        """The spec's own index, flags and variables exactly as the installer sets them."""
        return cls(flags=tuple(index_flags(spec.index)), environ=index_environ(spec.index),
                   description=ArtifactIndex(spec.index).describe())

    @classmethod
    def upstream(cls, url: str | None) -> Source:
        """An upstream index; None or "" means pip's default index."""
        return cls(flags=tuple(upstream_flags(url)), environ=upstream_environ(url), online=True,
                   description=redact(url) if url else "pip's default index")


#: pip install's network options, which neither pip-compile nor ``uv pip compile`` takes: the
#: index's timeout, retries and CA bundle reach them as variables (``source.environ``).
_PIP_ONLY = ("--timeout", "--retries", "--cert")


def resolver_flags(flags: Sequence[str]) -> list[str]:
    """``flags`` without pip install's network options (each with its value)."""
    out: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
        elif flag in _PIP_ONLY:
            skip = True
        else:
            out.append(flag)
    return out


def _uv_network(environ: Mapping[str, str]) -> dict[str, str]:
    """The index's bounds and CA bundle as uv reads them."""
    out = {}
    if "PIP_TIMEOUT" in environ:
        out["UV_HTTP_TIMEOUT"] = str(max(1, round(float(environ["PIP_TIMEOUT"]))))
    if "PIP_RETRIES" in environ:
        out["UV_HTTP_RETRIES"] = environ["PIP_RETRIES"]
    if "PIP_CERT" in environ:
        out["SSL_CERT_FILE"] = environ["PIP_CERT"]
    return out


#: What a requirement line of an input file is needed by (labels for messages).
Origins = Mapping[str, Sequence[str]]


def _normal(text: str) -> str:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return text
    req.name = canonicalize_name(req.name)
    return str(req)


def _candidate(text: str) -> str:
    """``name==version`` from a pip candidate's URL (``LinkCandidate('file:///...whl')``)."""
    path = urllib.parse.unquote(urllib.parse.urlparse(text).path)
    parsed = parse_filename(path.rsplit("/", 1)[-1])
    return f"{parsed[0]}=={parsed[1]}" if parsed else text


def _by(req: str, origins: Origins, role: str) -> str:
    # Both sides normalized: origins are keyed as written (`Twisted>=22` in a develop tree).
    want = _normal(req)
    labels = [label for key, found in origins.items() if _normal(key) == want for label in found]
    return f"{role} {', '.join(labels)}" if labels else ""


def _sdist_named(output: str, name: str) -> str:
    """The sdist pip was preparing for ``name``, as ``name==version`` when the output says."""
    for path in reversed(re.findall(r"Processing (\S+)", output)):
        parsed = parse_filename(path.rsplit("/", 1)[-1])
        if parsed and parsed[0] == canonicalize_name(name):
            return f"{parsed[0]}=={parsed[1]}"
    return name


_NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement (\S+) "
                        r"\(from versions: ([^)]*)\)")


def _backend_message(before: str) -> str:
    """The backend's own last words: the last line of the subprocess output in ``before``."""
    if "[end of output]" not in before:
        return "(pip showed no output; run with -v)"
    block = before.rsplit("[end of output]", 1)[0]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _holds(versions: str, name: str, where: str) -> str:
    """What the index holds of ``name``, from pip's "(from versions: ...)"."""
    versions = versions.strip()
    if not versions or versions == "none":
        return f"not in {where}"
    return f"{where} holds only {name} {versions}"


def _valid(text: str) -> bool:
    try:
        Requirement(text)
    except InvalidRequirement:
        return False
    return True


def _name(text: str) -> str:
    return canonicalize_name(Requirement(text).name)


def explain_pip_failure(output: str, source: Source, origins: Origins, *,
                        role: str = "needed by") -> list[Problem]:
    """Translate pip's (or pip-compile's) failure output into one problem per cause.

    ``origins`` names what needs each input requirement (``role`` says how: "needed by",
    "build dependency of"). Empty when the output matches nothing known: the caller
    then shows its tail.
    """
    where = source.description
    problems: list[Problem] = []
    # A build dependency the index lacks, found while pip prepared an sdist's metadata.
    for match in re.finditer(r"Failed to build '([^']+)' when installing (?:build|backend) "
                             r"dependencies", output):
        before = output[: match.start()]
        sdist = _sdist_named(before, match.group(1))
        section = before.rsplit("Processing ", 1)[-1]  # the output of this sdist's preparation
        found = [Problem(f"{req} (build dependency of {sdist})", _holds(versions, _name(req), where))
                 for req, versions in _NOT_FOUND.findall(section) if _valid(req)]
        problems += found or [Problem(sdist, "its build dependencies could not be installed from "
                                             f"{where}: {_backend_message(before)}")]
    if problems:
        return problems
    # A build backend that cannot even report its requirements (or its metadata).
    for match in re.finditer(r"Failed to build '([^']+)' when (getting requirements to build \w+|"
                             r"preparing metadata[^\n]*)", output):
        before = output[: match.start()]
        problems.append(Problem(_sdist_named(before, match.group(1)),
                                f"its build backend failed {match.group(2).strip()}: "
                                f"{_backend_message(before)}"))
    if problems:
        return problems
    held = {_name(req): versions for req, versions in _NOT_FOUND.findall(output) if _valid(req)}
    infos = [(r, parent) for r, parent in _resolution_infos(output) if _valid(r)]
    if not infos:
        infos = [(r, None) for r in re.findall(r"No matching distribution found for (\S+)", output)
                 if _valid(r)]
    by_name: dict[str, list[tuple[str, str | None]]] = {}
    for req, parent in infos:
        by_name.setdefault(_name(req), []).append((req, parent))
    for name, sides in by_name.items():
        texts = [f"{req} ({f'needed by {parent}' if parent else _by(req, origins, role) or 'needed'})"
                 for req, parent in sides]
        if len(sides) == 1:
            problems.append(Problem(texts[0], _holds(held.get(name, ""), name, where)))
        else:
            versions = f"; {_holds(held[name], name, where)}" if name in held else ""
            problems.append(Problem(f"conflict on {name}", " and ".join(texts)
                                    + f": no version satisfies {'both' if len(sides) == 2 else 'all'}"
                                    + versions))
    return problems


def explain_uv_failure(output: str) -> list[Problem]:
    """uv's failure output as problems: its conclusion (``cause:``/``Because ...``) and hints.

    uv explains a failed resolution in sentences of its own, one derivation per
    paragraph; they name the requirement and why no version fits (no wheel with a
    matching tag, a ``Requires-Python`` bound, a missing project), so they are kept as
    they are, joined into one line each.
    """
    problems: list[Problem] = []
    block: list[str] = []
    kind = ""

    def flush() -> None:
        if block:
            problems.append(Problem(kind, " ".join(block)))
            block.clear()

    for raw in output.splitlines():
        line = raw.strip()
        head = re.match(r"(error|cause|hint|Caused by):\s*(.*)", line)
        if head and head.group(1) in ("cause", "hint", "Caused by"):
            flush()
            kind = "hint" if head.group(1) == "hint" else "resolution"
            block.append(head.group(2))
        elif head:
            flush()
            kind = "uv"
            block.append(head.group(2))
        elif line and block:
            block.append(line)
        elif not line:
            flush()
    flush()
    # "No solution found" alone says nothing the cause does not: drop it when a cause follows.
    if any(p.where == "resolution" for p in problems):
        problems = [p for p in problems if p.where != "uv"]
    return problems


def _resolution_infos(output: str) -> list[tuple[str, str | None]]:
    """(requirement, parent ``name==version`` or None) from pip's ResolutionImpossible repr."""
    match = re.search(r"ResolutionImpossible: \[(.*)\]\s*$", output, re.MULTILINE)
    if not match:
        return []
    out: list[tuple[str, str | None]] = []
    for info in re.finditer(r"RequirementInformation\(requirement=\w+\('([^']*)'\), "
                            r"parent=(None|\w+\('([^']*)'\))\)", match.group(1)):
        parent = None if info.group(2) == "None" else _candidate(info.group(3))
        if (info.group(1), parent) not in out:
            out.append((info.group(1), parent))
    return out


def compile_pins(
    runner: Runner,
    source: Source,
    workdir: Path,
    *,
    inputs: Sequence[str],
    name: str,
    keep: Sequence[Pin] = (),
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    origins: Origins | None = None,
    what: str,
    uv_target: Sequence[str] | None = None,
) -> list[Pin]:
    """Resolve ``inputs`` (file names in ``workdir``); return the pins chosen.

    ``keep`` are the current lock's pins: the resolver keeps each one that still fits,
    except with ``upgrade`` or for ``upgrade_packages``. ``uv_target`` None: pip-compile
    in pinfold's interpreter; else uv, with these flags naming the target.
    """
    if uv_target is not None:
        return _uv_compile(runner, source, workdir, inputs=inputs, name=name, keep=keep, upgrade=upgrade,
                           upgrade_packages=upgrade_packages, what=what, target=uv_target)
    out = workdir / f"{name}.txt"
    # pip-compile reads its own output file for the pins to keep.
    out.write_text("".join(p.requirement_line() + "\n" for p in keep), encoding="utf-8")
    argv: list[str] = [sys.executable, "-m", "piptools", "compile", *_COMPILE_FLAGS,
                       "--cache-dir", str(workdir / "cache"), "--output-file", out.name]
    if upgrade:
        argv.append("--upgrade")
    for package in upgrade_packages:
        argv += ["--upgrade-package", package]
    argv += [*resolver_flags(source.flags), *inputs]
    # No pip cache: a wheel pip built for an sdist's metadata must not outlive this run.
    env = {**source.environ, "PIP_NO_CACHE_DIR": "1"}
    try:
        runner.run(argv, what=what, env=env, online=source.online, cwd=workdir)
    except CommandError as exc:
        problems = explain_pip_failure(exc.output, source, origins or {})
        if not problems:
            tip = "run with -v to see pip-compile's whole output"
        elif any("build backend failed" in p.message for p in problems):
            tip = "fix or replace that sdist; run with -v to see the backend's whole output"
        else:
            tip = ("add the missing artifacts to the index (or use `pinfold lock --upstream`), "
                   "or change the needs")
        raise LockError(f"{what} failed against {source.description}; no lock was written",
                        problems or exc.problems, tip=tip) from None
    lock: Lock
    lock, problems = parse_lock(out)
    if problems:  # pip-compile wrote something pinfold cannot read back: a bug to report
        raise LockError(f"{what}: pip-compile wrote an unexpected lock", problems)
    return list(lock.pins)


def _uv_compile(runner: Runner, source: Source, workdir: Path, *, inputs: Sequence[str], name: str,
                keep: Sequence[Pin], upgrade: bool, upgrade_packages: Sequence[str], what: str,
                target: Sequence[str]) -> list[Pin]:
    """``uv pip compile`` for the target ``target`` names; the pins it chose (hashes as uv has them)."""
    out = workdir / f"{name}.txt"
    # uv, like pip-compile, prefers the pins of its existing output file.
    out.write_text("".join(p.requirement_line() + "\n" for p in keep), encoding="utf-8")
    argv: list[str] = [uv_binary(), "pip", "compile", *_UV_COMPILE_FLAGS, *target,
                       "--cache-dir", str(workdir / "uv-cache"), "--output-file", out.name]
    if not source.online:
        argv.append("--offline")
    if upgrade:
        argv.append("--upgrade")
    for package in upgrade_packages:
        argv += ["--upgrade-package", package]
    argv += [*resolver_flags(source.flags), *inputs]
    env = {**source.environ, **_UV_ENV, "PIP_NO_CACHE_DIR": "1", **_uv_network(source.environ)}
    try:
        runner.run(argv, what=what, env=env, online=source.online, cwd=workdir)
    except CommandError as exc:
        problems = explain_uv_failure(exc.output)
        raise LockError(f"{what} failed against {source.description}; no lock was written",
                        problems or exc.problems,
                        tip="add the missing artifacts to the index (or use `pinfold lock --upstream`), "
                            "or change the needs; run with -v to see uv's whole output") from None
    lock: Lock
    lock, problems = parse_lock(out)
    if problems:
        raise LockError(f"{what}: uv wrote an unexpected lock", problems)
    return list(lock.pins)
