"""Environment probes: ``pip check``, installed == lock, imports, scripts and commands."""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import CommandError
from ..interpreter import inspect_interpreter
from ..locks import Lock, Pin, split_pin
from ..paths import display_path, file_url_path
from ..record import STATE_FILE, EnvRecord
from ..runner import Runner
from ..target import Target, neutral_dir, run_inside
from ..tools import pip_in
from . import Outcome, Probe

__all__ = ["PIP_CHECK", "Expected", "command", "import_module", "import_probe", "lock_match",
           "pip_check", "pip_check_probe"]

#: The pip-check probe's name.
PIP_CHECK = "pip-check"


def _tail(text: str, lines: int = 12) -> tuple[str, ...]:
    return tuple(f"| {line}" for line in text.strip().splitlines()[-lines:])


def _failed(exc: CommandError) -> Outcome:
    # The runner says "timed out after N s" itself; its -9 is then pinfold's kill, not an exit code.
    code = "" if "timed out" in exc.summary else f" (exit code {exc.returncode})"
    return Outcome(status="fail", summary=f"{exc.summary}{code}", evidence=_tail(exc.output))


def pip_check(runner: Runner, python: Path) -> Outcome:
    """pinfold's own pip checks the environment's requirements (the environment needs no pip)."""
    with neutral_dir() as tmp:
        try:
            done = runner.run([*pip_in(python), "check"],
                              what="pip check", cwd=Path(tmp), timeout=300)
        except CommandError as exc:
            lines = exc.output.strip().splitlines()
            return Outcome(status="fail", summary=f"pip check: {len(lines)} broken requirement(s)",
                           evidence=tuple(lines))
    lines = done.output.strip().splitlines()
    return Outcome(status="ok", summary=lines[-1] if lines else "pip check passed")


def pip_check_probe(runner: Runner, python: Path) -> Probe:
    """The pip-check probe (:func:`pip_check`)."""
    return Probe(PIP_CHECK, partial(pip_check, runner, python), weight=3)


@dataclass(frozen=True, kw_only=True, slots=True)
class Expected:
    """What an environment must hold: exact versions, and its develop trees installed editable."""

    versions: dict[NormalizedName, Version]
    #: Where each expectation comes from, for messages: ``runtime.txt:12`` or ``pinfold.json``.
    origin: dict[NormalizedName, str]
    develop: tuple[Path, ...] = ()

    @classmethod
    def from_pins(cls, pins: Sequence[Pin], lock: Lock, develop: Sequence[Path]) -> Expected:
        """The pins that apply (pre-flight evaluated their markers)."""
        shown = display_path(lock.path)
        return cls(versions={p.name: p.version for p in pins},
                   origin={p.name: f"{shown}:{p.line}" for p in pins}, develop=tuple(develop))

    @classmethod
    def from_lock(cls, runner: Runner, python: Path, lock: Lock, develop: Sequence[Path]) -> Expected:
        """The lock's pins whose markers hold for the environment's interpreter."""
        markers = inspect_interpreter(str(python), runner).markers
        pins = [p for p in lock.pins if p.applies(markers)]
        return cls.from_pins(pins, lock, develop)

    @classmethod
    def from_state(cls, record: EnvRecord) -> Expected:
        """What a finished environment recorded it was built with (``installed``, ``develop``).

        After a rollback the environment is the one an older lock made: it must match
        that lock, not the one on disk now (``pinfold status`` tells those apart).
        """
        versions = {}
        for line in record.installed:
            name, version = split_pin(str(line))
            versions[canonicalize_name(name)] = Version(version)
        return cls(versions=versions, origin=dict.fromkeys(versions, STATE_FILE), develop=record.develop)


def _version(text: str) -> Version | str:
    try:
        return Version(text)
    except InvalidVersion:
        return text


def _tree(url: str) -> Path | None:
    path = file_url_path(url)
    return None if path is None else path.resolve()


def _within(location: str, trees: set[Path]) -> bool:
    path = Path(location).resolve()
    return any(path.is_relative_to(tree) for tree in trees)


def _editables(installed: dict[NormalizedName, list[dict[str, Any]]], trees: set[Path],
               findings: list[str]) -> tuple[set[NormalizedName], set[Path]]:
    """Names installed editable from a develop tree, and the trees seen; other editables are findings."""
    developed: set[NormalizedName] = set()
    seen: set[Path] = set()
    for name, entries in sorted(installed.items()):
        for entry in entries:
            if not entry["editable"]:
                continue
            tree = _tree(entry["url"])
            if tree in trees:
                developed.add(name)
                seen.add(tree)
            else:
                findings.append(f"{name} is installed editable from {entry['url']}, which is not a "
                                "develop tree of the environment")
        if name in developed:
            # Seen twice: the editable dist-info in site-packages, and the egg-info setuptools
            # left in the tree (which is on sys.path). One distribution.
            installed[name] = [e for e in entries if e["editable"] or not _within(e["location"], trees)]
    return developed, seen


