"""``pinfold lock``: env.yaml's needs -> the runtime lock and the build lock.

The order is visible in :func:`lock`: resolve the runtime needs (pip-compile, against
the spec's index or, with ``upstream``, an upstream index whose artifacts are then
downloaded into the wheelhouse); find the sdists the runtime lock selects for the
target interpreter; ask each one's build backend what it needs (``builddeps``); compile
those into the build lock; repeat for build dependencies that are sdists themselves,
until nothing new appears; render both files and write them only when both succeeded.

Each lock is resolved once per target (env.yaml's ``python``, or each of its
``targets``) and the results merged (:func:`_merge`): a pin every target chose has no
marker, one that only some chose gets a marker naming them (``python_version ==
"3.11"``), and every pin holds the hash of every artifact the index has for it. The
target decides through its markers and wheel tags whatever runs pinfold
(:mod:`.resolve` says how).

How far it is goes to ``on_progress`` as :class:`~pinfold.results.Progress` of the
``lock`` stage: the step being resolved, targets resolved k / n (several targets),
build backends asked k / n; and, online, ``fetch``'s artifacts and bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from .. import fetch as fetching
from ..errors import Problem, SpecError
from ..index import ArtifactIndex, IndexFile, download, redact, sha256_of
from ..interpreter import Interpreter, inspect_interpreter
from ..locks import Lock, Pin
from ..needs import REQUIRE_PINS, Needs, read_needs, relative
from ..paths import display_path
from ..preflight import IDENTITY_MARKERS, check_pins, target_interpreters
from ..results import Progress
from ..runner import Runner
from ..spec import IndexSpec, Spec
from ..spec.model import TargetSpec
from .builddeps import BuildNeeds, Discovery, Needer
from .diff import LockChanges, diff_pins
from .errors import BuildDepsUnavailable, LockError, StaleLockError
from .needs import read_record, record_items, stale_problems
from .resolve import Source, compile_pins
from .writer import render_lock, write_files

__all__ = ["CheckReport", "LockOptions", "LockReport", "check_locks", "lock"]

#: Rounds of "discover, compile, look for new sdists": build dependencies of build
#: dependencies rarely go deeper than two.
_MAX_ROUNDS = 6
#: The markers that must agree between pinfold's interpreter and a target for pip-compile
#: to resolve for it: pip-compile evaluates markers for the interpreter it runs in.
_RESOLVER_MARKERS = IDENTITY_MARKERS


@dataclass(frozen=True, kw_only=True, slots=True)
class LockOptions:
    """How ``pinfold lock`` runs."""

    #: None: the spec's index, offline. A URL, or "" for pip's default index: resolve
    #: upstream (online) and download every locked artifact into the wheelhouse.
    upstream: str | None = None
    #: Move every pin to the newest version the needs allow.
    upgrade: bool = False
    #: Move only these pins (names, or ``name==version``); the others keep their pin.
    upgrade_packages: tuple[str, ...] = ()
    #: Compute and report, write nothing (with ``upstream``: download into a temporary folder).
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class LockReport:
    """What ``lock`` computed, changed and wrote."""

    runtime_path: Path
    build_path: Path | None
    runtime: LockChanges
    build: LockChanges
    #: The sdists and develop trees whose build dependencies the build lock holds.
    built_from_source: tuple[str, ...] = ()
    written: tuple[Path, ...] = ()
    dry_run: bool = False
    #: Artifacts downloaded into the wheelhouse (``upstream`` only).
    downloaded: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    runtime_pins: int = 0
    build_pins: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "runtime": {"path": str(self.runtime_path), "pins": self.runtime_pins, **self.runtime.to_json()},
            "build": {"path": str(self.build_path) if self.build_path else None, "pins": self.build_pins,
                      **self.build.to_json()},
            "built_from_source": list(self.built_from_source),
            "written": [str(p) for p in self.written],
            "dry_run": self.dry_run,
            "downloaded": list(self.downloaded),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }


def _uv_target(interp: Interpreter, spec_python: str, target: TargetSpec | None) -> list[str] | None:
    """How uv names ``interp`` as its target; None when pip-compile can resolve for it."""
    tool = default_environment()
    if all(tool.get(k) == interp.markers.get(k) for k in _RESOLVER_MARKERS):
        return None
    if interp.executable:
        return ["--python", interp.executable]
    assert target is not None  # a pair: only `targets` entries have no executable
    # uv builds sdists' metadata with an interpreter: env.yaml's, whatever the pair is.
    return ["--python", spec_python, "--python-version", target.python_version,
            "--python-platform", f"{target.machine}-manylinux_{target.glibc[0]}_{target.glibc[1]}"]


def _target_marker(chosen: Sequence[Interpreter], every: Sequence[Interpreter]) -> Marker | None:
    """The marker that holds on exactly the targets in ``chosen`` (None: on all of them)."""
    if len(chosen) == len(every):
        return None
    varying = [k for k in ("python_version", "sys_platform", "platform_machine")
               if len({t.markers.get(k) for t in every}) > 1] or list(_RESOLVER_MARKERS)
    terms = []
    for t in chosen:
        conj = " and ".join(f'{k} == "{t.markers.get(k)}"' for k in varying)
        terms.append(f"({conj})" if len(varying) > 1 and len(chosen) > 1 else conj)
    return Marker(" or ".join(dict.fromkeys(terms)))


def _merge(results: Sequence[Sequence[Pin]], targets: Sequence[Interpreter]) -> list[Pin]:
    """Per-target pins -> one lock valid for all targets (see the module docstring)."""
    if len(results) == 1:
        return list(results[0])
    found: dict[tuple[NormalizedName, str], tuple[Pin, list[int]]] = {}
    for i, pins in enumerate(results):
        for pin in pins:
            key = (pin.name, str(pin.version))
            if key in found:
                was, where = found[key]
                merged = dataclasses.replace(was, hashes=was.hashes | pin.hashes,
                                             via=tuple(sorted({*was.via, *pin.via}, key=str.lower)))
                found[key] = (merged, [*where, i])
            else:
                found[key] = (pin, [i])
    return [dataclasses.replace(pin, marker=_target_marker([targets[i] for i in where], targets))
            for pin, where in found.values()]


def _input_text(needs: Needs, requirements: Iterable[str], constraints_file: str | None) -> str:
    lines = [o for o in needs.options if o != REQUIRE_PINS]  # pinfold's own: not pip-compile's
    if constraints_file:
        lines.append(f"-c {constraints_file}")
    lines += list(requirements)
    return "".join(f"{line}\n" for line in lines)


def _require_pins(needs: Needs, pins: Sequence[Pin], own: set[str],
                  targets: Sequence[Mapping[str, str]]) -> None:
    """``--require-pins`` (Buildout's ``allow-picked-versions = false``): every runtime pin
    is one a ``==`` constraint or need names for each target it applies to (a pin under a
    marker that does not hold there, such as a ``[versions:python27]`` one, pins nothing
    there); the others are listed, nothing is written."""
    pinned: list[tuple[NormalizedName, Marker | None]] = []
    for text in (*needs.constraints, *needs.requirements):
        req = Requirement(text)
        if any(s.operator in ("==", "===") for s in req.specifier):
            pinned.append((canonicalize_name(req.name), req.marker))

    def is_pinned(name: NormalizedName, markers: Mapping[str, str]) -> bool:
        return any(n == name and (m is None or m.evaluate(dict(markers))) for n, m in pinned)

    picked = sorted(f"{p.name}=={p.version}" for p in pins if p.name not in own
                    and not all(is_pinned(p.name, t) for t in targets if p.applies(t)))
    if picked:
        raise LockError(f"{needs.label}: --require-pins: {len(picked)} version(s) would be picked that the "
                        "constraints do not pin (Buildout's allow-picked-versions = false)",
                        [Problem("picked", p) for p in picked],
                        tip="pin them in the constraints file (-c), or remove --require-pins")


def _local_artifact(f: IndexFile, dest: Path, index: ArtifactIndex) -> Path:
    """A local path for an index artifact: as is, or downloaded from the local index URL
    (with the index's own opener: its credentials, CA bundle and timeout)."""
    path = f.local_path()
    if path is not None:
        return path
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f.filename
    try:
        download(f.location, target, timeout=index.spec.timeout, opener=index.opener)
    except OSError as exc:
        raise LockError(redact(f"cannot download {f.filename} from {f.location}: {exc}")) from None
    if f.digest and sha256_of(target) != f.digest:
        raise LockError(redact(f"{f.location}: the file's hash is not the one the index announces "
                               f"({f.digest})"))
    return target


class _Locker:
    """One run of ``pinfold lock``: shared state of its steps."""

    def __init__(self, spec: Spec, options: LockOptions, runner: Runner,
                 say: Callable[[str | Progress], None], workdir: Path) -> None:
        self.spec = spec
        self.options = options
        self.runner = runner
        self.say = say
        self.workdir = workdir
        self.online = options.upstream is not None
        self.source = Source.upstream(options.upstream) if self.online else Source.local(spec)
        self.interp = inspect_interpreter(spec.python, runner)
        #: What the locks are for: env.yaml's ``targets``, else its ``python``.
        self.targets = target_interpreters(spec, runner, self.interp)
        self._uv = [_uv_target(t, spec.python, spec.targets[i] if spec.targets else None)
                    for i, t in enumerate(self.targets)]
        self.discovery = Discovery(runner, self.source, self.interp, workdir / "discovery")
        self.downloaded: list[str] = []
        self.warnings: list[str] = []
        # Online, artifacts land in the wheelhouse (a temporary one for --dry-run); checks
        # of "which pins build from source" always look at local files.
        local = spec.index
        if self.online:
            if not spec.index.find_links:
                raise SpecError(f"{display_path(spec.file)}: index.find_links: `pinfold lock "
                                "--upstream` downloads into a wheelhouse folder, and this spec has none",
                                tip="add a find_links folder")
            first: tuple[Path, ...] = ()
            if options.dry_run:
                first = (workdir / "wheelhouse",)
                first[0].mkdir()
            local = IndexSpec(find_links=(*first, *spec.index.find_links))
        self.local = local
        self.upgraded = {canonicalize_name(Requirement(p).name) for p in options.upgrade_packages}
        #: Build-lock compiles by input: a round that adds no new requirement reuses the pins.
        self._compiled: dict[str, list[Pin]] = {}

    # -- steps --------------------------------------------------------------------------

    def develop_trees(self, constraints: Sequence[str]) -> list[BuildNeeds]:
        found = []
        for k, tree in enumerate(self.spec.develop):
            # Relative to env.yaml's folder, like every path in a lock: never the cwd.
            label = f"{relative(tree, self.spec.root)} (develop)"
            self.say(f"asking the build backend of {label} for its requirements")
            self.say(Progress("lock", k, len(self.spec.develop), "backends asked", label))
            found.append(self.discovery.run(Needer(label=label, path=tree, editable=True), constraints))
        return found

    def resolve_runtime(self, needs: Needs, develop: list[BuildNeeds]) -> list[Pin]:
        work = self.workdir / "runtime"
        work.mkdir()
        inputs = ["needs.in"]
        cfile = None
        if needs.constraints:
            cfile = "constraints.txt"
            (work / cfile).write_text("".join(f"{c}\n" for c in needs.constraints), encoding="utf-8")
        (work / "needs.in").write_text(_input_text(needs, needs.requirements, cfile), encoding="utf-8")
        origins: dict[str, list[str]] = {r: [needs.label] for r in needs.requirements}
        own = {t.name for t in develop}  # develop trees requiring each other: not from the index
        for i, found in enumerate(develop):
            name = f"develop-{i}.in"
            reqs = [r for r in found.runtime if canonicalize_name(Requirement(r).name) not in own]
            (work / name).write_text("".join(f"{r}\n" for r in reqs), encoding="utf-8")
            inputs.append(name)
            for r in reqs:
                origins.setdefault(r, []).append(found.needer.label)
        self.say(f"resolving the runtime needs against {self.source.description}")
        self.say(Progress("lock", 0, item="resolving the runtime needs"))
        keep = [p for p in self.spec.requirements.pins]
        pins = self.compile_all(work, inputs=inputs, name="runtime", keep=keep, origins=origins,
                                what="resolving the runtime needs")
        pins = self.keep_hashes(pins, keep)
        # pip-compile's `-r <input>` annotations are gone from the parsed pins: name the
        # top-level needs (and develop trees) that ask for each pin directly instead.
        direct: dict[NormalizedName, set[str]] = {}
        for req, needers in origins.items():
            direct.setdefault(canonicalize_name(Requirement(req).name), set()).update(needers)
        if REQUIRE_PINS in needs.options:
            _require_pins(needs, pins, own, [t.markers for t in self.targets])
        return [dataclasses.replace(p, via=_via(direct.get(p.name, set()), p.via)) for p in pins]

    def compile_all(self, work: Path, *, inputs: Sequence[str], name: str, keep: Sequence[Pin],
                    origins: dict[str, list[str]], what: str) -> list[Pin]:
        """Resolve ``inputs`` (files in ``work``) for every target; the merged pins."""
        results = []
        for i, (target, uv) in enumerate(zip(self.targets, self._uv, strict=True)):
            here = work
            if len(self.targets) > 1:
                here = work / f"target-{i}"
                here.mkdir()
                for item in work.iterdir():
                    if item.is_file():
                        (here / item.name).write_bytes(item.read_bytes())
                what_here = f"{what} for {_label(target)}"
                # Each target is one resolver run: k / n of them is how far the step is.
                self.say(Progress("lock", i, len(self.targets), "targets", what_here))
            else:
                what_here = what
            pins = compile_pins(self.runner, self.source, here, inputs=inputs, name=name,
                                keep=[p for p in keep if p.applies(target.markers)],
                                upgrade=self.options.upgrade, upgrade_packages=self.options.upgrade_packages,
                                origins=origins, what=what_here, uv_target=uv)
            results.append(self.index_hashes(pins) if uv is not None else pins)
        return _merge(results, self.targets)

    def index_hashes(self, pins: Sequence[Pin]) -> list[Pin]:
        """``pins`` with the hash of every artifact the (local) index holds for each.

        uv hashes only what fits its target and no local sdist; pip-compile hashes every
        artifact of the version, and a lock for several targets needs them all.
        """
        index = ArtifactIndex(self.local)
        out = []
        for pin in pins:
            found = set(pin.hashes)
            for f in index.files(pin.name, pin.version):
                try:
                    found |= {d for d in index.digests(f, {"sha256:"}) if d.startswith("sha256:")}
                except OSError as exc:
                    raise LockError(f"cannot hash {f.filename} for {pin}: {exc}") from None
            out.append(dataclasses.replace(pin, hashes=frozenset(found)))
        return out

    def keep_hashes(self, pins: Sequence[Pin], old: Sequence[Pin]) -> list[Pin]:
        """``pins`` with the hashes of the old lock's pin kept wherever the version stays.

        pip-compile hashes what the index holds now (``--no-reuse-hashes``), and a
        wheelhouse filled by `pinfold fetch` holds only this platform's files: taking its
        answer alone would drop every other platform's hash on a relock that changed
        nothing. So a pin that does not move keeps its hashes and gains those of artifacts
        the index added; its hashes start afresh only when it moves, or ``--upgrade`` /
        ``--upgrade-package`` names it. Locking is a fixed point.
        """
        if self.options.upgrade:
            return list(pins)
        before = {(p.name, p.version): p for p in old if p.name not in self.upgraded}
        out = []
        for pin in pins:
            was = before.get((pin.name, pin.version))
            if was is not None and not was.hashes <= pin.hashes:
                pin = dataclasses.replace(pin, hashes=pin.hashes | was.hashes)
            out.append(pin)
        return out

    def fetch(self, runtime: Sequence[Pin], build: Sequence[Pin]) -> None:
        """Online: download the pins' artifacts into the (first) wheelhouse, as `pinfold fetch`."""
        spec = dataclasses.replace(
            self.spec, index=self.local, requirements=Lock(self.spec.requirements.path, tuple(runtime)),
            # An empty build lock, not None: fetch's final pre-flight then accepts sdists.
            build_requirements=Lock(self._build_path() or self.workdir / "build.txt", tuple(build)))
        report = fetching.fetch(spec, runner=self.runner, index_url=self.options.upstream or None,
                       on_progress=self.say, interp=self.interp)
        self.downloaded += report.downloaded

    def from_source(self, pins: Sequence[Pin], *, build: bool) -> list[Needer]:
        """The pins that some target builds from an sdist (no fitting wheel)."""
        index = ArtifactIndex(self.local)
        out: dict[str, Needer] = {}
        for target in self.targets:
            problems: list[Problem] = []
            chosen: dict[str, IndexFile] = {}
            applying = [p for p in pins if p.applies(target.markers)]
            sdists = check_pins(applying, build=build, index=index, interp=target, runtime={},
                                problems=problems, chosen=chosen)
            self.warnings += [str(p) for p in problems if str(p) not in self.warnings]
            for p in sdists:
                if str(p) not in out:
                    out[str(p)] = Needer(label=str(p),
                                         path=_local_artifact(chosen[str(p)], self.workdir / "sdists",
                                                              index))
        return list(out.values())

    def _build_path(self) -> Path | None:
        return self.spec.build_requirements.path if self.spec.build_requirements else None

    def discover(self, needer: Needer, constraints: Sequence[str], preferred: Sequence[str]) -> BuildNeeds:
        """Ask ``needer``'s backend, preferring the versions the build lock pins."""
        if preferred:
            try:
                return self.discovery.run(needer, [*constraints, *preferred])
            except BuildDepsUnavailable:
                pass  # the old pins no longer fit together with the new needs: try without them
        return self.discovery.run(needer, constraints)

    def resolve_build(self, build_needs: Needs | None, found: dict[str, BuildNeeds],
                      round_no: int) -> list[Pin]:
        work = self.workdir / f"build-{round_no}"
        work.mkdir()
        origins: dict[str, list[str]] = {}
        for label, item in sorted(found.items()):
            for req in item.requires:
                origins.setdefault(req, []).append(label)
        extra = build_needs.requirements if build_needs else ()
        for req in extra:
            origins.setdefault(req, []).append(build_needs.label if build_needs else "")
        requirements = sorted({*origins})
        cfile = None
        if build_needs and build_needs.constraints:
            cfile = "constraints.txt"
            (work / cfile).write_text("".join(f"{c}\n" for c in build_needs.constraints), encoding="utf-8")
        options = build_needs or Needs(key="build_needs", label="")
        text = _input_text(options, requirements, cfile)
        if text not in self._compiled:
            self.say(f"resolving the build dependencies against {self.source.description}")
            self.say(Progress("lock", 0, item="resolving the build dependencies"))
            (work / "build.in").write_text(text, encoding="utf-8")
            old = self.spec.build_requirements.pins if self.spec.build_requirements else ()
            self._compiled[text] = self.keep_hashes(self.compile_all(
                work, inputs=["build.in"], name="build", keep=old, origins=origins,
                what="resolving the build dependencies"), old)
        pins = self._compiled[text]
        # `# via`: the sdists (and develop trees) that ask for a pin directly, then the
        # build dependencies that need it in turn (pip-compile's own annotation).
        direct: dict[NormalizedName, set[str]] = {}
        for req, labels in origins.items():
            direct.setdefault(canonicalize_name(Requirement(req).name), set()).update(labels)
        return [dataclasses.replace(p, via=_via(direct.get(p.name, set()), p.via)) for p in pins]

    def build_lock(self, build_needs: Needs | None, needers: list[Needer],
                   develop: list[BuildNeeds]) -> tuple[list[Pin], list[str]]:
        """Discover, compile, repeat for sdists among the build dependencies: the closure."""
        constraints = [*_constraints(build_needs)]
        old = self.spec.build_requirements.pins if self.spec.build_requirements else ()
        preferred = [] if self.options.upgrade else [
            f"{p.name}=={p.version}" for p in old
            if p.name not in self.upgraded and p.applies(self.interp.markers)]
        found: dict[str, BuildNeeds] = {d.needer.label: d for d in develop}
        pending = needers
        pins: list[Pin] = []
        for round_no in range(_MAX_ROUNDS):
            if pending:
                self.say(f"asking the build backends of {len(pending)} sdist(s) for their build "
                         f"requirements: {', '.join(n.label for n in pending)}")
            # Independent sdists are asked in parallel: most of the time is pip filling
            # their environments. Results are kept in the order of `pending`.
            workers = max(1, min(4, len(pending), os.cpu_count() or 1))
            with ThreadPoolExecutor(workers) as pool:
                ask = functools.partial(self.discover, constraints=constraints, preferred=preferred)
                asked = {pool.submit(ask, n): n for n in pending}
                self.say(Progress("lock", 0, len(pending), "backends asked"))
                for k, future in enumerate(as_completed(asked), 1):
                    self.say(Progress("lock", k, len(pending), "backends asked", asked[future].label))
                # In the order of `pending`; the first failure in that order is raised.
                answers = [future.result() for future in asked]
            found.update((a.needer.label, a) for a in answers)
            if not found and not (build_needs and build_needs.requirements):
                return [], []
            pins = self.resolve_build(build_needs, found, round_no)
            if self.online:
                self.fetch([], pins)
            pinned = {p.name: str(p.version) for p in pins}
            # Build dependencies that are sdists have build dependencies too.
            new = [n for n in self.from_source(pins, build=True) if n.label not in found]
            # A backend that answered with other versions installed than the lock pins is
            # asked again with the lock's versions: it must answer as it will at build time.
            stale = [d.needer for d in found.values()
                     if any(pinned.get(canonicalize_name(n), v) != v for n, v in d.environment.items())]
            pending = new + [n for n in stale if n not in new]
            preferred = [f"{n}=={v}" for n, v in sorted(pinned.items())]
            if not pending:
                return pins, sorted(found)
        raise LockError(f"the build dependencies did not settle after {_MAX_ROUNDS} rounds",
                        [Problem(n.label, "still changing") for n in pending],
                        tip="pin the build dependencies in env.yaml's build_needs")


def _label(interp: Interpreter) -> str:
    return (f"Python {interp.markers.get('python_version')} on {interp.markers.get('sys_platform')} "
            f"{interp.markers.get('platform_machine')}")


def _via(direct: Iterable[str], parents: Iterable[str]) -> tuple[str, ...]:
    """A pin's ``# via``: who asks for it directly, and (pip-compile's) which pins need it."""
    return tuple(sorted({*direct, *(v for v in parents if not v.startswith(("-r ", "-c ")))},
                        key=str.lower))


def _constraints(build_needs: Needs | None) -> list[str]:
    """build_needs as pip constraints for the discovery environments (no extras allowed there)."""
    if build_needs is None:
        return []
    out = []
    for text in [*build_needs.requirements, *build_needs.constraints]:
        req = Requirement(text)
        req.extras = set()
        out.append(str(req))
    return out


def lock(spec: Spec, *, options: LockOptions | None = None, runner: Runner | None = None,
         on_progress: Callable[[str | Progress], None] | None = None) -> LockReport:
    """Compile both locks from ``spec``'s needs; write them unless ``options.dry_run``.

    Raise :class:`LockError` (nothing written) when the needs cannot be resolved from
    the index, or a build backend cannot report its requirements.
    """
    start = time.monotonic()
    options = options or LockOptions()
    runner = runner or Runner()
    say = on_progress or (lambda _: None)
    if spec.needs is None:
        raise SpecError(f"{display_path(spec.file)}: needs: missing: `pinfold lock` compiles the locks "
                        "from env.yaml's top-level needs",
                        tip="add `needs: requirements.in` (a requirements file) or a list of requirements")
    needs, _ = read_needs(spec.needs, spec.root)
    build_needs = read_needs(spec.build_needs, spec.root)[0] if spec.build_needs else None
    with tempfile.TemporaryDirectory(prefix="pinfold-lock-") as tmp:
        locker = _Locker(spec, options, runner, say, Path(tmp))
        develop = locker.develop_trees(_constraints(build_needs))
        runtime = locker.resolve_runtime(needs, develop)
        if locker.online:
            locker.fetch(runtime, [])
        sdists = locker.from_source(runtime, build=False)
        build, covered = locker.build_lock(build_needs, sdists, develop)
        warnings = list(locker.warnings)
        downloaded = tuple(locker.downloaded)
    if (build or covered) and spec.build_requirements is None:
        raise SpecError(f"{display_path(spec.file)}: build_requirements: missing: "
                        f"{', '.join(covered) or 'build_needs'} must be built from source, so "
                        "their build dependencies need a lock",
                        tip="add `build_requirements: requirements/build.txt` to env.yaml")
    for name in sorted(locker.upgraded - {p.name for p in [*runtime, *build]}):
        warnings.append(f"--upgrade-package {name}: it is in neither lock")
    # Buildout's versions files pin far more than a project needs (a framework's whole set):
    # a constraint that pins nothing in the lock is worth a line, not a failure.
    locked = {p.name for p in runtime}
    for text in needs.constraints:
        name = canonicalize_name(Requirement(text).name)
        if name not in locked:
            warnings.append(f"constraint {text} pins nothing: no need asks for {name}")
    # A pylock names its artifacts: they are looked up where this run put them (a dry run's
    # downloads are gone by now, and its text is never written).
    artifacts = None if options.dry_run else locker.local
    files = [(spec.requirements.path,
              render_lock("runtime", spec.file.name, "needs", record_items(spec, "needs") or [], runtime,
                          path=spec.requirements.path, index=artifacts))]
    if spec.build_requirements is not None:
        files.append((spec.build_requirements.path,
                      render_lock("build", spec.file.name, "build_needs",
                                  record_items(spec, "build_needs") or [], build,
                                  path=spec.build_requirements.path, index=artifacts)))
    written = () if options.dry_run else tuple(write_files(files))
    old_build = spec.build_requirements.pins if spec.build_requirements else ()
    return LockReport(
        runtime_path=spec.requirements.path,
        build_path=spec.build_requirements.path if spec.build_requirements else None,
        runtime=diff_pins(spec.requirements.pins, runtime), build=diff_pins(old_build, build),
        built_from_source=tuple(covered), written=written, dry_run=options.dry_run,
        downloaded=downloaded, warnings=tuple(warnings), seconds=time.monotonic() - start,
        runtime_pins=len(runtime), build_pins=len(build))


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckReport:
    """``pinfold lock --check`` found the locks current."""

    paths: tuple[Path, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"current": True, "locks": [str(p) for p in self.paths]}


def check_locks(spec: Spec) -> CheckReport:
    """For CI: raise :class:`StaleLockError` unless the locks record exactly env.yaml's needs.

    This reads files only: no resolving, no index, no network.
    """
    if spec.needs is None:
        raise SpecError(f"{display_path(spec.file)}: needs: missing: --check compares the locks "
                        "with env.yaml's needs, and there are none")
    problems: list[Problem] = []
    locks = [("needs", spec.requirements)]
    if spec.build_requirements is not None:
        locks.append(("build_needs", spec.build_requirements))
    for key, lock_ in locks:
        shown = display_path(lock_.path)
        if not lock_.path.exists():
            problems.append(Problem(shown, "missing: run `pinfold lock` to write it"))
        elif read_record(lock_.path, key) is None:
            problems.append(Problem(shown, f"records no `{key}`: it was not written by `pinfold lock`, "
                                           "so whether it matches cannot be told"))
    if not problems:
        problems = stale_problems(spec)
    if problems:
        raise StaleLockError("the locks do not match env.yaml's needs", problems,
                             tip="run `pinfold lock` (it keeps every other pin) and commit the locks")
    return CheckReport(paths=tuple(lock_.path for _, lock_ in locks))
