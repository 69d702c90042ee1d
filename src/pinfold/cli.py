"""The ``pinfold`` command: argument parsing, rendering of progress, results and errors.

Exit codes: 0 ok, 1 build or probe failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from . import __version__
from .errors import EXIT_FAILURE, EXIT_OK, PinfoldError, ProbeError

if TYPE_CHECKING:  # the pipeline is imported lazily: --help stays fast
    from .changes import Plan
    from .results import BuildResult, StageEvent
    from .runner import Runner
    from .spec import Spec

__all__ = ["main"]

_DESCRIPTION = """\
Build one virtualenv from env.yaml: pinned, hashed requirements from a local index only
(build dependencies such as pbr included), then the final stages (Twisted plugin caches,
sanity probes). Only `pinfold fetch` and `pinfold lock --upstream` go online.
"""

_EPILOG = """\
exit codes: 0 ok, 1 build or probe failure, 2 bad input (env.yaml, locks, arguments).
See README.md for env.yaml's keys.
"""


class _Output:
    """Renders events for humans on stderr (stdout is kept for --json)."""

    def __init__(self, err: IO[str], *, verbose: bool) -> None:
        self.err = err
        self.verbose = verbose

    def line(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def subprocess_line(self, text: str) -> None:
        self.line(f"    {text}")

    def event(self, event: StageEvent) -> None:
        if event.kind == "start":
            if self.verbose:
                self.line(f"[{event.stage}] ...")
        elif event.kind == "skip":
            self.line(f"[{event.stage}] skipped: {event.detail}")
        else:
            self.line(f"[{event.stage}] {event.seconds:6.2f}s  {event.detail}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinfold", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pinfold {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("spec", nargs="?", default="env.yaml", type=Path,
                       help="the environment's env.yaml (default: ./env.yaml)")
        p.add_argument("-v", "--verbose", action="store_true",
                       help="stream the output of pip, virtualenv and the probes")
        p.add_argument("--json", action="store_true",
                       help="print a machine-readable result on stdout")
        p.add_argument("--traceback", action="store_true",
                       help="show Python tracebacks of errors (for developers)")
        return p

    build = command("build", "Build the environment (or confirm it is up to date), offline.")
    build.add_argument("--fresh", action="store_true",
                       help="rebuild even if nothing changed")
    build.add_argument("--no-wait", action="store_true",
                       help="fail at once if another build of the same environment is running")
    build.add_argument("--junit-xml", type=Path, metavar="PATH",
                       help="write the probes' results as JUnit XML (one testcase per probe)")
    fetch = command("fetch", "Download the artifacts of both locks into the wheelhouse "
                             "(the one command that goes online).")
    fetch.add_argument("--index-url", metavar="URL",
                       help="the upstream index to download from (default: pip's default, PyPI)")
    lock = command("lock", "Compile the runtime and build locks from env.yaml's needs, against its "
                           "index only, and print what changed.")
    lock.add_argument("--upstream", nargs="?", const="", metavar="URL",
                      help="resolve against an upstream index instead (online; default: pip's "
                           "default, PyPI), then download every locked artifact into the wheelhouse "
                           "so that the next build runs offline; URL must contain ://")
    lock.add_argument("--upgrade", action="store_true",
                      help="move every pin to the newest version the needs allow")
    lock.add_argument("--upgrade-package", action="append", default=[], metavar="NAME",
                      help="move this pin (NAME or NAME==VERSION) and keep every other; repeatable")
    lock_mode = lock.add_mutually_exclusive_group()
    lock_mode.add_argument("--dry-run", action="store_true",
                           help="compute the locks and print what would change; write nothing")
    lock_mode.add_argument("--check", action="store_true",
                           help="exit 1 when the locks no longer match env.yaml's needs (for CI); "
                                "reads files only")
    check = command("check", "Run the probes on the existing environment, without rebuilding.")
    check.add_argument("--junit-xml", type=Path, metavar="PATH",
                       help="write the probes' results as JUnit XML (one testcase per probe)")
    command("status", "Say whether the environment is up to date and, if not, what changed.")
    plan = command("plan", "Print what a build would install, remove and re-run, without doing it.")
    plan.add_argument("--fresh", action="store_true", help="plan a rebuild from scratch")
    command("rollback", "Switch the environment back to the one built before it, in one step.")
    gc = command("gc", "Remove old environments (and leftovers of killed builds).")
    gc.add_argument("--keep", type=int, default=2, metavar="N",
                    help="how many finished environments to keep, the current one included "
                         "(default: 2, so that rollback still works)")
    return parser


def _run(args: argparse.Namespace, out: _Output, stdout: IO[str]) -> int:
    from .runner import Runner

    runner = Runner(on_output=out.subprocess_line if args.verbose else None)
    if args.command == "build" and not args.fresh:
        from .uptodate import up_to_date

        # Nothing changed since the last build: answered without validating env.yaml again.
        if (quick := up_to_date(args.spec, runner)) is not None:
            _emit_json(args, stdout, _render_build(args, out, quick))
            return EXIT_OK
    from .pipeline import build, check
    from .spec import load_spec

    if args.command == "lock":
        _lock_arguments(args)
    # A stale lock (needs changed since `pinfold lock`) stops what would install from it;
    # rollback, gc and check work on environments already built, so they read it leniently.
    spec = load_spec(args.spec, for_lock=args.command in ("lock", "rollback", "gc", "check"))
    result: dict[str, Any]
    if args.command == "fetch":
        from .fetch import fetch

        report = fetch(spec, runner=runner, index_url=args.index_url,
                       on_progress=out.line)
        out.line(report.summary())
        result = report.to_json()
    elif args.command == "lock":
        result = _lock(args, spec, runner, out)
    elif args.command == "build":
        res = build(spec, on_event=out.event, runner=runner, fresh=args.fresh,
                    wait=not args.no_wait,
                    on_wait=lambda: out.line(f"waiting for another build of {spec.path} ..."))
        result = _render_build(args, out, res)
    elif args.command in ("status", "plan"):
        from .pipeline import plan

        the_plan = plan(spec, runner=runner, fresh=getattr(args, "fresh", False))
        _render_plan(out, spec.path, the_plan, detailed=args.command == "plan")
        result = the_plan.to_json()
        if args.command == "status" and the_plan.mode != "noop":
            result["up_to_date"] = False
            _emit_json(args, stdout, result)
            return EXIT_FAILURE
        result["up_to_date"] = the_plan.mode == "noop"
    elif args.command == "rollback":
        from .pipeline import rollback

        old, new = rollback(spec)
        out.line(f"{spec.path}: rolled back from {old.name} to {new.name}")
        result = {"from": str(old), "to": str(new)}
    elif args.command == "gc":
        from .errors import SpecError
        from .pipeline import gc

        if args.keep < 1:
            raise SpecError("--keep must be 1 or more: the current environment is always kept")
        removed = gc(spec, keep=args.keep)
        out.line(f"{spec.path}: removed {len(removed)} old environment(s)")
        result = {"removed": [str(p) for p in removed]}
    else:
        res = check(spec, on_event=out.event, runner=runner)
        _report_probes(args, out, res.facts.get("probes", []))
        for warning in res.warnings:
            out.line(f"warning: {warning}")
        out.line(f"{spec.path}: all probes passed")
        result = res.to_json()
    _emit_json(args, stdout, result)
    return EXIT_OK


def _render_build(args: argparse.Namespace, out: _Output, res: BuildResult) -> dict[str, Any]:
    """Print a build's probes, warnings and outcome; return its JSON result."""
    _report_probes(args, out, res.facts.get("probes", []))
    for warning in res.warnings:
        out.line(f"warning: {warning}")
    if res.up_to_date:
        out.line(f"{res.path} is up to date ({res.seconds:.2f}s)")
    else:
        out.line(f"built {res.path} -> {res.env_dir.name} in {res.seconds:.1f}s")
    return res.to_json()


