"""Pre-flight: before anything is created, prove the index can serve both locks.

Every pin of both locks that applies to the target interpreter must have an artifact in
the index whose hash is in the lock and which fits the interpreter; hashes are compared in
whichever algorithms the lock uses (sha256, sha384, sha512), and a URL-index file whose
page announces no usable hash is downloaded and hashed. A URL index must answer at all
(:meth:`ArtifactIndex.check_url`). Below the stages,
because ``pinfold fetch`` and ``pinfold lock`` ask the same question of single pins
(:func:`check_pins`), and the pre-flight stage, fetch and the uv backend use the report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name

from .errors import PreflightError, Problem
from .index import ArtifactIndex, IndexFile
from .interpreter import Interpreter
from .locks import Lock, Pin, split_pin
from .paths import display_path
from .spec import Spec

__all__ = ["PreflightReport", "check_pins", "preflight"]


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
    """Check both locks against the index; raise :class:`PreflightError` listing every gap."""
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
