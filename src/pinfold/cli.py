"""The ``pinfold`` command: argument parsing, one handler per command, output and exit codes.

The library returns data; what people read is built by :mod:`pinfold.render`, and which
exit code an error gives is decided here, in :data:`EXIT_CODES`.
Exit codes: 0 ok, 1 build or probe failure, 2 bad input, 130 interrupted (Ctrl-C), 143 and 129
ended by SIGTERM and SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from . import render
from ._version import __version__
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PinfoldError,
    ProbeError,
    SpecError,
)
from .progress import Output as _Output
from .runner import Runner, Terminated, end_running_commands, resume_commands

# The imports inside the handlers are there for one reason, said once here: `--help` and a
# `pinfold build` with nothing changed (pinfold.uptodate, about 0.06 s) must not load the
# pipeline, the spec loader, YAML validation or `packaging`; each handler loads what it uses.
TYPE_CHECKING = False  # not typing's: see pinfold.errors
if TYPE_CHECKING:
    from typing import IO, Any

    from .spec import Purpose, Spec

    #: What a command handler returns: its exit code and its --json result (without "ok").
    _Outcome = tuple[int, dict[str, Any]]

__all__ = ["EXIT_CODES", "JSON_SCHEMA_VERSION", "exit_code_for", "json_schema_name", "main"]

_DESCRIPTION = """\
Build one virtualenv from env.yaml: pinned, hashed requirements from a local index only
(build dependencies such as pbr included), then the final stages (Twisted plugin caches,
sanity probes). Only `pinfold fetch`, `pinfold lock --upstream` and `pinfold import --upstream`
go online.
"""

_EPILOG = """\
exit codes: 0 ok, 1 build or probe failure, 2 bad input (env.yaml, locks, arguments),
130 interrupted (Ctrl-C), 143/129 ended by SIGTERM/SIGHUP (the previous environment is kept).
See README.md for env.yaml's keys.
"""

#: The one mapping from an exception to the exit code: the first entry the exception is an
#: instance of wins, so subclasses come before their bases. Every other PinfoldError
#: (StaleLockError from `lock --check`, LockError, PreflightError, BuildError, ProbeError)
#: is a failure, 1; any other exception is a bug in pinfold, reported as an internal error, 1.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (SpecError, EXIT_BAD_INPUT),
    (PinfoldError, EXIT_FAILURE),
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    # SIGTERM and SIGHUP: 128 + the signal's number, as a shell reports it (see exit_code_for).
    (Terminated, EXIT_INTERRUPTED),
    (Exception, EXIT_FAILURE),
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code of a command that raised ``exc`` (from :data:`EXIT_CODES`)."""
    if isinstance(exc, Terminated):
        return exc.exit_code
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), EXIT_FAILURE)


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``only="build"``, the one for ``pinfold build ...`` alone.

    ``pinfold build`` with nothing changed is the command run most, and argparse with its
    message lookups (gettext) spends ~8 ms making seventeen subcommands: the build's own
    line, whose options are the same (:func:`_build_options`), makes one.
    """
    parser = argparse.ArgumentParser(prog="pinfold", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pinfold {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, *, spec: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if spec:
            p.add_argument("spec", nargs="?", default="env.yaml", type=Path,
                           help="the environment's env.yaml (default: ./env.yaml)")
        talk = p.add_mutually_exclusive_group()
        talk.add_argument("-v", "--verbose", action="store_true",
                          help="stream the output of pip, virtualenv and the probes")
        talk.add_argument("-q", "--quiet", action="store_true",
                          help="print only the result and errors (no progress, no warnings)")
        p.add_argument("--json", action="store_true",
                       help="print a machine-readable result on stdout")
        p.add_argument("--traceback", action="store_true",
                       help="show Python tracebacks of errors (for developers)")
        return p

    if only == "build":
        _build_options(command("build", _BUILD_HELP))
        return parser
    init = command("init", "Start a new project: write a commented env.yaml and a needs file "
                           "(requirements/runtime.in); then `pinfold lock --upstream` and "
                           "`pinfold build`.", spec=False)
    init.add_argument("dir", nargs="?", default=Path(), type=Path, metavar="DIR",
                      help="the project folder (default: the current one; created if missing)")
    init.add_argument("--needs", nargs="+", action="extend", default=[], metavar="NAME",
                      help="what the environment needs (NAME, or a requirement such as "
                           "'twisted>=24'); repeatable")
    init.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                      help="turn an existing requirements file into needs (its exact pins become "
                           "constraints in requirements/constraints.txt)")
    init_index = init.add_mutually_exclusive_group()
    init_index.add_argument("--wheelhouse", type=Path, metavar="DIR",
                            help="the wheelhouse folder to use (default: DIR/wheelhouse; created "
                                 "if missing)")
    init_index.add_argument("--index-url", metavar="URL",
                            help="use a PEP 503 simple index you run instead of a wheelhouse")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    _build_options(command("build", _BUILD_HELP))
    fetch = command("fetch", "Download the artifacts of both locks into the wheelhouse "
                             "(online).")
    fetch.add_argument("--index-url", metavar="URL",
                       help="the upstream index to download from (default: pip's default, PyPI)")
    fetch.add_argument("--target", metavar="TARGET",
                       help="fetch only what this one of env.yaml's targets needs (as env.yaml "
                            "writes it: an interpreter, or VERSION/PLATFORM); default: every target")
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
    export = command("export", "Write the runtime lock in the other format: a pip requirements "
                                "file or a PEP 751 pylock.toml, the same pins, hashes and markers.")
    export.add_argument("--format", choices=("requirements", "pylock"),
                        help="the format to write (default: the one -o's name says, else the one "
                             "the runtime lock is not in)")
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write FILE (only when its content changes) instead of printing to stdout; "
                             "a pylock names its artifacts relative to FILE's folder")
    check = command("check", "Run the probes on the existing environment, without rebuilding.")
    check.add_argument("--junit-xml", type=Path, metavar="PATH",
                       help="write the probes' results as JUnit XML (one testcase per probe)")
    check.add_argument("--files", action="store_true",
                       help="only compare the environment's files with the manifest its build "
                            "recorded (fast: no interpreter starts)")
    check.add_argument("--path", dest="at", type=Path, metavar="DEST",
                       help="check the environment `pinfold unpack` placed at DEST, without "
                            "env.yaml (its probes come from the pack)")
    sbom = command("sbom", "Write a CycloneDX JSON SBOM of the environment: every installed "
                           "distribution, the build lock's pins as build-time components, the "
                           "environment digest and the interpreter (reads files only).")
    sbom.add_argument("-o", "--output", type=Path, metavar="FILE",
                      help="write the SBOM to FILE (atomically) instead of stdout; required with --json")
    pack = command("pack", "Write the current environment as one deterministic archive (with its "
                           "manifest and record) and FILE.sha256 beside it, to unpack on hosts "
                           "that have only Python and pinfold.")
    pack.add_argument("-o", "--output", type=Path, metavar="FILE",
                      help="the archive to write: .tar.gz (or .tgz) or .tar.xz (default: "
                           "./<path's name>-<digest>.tar.gz)")
    unpack = command("unpack", "Verify an archive of `pinfold pack` and place it behind DEST as a "
                               "new environment (atomic switch, the previous one kept), relocated, "
                               "then run its probes; offline, no env.yaml.", spec=False)
    unpack.add_argument("file", type=Path, metavar="FILE", help="the archive (FILE.sha256 beside it "
                                                                 "is checked when present)")
    unpack.add_argument("--path", dest="at", type=Path, metavar="DEST", required=True,
                        help="where the environment goes: DEST becomes a symlink to DEST.d/<id>")
    unpack.add_argument("--python", metavar="PYTHON",
                        help="the host's interpreter to run it with, a path or a name on PATH "
                             "(default: the one it was built with, at that path); the same "
                             "implementation, X.Y version, ABI and platform")
    unpack.add_argument("--no-wait", action="store_true",
                        help="fail at once if another build or unpack of DEST is running")
    command("status", "Say whether the environment is up to date and, if not, what changed.")
    plan = command("plan", "Print what a build would install, remove and re-run, without doing it.")
    plan.add_argument("--fresh", action="store_true", help="plan a rebuild from scratch")
    config = command("config", "Print env.yaml merged with the files it extends (YAML, or JSON "
                               "with --json), as every command reads it.")
    config.add_argument("--origins", action="store_true",
                        help="annotate each value with the file:line it came from")
    rollback = command("rollback", "Switch the environment back to the one built before it, in one step.")
    rollback.add_argument("--path", dest="at", type=Path, metavar="DEST",
                          help="roll back the environment at DEST (e.g. one `pinfold unpack` "
                               "placed), without env.yaml")
    gc = command("gc", "Remove old environments, leftovers of killed builds and the spare folders "
                       "an update reuses.")
    gc.add_argument("--path", dest="at", type=Path, metavar="DEST",
                    help="clean up the environments behind DEST, without env.yaml")
    gc.add_argument("--keep", type=int, default=2, metavar="N",
                    help="how many finished environments to keep, the current one included "
                         "(default: 2, so that rollback still works)")
    imp = command("import", "Turn a buildout.cfg tree into env.yaml, needs and constraints files, "
                            "and report what has no equivalent (-v lists the notes too).", spec=False)
    imp.add_argument("source", nargs="?", default="buildout.cfg", type=Path,
                     help="the Buildout configuration (default: ./buildout.cfg)")
    imp.add_argument("--output-dir", type=Path, metavar="DIR",
                     help="where to write env.yaml and requirements/ (default: the configuration's folder)")
    imp.add_argument("--dry-run", action="store_true", help="print the files instead of writing them")
    imp.add_argument("--force", action="store_true", help="replace existing files")
    imp.add_argument("--upstream", action="store_true",
                     help="download remote extends (http(s):// URLs) once, and carry their pins over")
    cache = command("cache", "Show pinfold's cache folder ($PINFOLD_CACHE_DIR: the bytecode cache "
                             "and artifact digests), or prune it to a size.", spec=False)
    cache.add_argument("action", choices=("info", "prune"), nargs="?", default="info",
                       help="info: what it holds (default); prune: remove least recently used "
                            "bytecode entries (and stale unfinished fills) down to --max-size")
    cache.add_argument("--max-size", default="1G", metavar="SIZE",
                       help="prune's bound, e.g. 500M, 2G, 0 (default: 1G)")
    return parser


_BUILD_HELP = "Build the environment (or confirm it is up to date), offline."


def _build_options(build: argparse.ArgumentParser) -> None:
    """``pinfold build``'s own options (besides those every command has)."""
    build.add_argument("--fresh", action="store_true",
                       help="rebuild even if nothing changed")
    build.add_argument("--no-wait", action="store_true",
                       help="fail at once if another build of the same environment is running")
    build.add_argument("--junit-xml", type=Path, metavar="PATH",
                       help="write the probes' results as JUnit XML (one testcase per probe)")