def _report_probes(args: argparse.Namespace, out: _Output, probes: list[dict[str, Any]], *,
                   failed: bool = False, error: str | None = None) -> None:
    """One line per probe (evidence under findings); the --junit-xml file when asked for.

    After a success, warnings are printed as ``warning:`` lines: their evidence is not
    repeated here.
    """
    junit: Path | None = getattr(args, "junit_xml", None)
    if not probes and junit is None:
        return  # e.g. a no-op build: nothing to render, and no reason to import the renderer
    from .probes import ProbeResult
    from .probes.report import summary_lines, write_junit

    results = [ProbeResult.from_json(p) for p in probes]
    for line in summary_lines(results, warn_evidence=failed):
        out.line(line)
    if junit is not None:
        try:
            write_junit(junit, results, suite=f"pinfold {args.command} {args.spec}",
                        error=error)
        except OSError as exc:  # the report is secondary: never hide the build's own outcome
            out.line(f"error: cannot write the JUnit XML report {args.junit_xml}: {exc}")


def _emit_json(args: argparse.Namespace, stdout: IO[str], result: dict[str, Any]) -> None:
    if args.json:
        json.dump({"ok": True, **result}, stdout, indent=2, sort_keys=True)
        stdout.write("\n")


def _render_plan(out: _Output, path: Path, plan: Plan, *, detailed: bool) -> None:
    if plan.mode == "noop":
        out.line(f"{path} is up to date")
        return
    what = "needs a full build" if plan.mode == "full" else "needs an update"
    out.line(f"{path} {what}: {'; '.join(plan.reasons)}")
    for pin in plan.install:
        out.line(f"  install {pin}")
    for name in plan.remove:
        out.line(f"  remove  {name}")
    if detailed:
        if plan.mode == "full":
            out.line("  build a new environment from the locks, then re-run the final stages")
        else:
            out.line("  clone the current environment, apply the changes above, "
                     "then re-run the final stages")


