"""The build: stage sequence, pre-flight checks, timings, the environment switch, the result."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ._version import __version__
from .changes import Plan, fingerprint, make_plan
from .envdir import Cleanup, Environments
from .errors import BuildError, PinfoldError
from .index import ArtifactIndex
from .interpreter import Interpreter
from .locking.needs import require_current_locks
from .manifest import HashMemo, Manifest, Tokens, scan, write_manifest
from .paths import display_path
from .record import EnvRecord, PythonRecord, Watch
from .results import BuildResult, OnEvent, StageEvent, StageReport
from .runner import Runner
from .spec import Spec
from .stages import (
    ApplyPlan,
    CloneCurrent,
    Compile,
    Context,
    CreateFresh,
    Develop,
    InstallLock,
    KeptDevelop,
    PluginCaches,
    Preflight,
    Probes,
    Scripts,
    Stage,
)
from .uptodate import identity, interpreter_stamp, watch_of

__all__ = ["BuildResult", "StageEvent", "StageReport", "build", "check", "gc", "plan", "rollback"]


def _stages(plan: Plan) -> list[Stage]:
    """The stages of a build: an update starts from a clone of the current environment."""
    if plan.mode == "update" and plan.current is not None:
        return [Preflight(), CloneCurrent(plan.current), ApplyPlan(plan), KeptDevelop(),
                Compile(previous=plan.current), Scripts(), PluginCaches(), Probes()]
    # Scripts before PluginCaches: it writes only bin/ and bin_dir (no plugin folder), and the
    # plugins stage can then start the generated scripts' probes once the caches are final.
    return [Preflight(), CreateFresh(), InstallLock(), Develop(), Compile(), Scripts(), PluginCaches(),
            Probes()]


def _report(spec: Spec, env_dir: Path, start: float, cleanup: Cleanup | None = None) -> BuildResult:
    return BuildResult(spec_file=spec.file, path=spec.path, env_dir=env_dir, up_to_date=True,
                       seconds=time.monotonic() - start,
                       warnings=cleanup.warnings if cleanup is not None else ())


@contextmanager
def _bytecode_outside(ctx: Context) -> Iterator[None]:
    """For an environment built without bytecode: a temporary bytecode folder for the final stages."""
    if ctx.spec.compile:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="pinfold-pycache-") as tmp:
        ctx.pycache = Path(tmp)
        try:
            yield
        finally:
            ctx.pycache = None


def build(
    spec: Spec,
    *,
    on_event: OnEvent | None = None,
    runner: Runner | None = None,
    fresh: bool = False,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> BuildResult:
    """Build the environment of ``spec``, update it, or confirm it is up to date.

    Pre-flight problems of every stage are collected first, and the index is checked
    before anything is created. The new environment is switched in only when every
    stage succeeded; a failure (or a kill) leaves ``path`` as it was. ``on_event`` gets each
    stage's start and end (:class:`StageEvent`) and, in between, how far it is
    (:class:`~pinfold.results.Progress`), from any thread.
    """
    require_current_locks(spec)
    runner = runner or Runner()
    emit = on_event or (lambda _: None)
    start = time.monotonic()
    envs = Environments(spec.path)
    # What the no-op fast path (pinfold.uptodate) must later find unchanged, read now, with
    # the inputs: a file edited during the build must not be recorded as built from.
    watch = watch_of(spec)
    plan = make_plan(spec, envs, runner, fresh=fresh)
    if plan.mode == "noop" and plan.current is not None:
        if envs.has_leftovers():
            # A killed build's folder (or something not pinfold's) in <path>.d: a no-op
            # removes what is provably pinfold's, under the lock, and names the rest.
            with envs.locked(wait=wait, on_wait=on_wait):
                return _report(spec, plan.current, start, envs.cleanup(spare=True))
        return _report(spec, plan.current, start)
    # The directory is named once the lock is held (below); the pre-flight checks only read.
    ctx = Context(spec=spec, runner=runner, index=ArtifactIndex(spec.index), env_dir=envs.versions,
                  on_progress=emit)
    # What a stage needs does not depend on the plan: both stage lists have the same problems.
    stages = _stages(plan)
    problems = [p for stage in stages for p in stage.problems(ctx)]
    if problems:
        raise BuildError("cannot build: the tools are not ready; nothing was changed", problems)
    reports: list[StageReport] = []

    def run_stage(stage: Stage) -> None:
        # Before the settle below: a skipped stage (the develop stage without develop trees,
        # between install and compile) must not end the overlap. No skip reason reads what a
        # pending check vouches for (Compile's reads the environment only with compile: false,
        # where no check is pending).
        reason = stage.skip_reason(ctx)
        if reason is not None:
            emit(StageEvent(stage.name, "skip", detail=reason))
            reports.append(StageReport(stage.name, "skipped", 0.0, reason))
            return
        emit(StageEvent(stage.name, "start"))
        t0 = time.monotonic()
        if not stage.overlaps_checks:
            # A check an earlier stage left running (uv's RECORD check, which the compile
            # stage settles itself) ends before any other stage trusts the environment.
            ctx.settle()
        detail = stage.run(ctx)
        seconds = time.monotonic() - t0
        emit(StageEvent(stage.name, "done", seconds, detail))
        reports.append(StageReport(stage.name, "ok", seconds, detail))

    # Pre-flight only reads: it runs before the lock, so a bad index creates nothing at all.
    run_stage(stages[0])
    with envs.locked(wait=wait, on_wait=on_wait):
        # Named once the lock is held: names sort in build order, which rollback relies on.
        ctx.env_dir = envs.new_dir()
        before = envs.cleanup(spare=True)
        # Another build may have changed the environment while this one waited: plan again,
        # against the same inputs (they describe the spec loaded at the start).
        plan = make_plan(spec, envs, runner, fresh=fresh, inputs=plan.inputs)
        if plan.mode == "noop" and plan.current is not None:
            return _report(spec, plan.current, start, before)
        # The marker goes in first: it is what lets a later cleanup prove this folder pinfold's.
        envs.create(ctx.env_dir)
        ctx.hashes = memo = HashMemo(_tokens(spec, ctx.env_dir))
        try:
            with _bytecode_outside(ctx):
                # This plan's stages (it may differ from the first one); pre-flight has run.
                for stage in _stages(plan)[1:]:
                    run_stage(stage)
                # A check no stage settled (none would, were the stages after the one that
                # started it all skipped): nothing is recorded unchecked.
                ctx.settle()
            assert ctx.preflight is not None and ctx.interpreter is not None and plan.inputs
            interp = ctx.interpreter
            record = EnvRecord(
                fingerprint=fingerprint(plan.inputs),
                inputs=plan.inputs,
                watch=_stamped(watch, spec, interp, plan.inputs["python"], runner),
                pinfold=__version__,
                spec=spec.file,
                python=PythonRecord(executable=interp.executable, version=interp.version,
                                    abi=interp.abi, markers=interp.markers),
                installed=tuple(sorted(str(p) for p in ctx.preflight.runtime)),
                hashes={p.name: tuple(sorted(p.hashes)) for p in ctx.preflight.runtime},
                develop=spec.develop,
                plan=plan,
                stages=tuple(reports),
                outputs=ctx.outputs,
                digest=write_manifest(ctx.env_dir, manifest := _scan(spec, ctx.env_dir, memo)),
            )
            envs.finish(ctx.env_dir, record)
        except BaseException:
            # Nothing half-built stays behind; `path` still points at the previous environment.
            ctx.abandon()
            envs.discard(ctx.env_dir)
            raise
        since = _clock(memo, ctx.env_dir)
        after = envs.cleanup(spare=True)
        _save_hashes(memo, ctx.env_dir, manifest, since)
        pruned = _prune_launchers(ctx.stale_launchers)
    return BuildResult(spec_file=spec.file, path=spec.path, env_dir=ctx.env_dir,
                       up_to_date=False, stages=tuple(reports),
                       warnings=(*ctx.warnings, *after.warnings, *pruned),
                       seconds=time.monotonic() - start, plan=plan, outputs=ctx.outputs)


def _stamped(watch: Watch, spec: Spec, interp: Interpreter, recorded: str, runner: Runner) -> Watch:
    """``watch`` with the interpreter's stamp, when it provably stands for the identity recorded.

    The stamp is taken first, the identity asked after it: any change to those files after
    the stamp gives them other identities, so an unchanged stamp later means the same
    interpreter that answered here (:func:`pinfold.uptodate.stamp_holds`). A shared build
    whose libpython was not seen, or an interpreter that now answers differently, gets none:
    the no-op fast path then asks the interpreter, as it always could.
    """
    if interp.shared and not interp.libraries:
        return watch
    stamp = interpreter_stamp(spec.python, interp.libraries)
    try:
        if stamp is None or identity(spec.python, runner) != recorded:
            return watch
    except PinfoldError:
        return watch
    return replace(watch, interpreter=stamp)


def _prune_launchers(stale: list[Path]) -> list[str]:
    """Remove the launchers the switched-in environment no longer has; what cannot go is named."""
    warnings = []
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            warnings.append(f"{display_path(path)} could not be removed: {exc.strerror}")
    return warnings


def _tokens(spec: Spec, env_dir: Path) -> Tokens:
    return Tokens.of(env_dir, path=spec.path, root=spec.root, develop=spec.develop)


def _scan(spec: Spec, env_dir: Path, memo: HashMemo) -> Manifest:
    """The finished tree's manifest (written next, then the record, which finishes both):
    what ``memo`` holds for a file with the same identity is not read again."""
    return scan(env_dir, runtime_bytecode=not spec.compile, memo=memo)


def _clock(memo: HashMemo, env_dir: Path) -> int | None:
    try:
        return memo.clock(env_dir)
    except OSError:
        return None


def _save_hashes(memo: HashMemo, env_dir: Path, manifest: Manifest, since: int | None) -> None:
    """Beside the manifest of the environment just switched in, the identities its scan saw
    (the next update's clone takes those files' hashes). After the cleanup: a removed
    environment sharing inodes changed their ctimes (see HashMemo.save). Optional: a failure
    (or a kill) leaves no file, and the next update reads every file."""
    if since is None:
        return
    with contextlib.suppress(OSError):
        memo.save(env_dir, (p for p, e in manifest.entries.items() if e.kind == "file"), since=since)


def plan(spec: Spec, *, runner: Runner | None = None, fresh: bool = False) -> Plan:
    """What ``build`` would do now (``pinfold plan`` and ``pinfold status``); changes nothing."""
    require_current_locks(spec)
    return make_plan(spec, Environments(spec.path), runner or Runner(), fresh=fresh)


def rollback(spec: Spec | Path, *, wait: bool = True) -> tuple[Path, Path]:
    """Switch ``path`` back to the environment built before the current one: (from, to).

    ``spec`` may be ``path`` itself (an environment `pinfold unpack` placed has no env.yaml).
    """
    envs = Environments(spec if isinstance(spec, Path) else spec.path)
    with envs.locked(wait=wait):
        return envs.rollback()


def gc(spec: Spec | Path, *, keep: int, wait: bool = True) -> Cleanup:
    """Remove unfinished builds, all but the newest ``keep`` environments (never the current)
    and the spare folders a build's cleanup kept of one it let go.

    Only what is provably pinfold's is removed; the rest of ``<path>.d`` is named in the
    warnings. ``spec`` may be ``path`` itself, as for :func:`rollback`.
    """
    envs = Environments(spec if isinstance(spec, Path) else spec.path)
    with envs.locked(wait=wait):
        return envs.cleanup(keep=keep)


def check(
    spec: Spec,
    *,
    on_event: OnEvent | None = None,
    runner: Runner | None = None,
    files_only: bool = False,
    env_dir: Path | None = None,
) -> BuildResult:
    """Run the probes on the existing environment of ``spec``, without rebuilding.

    ``files_only``: only the files probe (the tree against its manifest), which starts no
    interpreter, and runs even with the probes disabled. ``env_dir``: a finished directory
    not switched in yet (``pinfold unpack`` probes it before the switch), instead of the
    current one.
    """
    runner = runner or Runner()
    emit = on_event or (lambda _: None)
    start = time.monotonic()
    current = env_dir if env_dir is not None else Environments(spec.path).current()
    if current is None:
        raise PinfoldError(f"there is no environment at {spec.path} yet",
                           tip="run `pinfold build` first")
    ctx = Context(spec=spec, runner=runner, index=ArtifactIndex(spec.index), env_dir=current,
                  on_progress=emit)
    probes = Probes(files_only=files_only)
    if (reason := probes.skip_reason(ctx)) is not None:
        emit(StageEvent(probes.name, "skip", detail=reason))
        return BuildResult(spec_file=spec.file, path=spec.path, env_dir=current, up_to_date=True,
                           stages=(StageReport(probes.name, "skipped", 0.0, reason),),
                           seconds=time.monotonic() - start)
    emit(StageEvent(probes.name, "start"))
    t0 = time.monotonic()
    with _bytecode_outside(ctx):
        detail = probes.run(ctx)
    seconds = time.monotonic() - t0
    emit(StageEvent(probes.name, "done", seconds, detail))
    return BuildResult(spec_file=spec.file, path=spec.path, env_dir=current, up_to_date=True,
                       stages=(StageReport(probes.name, "ok", seconds, detail),),
                       warnings=tuple(ctx.warnings), seconds=time.monotonic() - start,
                       outputs=ctx.outputs)