def _compare(installed: dict[NormalizedName, list[dict[str, Any]]], expected: Expected) -> list[str]:
    findings: list[str] = []
    trees = {tree.resolve() for tree in expected.develop}
    developed, seen = _editables(installed, trees, findings)
    for name, entries in sorted(installed.items()):
        if len(entries) > 1:
            where = ", ".join(f"{e['version']} in {e['location']}" for e in entries)
            findings.append(f"{name} is installed {len(entries)} times: {where}")
    for name, version in sorted(expected.versions.items()):
        if name in developed:
            continue  # a develop tree replaces the locked release on purpose
        if name not in installed:
            findings.append(f"missing: {name}=={version} ({expected.origin[name]})")
            continue
        versions = {str(e["version"]) for e in installed[name]}
        if any(_version(v) != version for v in versions):
            findings.append(f"{name}: installed {', '.join(sorted(versions))}, expected {version} "
                            f"({expected.origin[name]})")
    for name, entries in sorted(installed.items()):
        if name not in expected.versions and name not in developed:
            findings.append(f"not in the lock: {name}=={entries[0]['version']} "
                            f"(in {entries[0]['location']})")
    findings += [f"develop tree {tree} is not installed editable" for tree in sorted(trees - seen)]
    return findings


def lock_match(runner: Runner, target: Target, expected: Callable[[], Expected],
               listed: Sequence[dict[str, Any]] | None = None) -> Outcome:
    """The installed distributions are exactly the expected ones (plus the develop trees).

    ``expected`` is called in the probe's thread: working it out may run the interpreter.
    ``listed``: the distributions as ``inside/distributions.py`` lists them, already listed
    by the same interpreter in this build (the plugins stage's run); otherwise listed here.
    """
    if listed is None:
        listed = run_inside(runner, target, "distributions", what="listing the installed distributions",
                            timeout=120)["distributions"]
    want = expected()
    installed: dict[NormalizedName, list[dict[str, Any]]] = defaultdict(list)
    for dist in listed:
        installed[canonicalize_name(dist["name"])].append(dist)
    findings = _compare(installed, want)
    count = f"{len(installed)} distributions installed, {len(want.versions)} pinned"
    if findings:
        return Outcome(status="fail", summary=f"{count}: {len(findings)} difference(s) from the lock",
                       evidence=tuple(findings))
    extra = f" + {len(want.develop)} develop tree(s)" if want.develop else ""
    return Outcome(status="ok", summary=f"{count}{extra}: exactly the lock")


def import_probe(runner: Runner, target: Target, module: str, name: str | None = None) -> Probe:
    """The probe ``import <module>`` (:func:`import_module`), named ``name`` if given."""
    return Probe(name or f"import {module}", partial(import_module, runner, target, module))


def import_module(runner: Runner, target: Target, module: str) -> Outcome:
    """``import <module>`` succeeds in a fresh, isolated interpreter of the environment."""
    try:
        data = run_inside(runner, target, "importer", [module], what=f"importing {module}", timeout=120)
    except CommandError as exc:
        return _failed(exc)
    # Where it came from is worth a line only when that is outside the environment (a develop tree).
    file, env = data.get("file"), target.python.parent.parent.resolve()
    found = f" from {file}" if file and not Path(file).resolve().is_relative_to(env) else ""
    return Outcome(status="ok", summary=f"imports in a fresh interpreter{found}")


def command(runner: Runner, env_dir: Path, argv: Sequence[str], *, timeout: float, root: Path,
            script: bool) -> Outcome:
    """Run ``argv`` with the environment's ``bin/`` first on PATH; it must exit 0 in time.

    For a console script (``script``), ``argv[0]`` must be in the environment's ``bin/``.
    Otherwise it is looked up on that PATH, or taken relative to env.yaml's folder when it
    holds a slash. Both run from an empty temporary folder.
    """
    bin_dir = env_dir / "bin"
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    exe = argv[0]
    found: str | None
    if script:
        found = str(bin_dir / exe) if "/" not in exe and (bin_dir / exe).is_file() else None
        if found is None:
            return Outcome(status="fail", summary=f"{exe} is not a console script of the environment "
                                                  f"(nothing in {bin_dir})")
    elif "/" in exe:
        found = str((root / exe).resolve())
    else:
        found = shutil.which(exe, path=path)
        if found is None:
            return Outcome(status="fail", summary=f"{exe} is not on PATH ({bin_dir} first)")
    shown = " ".join(argv)
    with neutral_dir() as tmp:
        try:
            done = runner.run([found, *argv[1:]], what=f"running `{shown}`", cwd=Path(tmp), timeout=timeout,
                              env={"PATH": path, "VIRTUAL_ENV": str(env_dir)})
        except CommandError as exc:
            return _failed(exc)
    return Outcome(status="ok", summary=f"`{shown}` exited 0 in {done.seconds:.2f}s")