class _Context:
    """What every command handler gets besides its arguments."""

    # A plain class, not a dataclass: see pinfold.errors.Problem.
    __slots__ = ("out", "runner", "stdout")

    def __init__(self, out: _Output, stdout: IO[str], runner: Runner) -> None:
        self.out = out
        self.stdout = stdout
        self.runner = runner

    def spec(self, args: argparse.Namespace) -> Spec:
        """Read and validate env.yaml (the one place the CLI does)."""
        from .spec import load_spec  # lazy: see the note at the imports

        # rollback, gc and check work on environments already built: they read env.yaml
        # leniently. Whether the locks match the needs is asked by what installs from them.
        return load_spec(args.spec, purpose=_PURPOSE.get(args.command, "build"))


#: How strictly each command reads env.yaml (see pinfold.spec.load); the rest: "build".
_PURPOSE: dict[str, Purpose] = {"lock": "lock", "rollback": "inspect", "gc": "inspect",
                                "check": "inspect", "fetch": "fetch", "sbom": "inspect",
                                "pack": "inspect"}

def _init(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .init import InitOptions, init  # lazy: see the note at the imports

    report = init(args.dir, InitOptions(needs=tuple(args.needs), from_file=args.from_file,
                                        wheelhouse=args.wheelhouse, index_url=args.index_url,
                                        force=args.force))
    ctx.out.lines(render.init_lines(report))
    return EXIT_OK, report.to_json()


def _build(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    if not args.fresh:
        from .uptodate import fresh  # lazy: the fast path itself, loaded only for build

        # Nothing changed since the last build: answered without validating env.yaml again,
        # and rendered without the results' types (nothing ran: no probes, no warnings).
        if (quick := fresh(args.spec, ctx.runner)) is not None:
            _report_build(args, ctx.out, [], ())
            ctx.out.result(render.up_to_date_lines(quick.path, quick.seconds, digest=quick.digest))
            return EXIT_OK, {**quick.to_json(), "digest": quick.digest}
    from .pipeline import build  # lazy: see the note at the imports

    spec = ctx.spec(args)
    res = build(spec, on_event=ctx.out.event, runner=ctx.runner, fresh=args.fresh,
                wait=not args.no_wait,
                on_wait=lambda: ctx.out.line(render.waiting_line(spec.path)))
    _report_build(args, ctx.out, [r.to_json() for r in res.outputs.probe_results], res.warnings)
    digest = _digest(res.env_dir)
    ctx.out.result(render.build_lines(res, digest=digest))
    return EXIT_OK, {**res.to_json(), "digest": digest}


def _digest(env_dir: Path) -> str | None:
    """The environment digest its record holds (None for an environment of an older pinfold)."""
    from .record import read_digest  # lazy: see the note at the imports

    return read_digest(env_dir)


def _check(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    if args.at is not None:
        from .deploy import check_at  # lazy: see the note at the imports

        _only_path(args)
        res = check_at(args.at, on_event=ctx.out.event, runner=ctx.runner, files_only=args.files)
    else:
        from .pipeline import check  # lazy: see the note at the imports

        res = check(ctx.spec(args), on_event=ctx.out.event, runner=ctx.runner, files_only=args.files)
    _report_build(args, ctx.out, [r.to_json() for r in res.outputs.probe_results], res.warnings)
    # With the probes disabled none ran: saying "all probes passed" would claim what was not checked.
    skipped = next((s.detail for s in res.stages if s.status == "skipped"), None)
    digest = _digest(res.env_dir)
    ctx.out.result(render.check_lines(res.path, skipped=skipped, digest=digest,
                                      files_only=args.files))
    return EXIT_OK, {**res.to_json(), "digest": digest}


def _only_path(args: argparse.Namespace) -> None:
    """``--path DEST`` replaces env.yaml: both at once is ambiguous."""
    if args.spec != Path("env.yaml"):
        raise SpecError(f"{args.command}: give env.yaml ({args.spec}) or --path {args.at}, not both")


def _pack(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .pack import pack  # lazy: see the note at the imports

    done = pack(ctx.spec(args), args.output)
    ctx.out.result(render.pack_lines(done))
    return EXIT_OK, done.to_json()


def _unpack(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .deploy import unpack  # lazy: see the note at the imports

    done = unpack(args.file, args.at, runner=ctx.runner, on_event=ctx.out.event, wait=not args.no_wait,
                  python=args.python)
    _report_build(args, ctx.out, [r.to_json() for r in done.probes.outputs.probe_results],
                  done.warnings)
    ctx.out.result(render.unpack_lines(done))
    return EXIT_OK, done.to_json()


def _fetch(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .fetch import fetch  # lazy: see the note at the imports

    spec = ctx.spec(args)
    report = fetch(spec, runner=ctx.runner, index_url=args.index_url, on_progress=ctx.out.progress,
                   target=args.target)
    ctx.out.result(render.fetch_lines(report))
    return EXIT_OK, report.to_json()


def _lock(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    _lock_arguments(args)  # before reading env.yaml: it may name another one
    spec = ctx.spec(args)
    from .locking import LockOptions, check_locks, lock  # lazy: see the note at the imports

    if args.check:
        current = check_locks(spec)
        ctx.out.result(render.lock_check_lines(current))
        return EXIT_OK, current.to_json()
    options = LockOptions(upstream=args.upstream, upgrade=args.upgrade,
                          upgrade_packages=tuple(args.upgrade_package), dry_run=args.dry_run)
    report = lock(spec, options=options, runner=ctx.runner, on_progress=ctx.out.progress)
    ctx.out.result(render.lock_lines(report))
    return EXIT_OK, report.to_json()


def _export(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    spec = ctx.spec(args)
    from .locking.writer import export_lock, write_files  # lazy: see the note at the imports
    from .locks import is_pylock

    fmt = args.format
    if fmt is None:
        if args.output is not None:
            fmt = "pylock" if is_pylock(args.output) else "requirements"
        else:
            fmt = "requirements" if is_pylock(spec.requirements.path) else "pylock"
    if fmt == "pylock" and args.output is not None and not is_pylock(args.output):
        raise SpecError(f"-o {args.output}: a PEP 751 lock is named pylock.toml or pylock.NAME.toml",
                        tip="pick such a name, or --format requirements")
    output = args.output.absolute() if args.output is not None else None
    text = export_lock(spec, fmt, output)
    result: dict[str, Any] = {"format": fmt, "from": str(spec.requirements.path),
                              "pins": len(spec.requirements.pins)}
    if output is None:
        if args.json:
            result["text"] = text
        else:
            ctx.stdout.write(text)
        return EXIT_OK, result
    try:
        written = write_files([(output, text)])
    except OSError as exc:
        from .paths import reason  # lazy: see the note at the imports

        raise SpecError(f"-o {args.output}: cannot write it: {reason(exc)}",
                        tip="name a file in a folder you can write to") from None
    ctx.out.lines(render.export_lines(spec.requirements.path, output, fmt, written=bool(written)))
    return EXIT_OK, {**result, "output": str(output), "written": bool(written)}


def _sbom(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    if args.json and args.output is None:  # one document on stdout: the result or the SBOM
        raise SpecError("--json prints pinfold's result document on stdout, so the SBOM needs a file",
                        tip="add -o FILE (e.g. -o sbom.cdx.json)")
    spec = ctx.spec(args)
    from .sbom import make_sbom  # lazy: the CycloneDX library, only for this command

    report = make_sbom(spec)
    result = report.to_json()
    if args.output is None:
        ctx.stdout.write(report.text)
        ctx.out.result(render.sbom_lines(None, report.components, report.build, report.digest))
        return EXIT_OK, result
    from .paths import reason, write_atomic  # lazy: see the note at the imports

    output = args.output.absolute()
    try:
        write_atomic(output, report.text.encode("utf-8"))
    except OSError as exc:
        raise SpecError(f"-o {args.output}: cannot write it: {reason(exc)}",
                        tip="name a file in a folder you can write to") from None
    ctx.out.result(render.sbom_lines(output, report.components, report.build, report.digest))
    return EXIT_OK, {**result, "output": str(output)}


def _plan_or_status(args: argparse.Namespace, ctx: _Context, *, detailed: bool) -> _Outcome:
    from .pipeline import plan  # lazy: see the note at the imports

    spec = ctx.spec(args)
    the_plan = plan(spec, runner=ctx.runner, fresh=getattr(args, "fresh", False))
    ctx.out.result(render.plan_lines(spec.path, the_plan, detailed=detailed))
    return EXIT_OK, {**the_plan.to_json(), "up_to_date": the_plan.mode == "noop"}


def _plan(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    return _plan_or_status(args, ctx, detailed=True)


def _status(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    # `status` is a question with a yes/no exit code (for scripts): 1 when a build is due.
    _, result = _plan_or_status(args, ctx, detailed=False)
    return (EXIT_OK if result["up_to_date"] else EXIT_FAILURE), result


def _config(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .spec import load_layers

    layers = load_layers(args.spec)
    merged = layers.located()
    if not args.json:  # the merged file is the result: on stdout, as --json would be
        for line in render.config_lines(layers.files, merged, origins=args.origins):
            print(line, file=ctx.stdout)
    result: dict[str, Any] = {"file": str(layers.file), "layers": [str(f) for f in layers.files],
                              "config": merged.plain()}
    if args.origins:
        result["origins"] = merged.origins()
    return EXIT_OK, result


def _path_of(args: argparse.Namespace, ctx: _Context) -> Path:
    """``path`` from env.yaml, or ``--path DEST`` (an environment without env.yaml)."""
    if args.at is not None:
        _only_path(args)
        return Path(os.path.abspath(args.at))
    return ctx.spec(args).path


def _rollback(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .pipeline import rollback  # lazy: see the note at the imports

    path = _path_of(args, ctx)
    old, new = rollback(path)
    ctx.out.result(render.rollback_lines(path, old, new))
    return EXIT_OK, {"from": str(old), "to": str(new)}


def _gc(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .pipeline import gc  # lazy: see the note at the imports

    if args.keep < 1:
        raise SpecError("--keep must be 1 or more: the current environment is always kept")
    path = _path_of(args, ctx)
    done = gc(path, keep=args.keep)
    ctx.out.lines(render.warning_lines(done.warnings))
    ctx.out.result(render.gc_lines(path, done.removed, done.spares))
    return EXIT_OK, {"removed": [str(p) for p in done.removed], "spares": [str(p) for p in done.spares],
                     "warnings": list(done.warnings)}


def _import(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .buildout import import_buildout, read_buildout, write_import  # lazy: see the note
    from .buildout.remote import fetch_text

    cfg = read_buildout(args.source, fetch=fetch_text if args.upstream else None)
    result = import_buildout(cfg, output_dir=args.output_dir)
    if args.dry_run:
        if not args.json:
            for line in render.import_files_lines(result):
                print(line, file=ctx.stdout)
    else:
        write_import(result, force=args.force)
    ctx.out.lines(render.import_lines(result, verbose=args.verbose))
    return (EXIT_FAILURE if result.failed else EXIT_OK), result.to_json()


def _cache(args: argparse.Namespace, ctx: _Context) -> _Outcome:
    from .pyccache import cache_info, parse_size, prune  # lazy: see the note at the imports

    if args.action == "info":
        info = cache_info()
        ctx.out.result(render.cache_lines(info))
        return EXIT_OK, {"action": "info", **info.to_json()}
    try:
        bound = parse_size(args.max_size)
    except ValueError:
        raise SpecError(f"--max-size {args.max_size}: not a size", tip="e.g. 500M, 2G or 0") from None
    done = prune(bound)
    ctx.out.result(render.cache_lines(done.info, removed=done.removed, freed=done.freed))
    return EXIT_OK, {"action": "prune", **done.info.to_json(), "removed": done.removed,
                     "freed": done.freed, "max_size": bound}


#: One handler per command; the parser offers exactly these commands.
_COMMANDS: dict[str, Callable[[argparse.Namespace, _Context], _Outcome]] = {
    "init": _init,
    "build": _build,
    "fetch": _fetch,
    "lock": _lock,
    "export": _export,
    "check": _check,
    "sbom": _sbom,
    "status": _status,
    "plan": _plan,
    "config": _config,
    "rollback": _rollback,
    "gc": _gc,
    "pack": _pack,
    "unpack": _unpack,
    "import": _import,
    "cache": _cache,
}


def _run(args: argparse.Namespace, out: _Output, stdout: IO[str]) -> int:
    handler = _COMMANDS[args.command]  # argparse accepts only these names
    ctx = _Context(out=out, stdout=stdout,
                   runner=Runner(on_output=out.subprocess_line if args.verbose else None))
    code, result = handler(args, ctx)
    # "ok" says what the exit code says (`status` exits 1 when a build is due).
    _emit_json(args, stdout, args.command,
               {"ok": code == EXIT_OK, **({"exit_code": code} if code else {}), **result})
    return code


def _report_build(args: argparse.Namespace, out: _Output, probes: list[dict[str, Any]],
                  warnings: Sequence[str]) -> None:
    """After a build or check succeeded: its probes, then its warnings (their evidence is
    not repeated under the probes)."""
    _report_probes(args, out, probes)
    out.lines(render.warning_lines(warnings))


def _report_probes(args: argparse.Namespace, out: _Output, probes: list[dict[str, Any]], *,
                   failed: bool = False, error: str | None = None) -> None:
    """One line per probe (evidence under findings); the --junit-xml file when asked for."""
    junit: Path | None = getattr(args, "junit_xml", None)
    if not probes and junit is None:
        return  # e.g. a no-op build: nothing to render, and no reason to import the probes
    from .results import ProbeResult  # lazy: a no-op build has no probes to render

    results = [ProbeResult.from_json(p) for p in probes]
    # A failed probe's evidence is part of the error: shown with -q too.
    (out.error if failed else out.lines)(render.probe_lines(results, warn_evidence=failed))
    if junit is not None:
        from .probes.report import write_junit  # lazy: xml.etree and its regex, ~8 ms

        try:
            # `check --path DEST` has no env.yaml: the suite names the environment instead.
            where = getattr(args, "at", None) or args.spec
            write_junit(junit, results, suite=f"pinfold {args.command} {where}",
                        error=error)
        except OSError as exc:  # the report is secondary: never hide the build's own outcome
            out.error([render.junit_error_line(junit, exc)])


#: The version of every --json document; each is described by docs/schema/<form>.json.
#: It grows when a field is removed or changes meaning; new fields do not change it.
JSON_SCHEMA_VERSION = 1


def json_schema_name(form: str) -> str:
    """The ``schema`` field of a --json document: ``pinfold/<form>/<version>``, where
    ``form`` is the command's name, or ``error`` for a command that failed."""
    return f"pinfold/{form}/{JSON_SCHEMA_VERSION}"


def _emit_json(args: argparse.Namespace, stdout: IO[str], form: str, result: dict[str, Any]) -> None:
    """The one place --json documents are written: each names its schema."""
    if args.json:
        _write_json(stdout, form, result)


def _write_json(stdout: IO[str], form: str, result: dict[str, Any]) -> None:
    # `schema` and `ok` first, as a reader scanning the document expects; the rest sorted.
    head = {"schema": json_schema_name(form), "ok": result.get("ok")}
    rest = dict(sorted((k, v) for k, v in result.items() if k not in head))
    json.dump({**head, **rest}, stdout, indent=2)
    stdout.write("\n")


def _lock_arguments(args: argparse.Namespace) -> None:
    """``--upstream`` takes an optional URL, so ``lock --upstream env.yaml`` reads the spec as one."""
    if args.upstream and "://" not in args.upstream:
        if args.spec != Path("env.yaml"):
            raise SpecError(f"--upstream {args.upstream}: not a URL (it must contain ://)")
        args.spec, args.upstream = Path(args.upstream), ""
    if args.check and (args.upgrade or args.upgrade_package or args.upstream is not None):
        raise SpecError("--check only compares the locks with env.yaml's needs: "
                        "it takes no --upgrade, --upgrade-package or --upstream")
    from packaging.requirements import InvalidRequirement, Requirement  # lazy: packaging

    for value in args.upgrade_package:
        try:
            Requirement(value)
        except InvalidRequirement:
            raise SpecError(f"--upgrade-package {value!r}: expected NAME or NAME==VERSION") from None


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None,
         stderr: IO[str] | None = None) -> int:
    """Run the command line; return the exit code (never raises for user errors)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    words = list(sys.argv[1:] if argv is None else argv)
    parser = _parser("build" if words[:1] == ["build"] else None)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        code = int(exc.code or 0)
        if code != 0 and "--json" in words:  # a pipeline asked for a document: it gets one
            _write_json(stdout, "error", {"ok": False, "exit_code": code, "problems": [],
                                          "error": "bad arguments (see the message on stderr)"})
        return code
    out = _Output(stderr, verbose=args.verbose, quiet=args.quiet)
    try:
        return _main(args, out, stdout, stderr)
    finally:
        out.close()


def _main(args: argparse.Namespace, out: _Output, stdout: IO[str], stderr: IO[str]) -> int:
    def fail(lines: Sequence[str], exc: BaseException, extra: dict[str, Any]) -> int:
        code = exit_code_for(exc)
        out.error(lines)
        _emit_json(args, stdout, "error", {"ok": False, "exit_code": code, "problems": [], **extra})
        return code

    try:
        with _signals_stop_pinfold():
            return _run(args, out, stdout)
    except PinfoldError as exc:
        if args.traceback:
            out.result(())  # the live line ends before the traceback
            import traceback  # lazy: only --traceback needs it

            traceback.print_exc(file=stderr)
        extra: dict[str, Any] = {}
        if args.command in ("build", "check", "unpack"):
            extra["probes"] = [r.to_json() for r in exc.results] if isinstance(exc, ProbeError) else []
            _report_probes(args, out, extra["probes"], failed=True,
                           error=None if extra["probes"] else str(exc))
        return fail(render.error_lines(exc), exc, {"error": exc.summary, **extra,
                                                   "problems": [str(p) for p in exc.problems]})
    except (KeyboardInterrupt, Terminated) as exc:  # 130 for Ctrl-C, 128 + signum for the others
        return fail([render.INTERRUPTED], exc, {"error": "interrupted"})
    except Exception as exc:  # a bug in pinfold: still one line, with the way to see more
        if args.traceback:
            out.result(())  # the live line ends before the traceback
            import traceback  # lazy: only --traceback needs it

            traceback.print_exc(file=stderr)
        return fail(render.internal_error_lines(exc), exc, {"error": f"{type(exc).__name__}: {exc}"})


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