def _lock_arguments(args: argparse.Namespace) -> None:
    """``--upstream`` takes an optional URL, so ``lock --upstream env.yaml`` reads the spec as one."""
    from .errors import SpecError

    if args.upstream and "://" not in args.upstream:
        if args.spec != Path("env.yaml"):
            raise SpecError(f"--upstream {args.upstream}: not a URL (it must contain ://)")
        args.spec, args.upstream = Path(args.upstream), ""
    if args.check and (args.upgrade or args.upgrade_package or args.upstream is not None):
        raise SpecError("--check only compares the locks with env.yaml's needs: "
                        "it takes no --upgrade, --upgrade-package or --upstream")
    from packaging.requirements import InvalidRequirement, Requirement

    for value in args.upgrade_package:
        try:
            Requirement(value)
        except InvalidRequirement:
            raise SpecError(f"--upgrade-package {value!r}: expected NAME or NAME==VERSION") from None


def _lock(args: argparse.Namespace, spec: Spec, runner: Runner, out: _Output) -> dict[str, Any]:
    from .locking import LockOptions, check_locks, lock

    if args.check:
        current = check_locks(spec)
        for line in current.lines():
            out.line(line)
        return current.to_json()
    options = LockOptions(upstream=args.upstream, upgrade=args.upgrade,
                          upgrade_packages=tuple(args.upgrade_package), dry_run=args.dry_run)
    report = lock(spec, options=options, runner=runner, on_progress=out.line)
    for line in report.lines():
        out.line(line)
    return report.to_json()


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None,
         stderr: IO[str] | None = None) -> int:
    """Run the command line; return the exit code (never raises for user errors)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    out = _Output(stderr, verbose=args.verbose)
    def fail(message: str, code: int, extra: dict[str, Any]) -> int:
        out.line(message)
        if args.json:
            json.dump({"ok": False, "exit_code": code, **extra}, stdout, indent=2, sort_keys=True)
            stdout.write("\n")
        return code

    from .runner import Terminated

    try:
        with _signals_stop_pinfold():
            return _run(args, out, stdout)
    except PinfoldError as exc:
        if args.traceback:
            traceback.print_exc(file=stderr)
        text = f"error: {exc}" + (f"\ntip: {exc.tip}" if exc.tip else "")
        extra: dict[str, Any] = {}
        if args.command in ("build", "check"):
            extra["probes"] = [r.to_json() for r in exc.results] if isinstance(exc, ProbeError) else []
            _report_probes(args, out, extra["probes"], failed=True,
                           error=None if extra["probes"] else str(exc))
        return fail(text, exc.exit_code, {"error": exc.summary, **extra,
                                          "problems": [str(p) for p in exc.problems]})
    except (KeyboardInterrupt, Terminated) as exc:  # 130 for Ctrl-C, 128 + signum for the others
        return fail("interrupted; the previous environment is unchanged",
                    exc.exit_code if isinstance(exc, Terminated) else 130, {"error": "interrupted"})
    except Exception as exc:  # a bug in pinfold: still one line, with the way to see more
        if args.traceback:
            traceback.print_exc(file=stderr)
        return fail(f"internal error: {type(exc).__name__}: {exc}\n"
                    "tip: run again with --traceback and report it", EXIT_FAILURE,
                    {"error": f"{type(exc).__name__}: {exc}"})


@contextlib.contextmanager
def _signals_stop_pinfold() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP end pinfold like Ctrl-C, and every signal ends the commands.

    SIGTERM and SIGHUP raise :class:`~pinfold.runner.Terminated` (exit 128 + signum), SIGINT
    raises KeyboardInterrupt (exit 130), in the main thread: the paths that clean up after a
    Ctrl-C run for all three. The runner ends the command the main thread waits for (pip
    and its build backends), the pipeline removes the half-built environment, and ``path``
    stays as it was. Each handler first ends the commands other threads wait for (the probes
    run in a pool, which would otherwise wait for them). SIGTERM and SIGHUP are raised once:
    a second one (a service manager's) must not cut that cleanup short; SIGINT raises each
    time, as Python's own handler does. The previous handlers are restored on the way out.
    Only the CLI installs handlers (in the main thread, where Python allows it).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from .runner import Terminated, end_running_commands, resume_commands

    raised = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if signum == signal.SIGINT:
            end_running_commands()
            raise KeyboardInterrupt
        if not raised:
            raised = True
            end_running_commands()
            raise Terminated(signum)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        resume_commands()
