"""Pre-flight: before anything is created, prove the index can serve both locks.

Every pin of both locks that applies to the target interpreter must have an artifact in
the index whose hash is in the lock and which fits the interpreter; hashes are compared in
whichever algorithms the lock uses (sha256, sha384, sha512), and a URL-index file whose
page announces no usable hash is downloaded and hashed. A URL index must answer at all
(:meth:`ArtifactIndex.check_url`). Below the stages,
because ``pinfold fetch`` and ``pinfold lock`` ask the same question of single pins
(:func:`check_pins`), and the pre-flight stage, fetch and the uv backend use the report.

env.yaml's ``targets`` are resolved here too (:func:`target_interpreters`): an interpreter
is asked about itself, a (version, platform) pair gets the markers and wheel tags of
CPython on that platform. A build for an interpreter that matches none of them is refused.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging import tags as packaging_tags
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name

from .errors import PreflightError, Problem
from .index import ArtifactIndex, IndexFile
from .interpreter import Interpreter, inspect_interpreter
from .locks import Lock, Pin, split_pin
from .paths import display_path
from .runner import Runner
from .spec import Spec
from .spec.model import TargetSpec

__all__ = ["IDENTITY_MARKERS", "PreflightReport", "check_pins", "describe", "fits_targets",
           "pair_interpreter", "preflight", "refuse_outside_targets", "target_interpreters"]

#: The markers that tell targets apart (and an interpreter from a target it does not fit).
IDENTITY_MARKERS = ("implementation_name", "python_version", "sys_platform", "platform_machine")


def pair_interpreter(target: TargetSpec) -> Interpreter:
    """CPython ``target.python_version`` on Linux ``target.machine``: its markers and wheel tags.

    No interpreter runs: the tags are those pip would compute there (packaging's
    ``cpython_tags`` and ``compatible_tags``, every manylinux level up to the target's glibc).
    """
    major, minor = (int(p) for p in target.python_version.split("."))
    machine = target.machine
    platforms = [f"manylinux_{target.glibc[0]}_{m}_{machine}" for m in range(target.glibc[1], 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = [p for m, plat in zip(range(target.glibc[1], 4, -1), platforms, strict=True)
                 for p in ([plat, f"{legacy[m]}_{machine}"] if m in legacy else [plat])]
    platforms.append(f"linux_{machine}")
    version = (major, minor)
    tags = [*packaging_tags.cpython_tags(version, platforms=platforms),
            *packaging_tags.compatible_tags(version, f"cp{major}{minor}", platforms)]
    full = f"{major}.{minor}.0"
    markers = {
        "implementation_name": "cpython", "implementation_version": full, "os_name": "posix",
        "platform_machine": machine, "platform_python_implementation": "CPython",
        "platform_release": "", "platform_system": "Linux", "platform_version": "",
        "python_full_version": full, "python_version": f"{major}.{minor}", "sys_platform": "linux",
    }
    return Interpreter(executable="", version=full, implementation="cpython", abi=f"cpython-{major}{minor}",
                       markers=markers, tags=tuple(str(t) for t in tags))


def target_interpreters(spec: Spec, runner: Runner, interp: Interpreter | None = None) -> list[Interpreter]:
    """env.yaml's ``targets`` as interpreters (pairs without an executable); without
    ``targets``, env.yaml's ``python`` alone (``interp`` when the caller inspected it)."""
    if not spec.targets:
        return [interp or inspect_interpreter(spec.python, runner)]
    return [inspect_interpreter(t.python, runner) if t.python else pair_interpreter(t) for t in spec.targets]


def describe(interp: Interpreter) -> str:
    """``Python 3.12.1 on linux x86_64 (/usr/bin/python3.12)``, for messages."""
    where = f" ({interp.executable})" if interp.executable else ""
    return (f"Python {interp.version} on {interp.markers.get('sys_platform')} "
            f"{interp.markers.get('platform_machine')}{where}")


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def fits_targets(interp: Interpreter, targets: Sequence[TargetSpec]) -> bool:
    """Whether ``interp`` is one of ``targets`` (an interpreter named there, or a pair it is)."""
    if not targets:
        return True
    for target in targets:
        if target.python:
            if _real(target.python) == _real(interp.executable):
                return True
            continue
        pair = pair_interpreter(target)
        if all(pair.markers[k] == interp.markers.get(k) for k in IDENTITY_MARKERS):
            return True
    return False


def refuse_outside_targets(spec: Spec, interp: Interpreter) -> None:
    """Raise :class:`PreflightError` when env.yaml has ``targets`` and ``interp`` is none of them."""
    if fits_targets(interp, spec.targets):
        return
    raise PreflightError(
        f"pre-flight: {describe(interp)} is not one of env.yaml's targets, so the locks were not "
        "written for it; nothing was built",
        [Problem("targets", "the locks are for " + ", ".join(t.label for t in spec.targets))],
        tip="build with one of the targets, or add this interpreter to `targets` and run `pinfold lock`")


@dataclass(frozen=True, slots=True)
class PreflightReport:
    """What pre-flight learned: the pins that apply and which build from source."""

    runtime: tuple[Pin, ...]
    build: tuple[Pin, ...]
    #: Runtime pins that will be built from an sdist (no fitting wheel in the lock).
    from_source: tuple[Pin, ...] = field(default=())
    #: The artifact chosen for each applying pin (best wheel, else the sdist).
    chosen: dict[str, IndexFile] = field(default_factory=dict)


def _role(pin: Pin, build: bool, runtime: dict[NormalizedName, Pin]) -> str:
    if not build:
        return ""
    needers = []
    for via in pin.via:
        name = canonicalize_name(split_pin(via)[0].split("[")[0].strip())
        needers.append(str(runtime[name]) if name in runtime else via)
    return f" (build dependency of {', '.join(needers)})" if needers else " (build dependency)"


def check_pins(pins: Iterable[Pin], *, build: bool, index: ArtifactIndex, interp: Interpreter,
               runtime: dict[NormalizedName, Pin], problems: list[Problem],
               chosen: dict[str, IndexFile]) -> list[Pin]:
    """Check each pin against the index; return those that must be built from source."""
    rank = {Tag(*t.split("-")): i for i, t in enumerate(interp.tags)}
    from_source = []
    for pin in pins:
        role = _role(pin, build, runtime)
        files = index.files(pin.name, pin.version)
        if not files:
            detail = f"not in {index.describe()}"
            if ignored := index.rejected(pin.name):
                detail += ("; links ignored because their file name is not a plain name: "
                           + ", ".join(repr(n) for n in ignored))
            problems.append(Problem(f"{pin}{role}", detail))
            continue
        good: list[IndexFile] = []
        bad: list[tuple[str, set[str]]] = []
        mismatched = False
        for f in files:
            fits = f.is_sdist or bool(f.tags and f.tags & rank.keys())
            if not fits and not index.can_verify_cheaply(f, pin.hashes):
                continue  # never used for this interpreter: not worth a download to hash it
            where = display_path(Path(f.location)) if "://" not in f.location else f.location
            try:
                digests = index.digests(f, pin.hashes)
            except OSError as exc:
                problems.append(Problem(where, f"cannot download it to check its hash for {pin}{role}: "
                                               f"{getattr(exc, 'reason', exc)}"))
                mismatched = True
                continue
            if digests & pin.hashes:
                if f.digest is None and (sha := next((d for d in digests if d.startswith("sha256:")), None)):
                    f = dataclasses.replace(f, digest=sha)
                good.append(f)
                continue
            mismatched = True
            bad.append((where, digests))
        for where, digests in bad:
            expected = ", ".join(sorted(pin.hashes))
            # Another artifact of the pin matches: this one may be changed, or one the lock
            # left out on purpose (`--no-binary NAME` locks only the sdist). Either way it is
            # not what the lock vouches for, and a wheelhouse should hold nothing else.
            why = ("the file was changed or replaced, or the lock leaves it out (e.g. `--no-binary`): "
                   "remove it" if good
                   else "the file was changed or replaced: remove it and run `pinfold fetch`")
            problems.append(Problem(
                where,
                f"hash mismatch for {pin}{role}: the file has {', '.join(sorted(digests))}, the lock "
                f"expects {expected}; {why}"))
        wheels = [f for f in good if f.tags is not None and f.tags & rank.keys()]
        sdists = [f for f in good if f.is_sdist]
        if wheels:
            # The wheel with the most preferred tag, as pip would choose.
            chosen[str(pin)] = min(wheels, key=lambda f: min(rank[t] for t in (f.tags or set()) if t in rank))
        elif sdists:
            chosen[str(pin)] = sdists[0]
            from_source.append(pin)
        elif not mismatched:
            names = ", ".join(f.filename for f in files)
            problems.append(Problem(f"{pin}{role}", f"no artifact fits {interp.implementation} "
                                    f"{interp.version} ({interp.tags[0]}): the index has {names}"))
    return from_source


def preflight(spec: Spec, interp: Interpreter, index: ArtifactIndex) -> PreflightReport:
    """Check both locks against the index; raise :class:`PreflightError` listing every gap.

    With ``targets`` in env.yaml, ``interp`` must be one of them.
    """
    refuse_outside_targets(spec, interp)
    runtime = tuple(p for p in spec.requirements.pins if p.applies(interp.markers))
    build_lock: Lock | None = spec.build_requirements
    build = tuple(p for p in build_lock.pins if p.applies(interp.markers)) if build_lock else ()
    index.check_url()
    index.prefetch([p.name for p in runtime + build])
    problems: list[Problem] = []
    chosen: dict[str, IndexFile] = {}
    by_name = {p.name: p for p in runtime}
    from_source = check_pins(runtime, build=False, index=index, interp=interp, runtime=by_name,
                             problems=problems, chosen=chosen)
    # Build dependencies that are themselves sdists need build dependencies too: the
    # build lock covers them, and pip rejects any that it does not (fails closed).
    check_pins(build, build=True, index=index, interp=interp, runtime=by_name,
               problems=problems, chosen=chosen)
    if (from_source or spec.develop) and build_lock is None:
        needers = [str(p) for p in from_source] + [display_path(d) for d in spec.develop]
        problems.append(Problem("build_requirements", f"missing: {', '.join(needers)} must be built "
                                "from source, so their build dependencies must be locked"))
    if problems:
        count = len(problems)
        raise PreflightError(
            f"pre-flight: {count} problem{'s' if count > 1 else ''} with the index "
            f"({index.describe()}); nothing was built",
            problems,
            tip="run `pinfold fetch` to download the locked artifacts, or fix the locks",
        )
    return PreflightReport(runtime, build, tuple(from_source), chosen)
