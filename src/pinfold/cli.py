"""The ``pinfold`` command: argument parsing, rendering of progress, results and errors.

Exit codes: 0 ok, 1 build or probe failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import __version__
from .errors import EXIT_FAILURE, EXIT_OK, PinfoldError

if TYPE_CHECKING:  # the pipeline is imported lazily: --help stays fast
    from .pipeline import StageEvent

__all__ = ["main"]

_DESCRIPTION = """\
Build one virtualenv from env.yaml: pinned, hashed requirements from a local index only
(build dependencies such as pbr included), then the final stages (Twisted plugin caches,
sanity probes). Only `pinfold fetch` goes online.
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
    fetch = command("fetch", "Download the artifacts of both locks into the wheelhouse "
                             "(the one command that goes online).")
    fetch.add_argument("--index-url", metavar="URL",
                       help="the upstream index to download from (default: pip's default, PyPI)")
    command("check", "Run the probes on the existing environment, without rebuilding.")
    return parser


def _run(args: argparse.Namespace, out: _Output, stdout: IO[str]) -> int:
    from .pipeline import build, check
    from .runner import Runner
    from .spec import load_spec

    runner = Runner(on_output=out.subprocess_line if args.verbose else None)
    spec = load_spec(args.spec)
    result: dict[str, Any]
    if args.command == "fetch":
        from .fetch import fetch

        report = fetch(spec, runner=runner, index_url=args.index_url,
                       on_progress=out.line)
        out.line(report.summary())
        result = report.to_json()
    elif args.command == "build":
        res = build(spec, on_event=out.event, runner=runner, fresh=args.fresh,
                    wait=not args.no_wait,
                    on_wait=lambda: out.line(f"waiting for another build of {spec.path} ..."))
        for warning in res.warnings:
            out.line(f"warning: {warning}")
        if res.up_to_date:
            out.line(f"{spec.path} is up to date ({res.seconds:.2f}s)")
        else:
            out.line(f"built {spec.path} -> {res.env_dir.name} in {res.seconds:.1f}s")
        result = res.to_json()
    else:
        res = check(spec, on_event=out.event, runner=runner)
        for warning in res.warnings:
            out.line(f"warning: {warning}")
        out.line(f"{spec.path}: all probes passed")
        result = res.to_json()
    if args.json:
        json.dump({"ok": True, **result}, stdout, indent=2, sort_keys=True)
        stdout.write("\n")
    return EXIT_OK


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

    try:
        return _run(args, out, stdout)
    except PinfoldError as exc:
        if args.traceback:
            traceback.print_exc(file=stderr)
        text = f"error: {exc}" + (f"\ntip: {exc.tip}" if exc.tip else "")
        return fail(text, exc.exit_code, {"error": exc.summary,
                                          "problems": [str(p) for p in exc.problems]})
    except KeyboardInterrupt:
        return fail("interrupted; the previous environment is unchanged", 130, {"error": "interrupted"})
    except Exception as exc:  # a bug in pinfold: still one line, with the way to see more
        if args.traceback:
            traceback.print_exc(file=stderr)
        return fail(f"internal error: {type(exc).__name__}: {exc}\n"
                    "tip: run again with --traceback and report it", EXIT_FAILURE,
                    {"error": f"{type(exc).__name__}: {exc}"})

