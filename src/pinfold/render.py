"""The text people read about results: every line the CLI prints for a command's outcome.

The library returns data (dataclasses with fields, and ``to_json`` as the machine
form); this module turns that data into lines, and only :mod:`pinfold.cli` uses it.
Each function is pure: it returns lines and never prints, so its text can be tested.

It is imported by the no-op fast path of ``pinfold build``, so it imports nothing
beyond the standard library at load time (types only for the checker).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .paths import display_path

TYPE_CHECKING = False  # not typing's: see pinfold.errors
if TYPE_CHECKING:
    from .buildout import ImportResult
    from .changes import Plan
    from .deploy import UnpackResult
    from .errors import PinfoldError
    from .fetch import FetchReport
    from .init import InitReport
    from .locking import CheckReport, LockChanges, LockReport
    from .pack import PackResult
    from .probes import ProbeResult
    from .pyccache import CacheInfo
    from .results import BuildResult, Progress, StageEvent
    from .spec.yamlnodes import Located

__all__ = [
    "INTERRUPTED",
    "build_lines",
    "cache_lines",
    "change_lines",
    "check_lines",
    "config_lines",
    "error_lines",
    "event_line",
    "export_lines",
    "fetch_lines",
    "gc_lines",
    "import_files_lines",
    "import_lines",
    "init_lines",
    "internal_error_lines",
    "junit_error_line",
    "lock_check_lines",
    "lock_lines",
    "pack_lines",
    "plan_lines",
    "probe_lines",
    "progress_line",
    "rollback_lines",
    "size_text",
    "unpack_lines",
    "up_to_date_lines",
    "waiting_line",
    "warning_lines",
]

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def _shown(path: Path) -> str:
    """A path as the user would write it (relative to the working directory when inside it)."""
    return display_path(path)


# -- progress ------------------------------------------------------------------------------


def event_line(event: StageEvent, *, verbose: bool) -> str | None:
    """The line for one stage event, or None when it is not shown (a start, unless verbose)."""
    if event.kind == "start":
        return f"[{event.stage}] ..." if verbose else None
    if event.kind == "skip":
        return f"[{event.stage}] skipped: {event.detail}"
    return f"[{event.stage}] {event.seconds:6.2f}s  {event.detail}"


def progress_line(stage: str, progress: Progress | None, seconds: float) -> str:
    """A running stage: how far it is and what it does now (the live line, and the heartbeat
    line when not on a terminal), e.g. ``[install] 43/120 distributions: building foo (sdist) (12s)``,
    or with bytes, ``[fetch] 12/49 artifacts, 3.1 MiB of 9.8 MiB: downloading foo==1.0 (4s)``."""
    parts = [f"[{stage}]"]
    if progress is not None and progress.total is not None:
        parts.append(f"{progress.done}/{progress.total}" + (f" {progress.unit}" if progress.unit else ""))
    elif progress is not None and progress.done:
        parts.append(f"{progress.done}" + (f" {progress.unit}" if progress.unit else ""))
    if progress is not None and progress.bytes_done is not None:
        size = size_text(progress.bytes_done)
        if progress.bytes_total is not None:
            size += f" of {size_text(progress.bytes_total)}"
        if len(parts) > 1:
            parts[-1] += ","
        parts.append(size)
    if progress is not None and progress.item:
        parts[-1] += ":" if len(parts) > 1 else ""
        parts.append(progress.item)
    elif len(parts) == 1:
        parts.append("running")
    return f"{' '.join(parts)} ({seconds:.0f}s)"


def waiting_line(path: Path) -> str:
    """A build waits for another build of the same environment to finish."""
    return f"waiting for another build of {path} ..."


# -- build, check, probes ------------------------------------------------------------------


def probe_lines(results: Sequence[ProbeResult], *, warn_evidence: bool = True) -> list[str]:
    """One line per probe; the evidence of failures (and warnings) indented below it."""
    lines = []
    for result in results:
        lines.append(f"  {_MARK[result.status]} {result.seconds:5.2f}s  {result.name}: {result.summary}")
        if result.status == "fail" or (result.status == "warn" and warn_evidence):
            lines += [f"              {line}" for line in result.evidence]
    return lines


def junit_error_line(path: Path, exc: OSError) -> str:
    """The JUnit XML report could not be written (the command's own outcome follows)."""
    return f"error: cannot write the JUnit XML report {path}: {exc}"


def warning_lines(warnings: Sequence[str]) -> list[str]:
    """One ``warning:`` line each."""
    return [f"warning: {warning}" for warning in warnings]


def _digest_line(digest: str | None) -> list[str]:
    return [] if digest is None else [f"  environment digest {digest}"]


def build_lines(result: BuildResult, *, digest: str | None = None) -> list[str]:
    """A build's outcome: up to date, or built (its probes and warnings are rendered apart),
    then the environment digest its record holds (none for an older pinfold's environment)."""
    if result.up_to_date:
        return up_to_date_lines(result.path, result.seconds, digest=digest)
    return [f"built {result.path} -> {result.env_dir.name} in {result.seconds:.1f}s",
            *_digest_line(digest)]


def up_to_date_lines(path: Path, seconds: float, *, digest: str | None = None) -> list[str]:
    """A build that found nothing changed (what :func:`build_lines` renders for one)."""
    return [f"{path} is up to date ({seconds:.2f}s)", *_digest_line(digest)]


def check_lines(path: Path, *, skipped: str | None = None, digest: str | None = None,
                files_only: bool = False) -> list[str]:
    """``pinfold check`` passed (its probes and warnings are rendered apart), or ran no probe
    at all, for the reason ``skipped`` (e.g. the probes are disabled); ``files_only``: only
    the files were compared (``check --files``)."""
    if skipped is not None:
        return [f"{path}: no probes ran: {skipped}"]
    what = "its files are as built" if files_only else "all probes passed"
    return [f"{path}: {what}", *_digest_line(digest)]


def pack_lines(result: PackResult) -> list[str]:
    """``pinfold pack``: the archive, its checksum file and what it holds."""
    return [f"packed {display_path(result.env_dir)} -> {display_path(result.file)} "
            f"({size_text(result.size)}, {result.files} files)",
            f"  sha256 {result.sha256} in {display_path(result.checksum_file)}",
            *_digest_line(result.digest)]


def unpack_lines(result: UnpackResult) -> list[str]:
    """``pinfold unpack``: what was verified, where it went, what was relocated (its probes
    and warnings are rendered apart)."""
    checked = result.verified.checksum_file
    archive = (f"sha256 matches {display_path(checked)}" if checked is not None
               else f"no {result.file.name}.sha256 beside it: its hash was not checked")
    moved = (f"relocated from {result.built_at} ({len(result.relocated)} files rewritten)"
             if result.relocated else "no file named the folder it was built in")
    return [f"unpacked {display_path(result.file)} -> {result.path} -> {result.env_dir.name} "
            f"in {result.seconds:.1f}s",
            f"  archive: {archive}; every file matches the packed manifest",
            f"  {moved}",
            f"  python: {result.python.executable} ({result.python.version})"
            + ("" if result.python.executable == result.built_for
               else f", built with {result.built_for}"),
            *_digest_line(result.digest)]


# -- status, plan --------------------------------------------------------------------------


def plan_lines(path: Path, plan: Plan, *, detailed: bool) -> list[str]:
    """What a build would do; ``detailed`` (``pinfold plan``) adds how it would do it."""
    if plan.mode == "noop":
        return [f"{path} is up to date"]
    what = "needs a full build" if plan.mode == "full" else "needs an update"
    lines = [f"{path} {what}: {'; '.join(plan.reasons)}"]
    lines += [f"  install {pin}" for pin in plan.install]
    lines += [f"  remove  {name}" for name in plan.remove]
    if detailed:
        if plan.mode == "full":
            lines.append("  build a new environment from the locks, then re-run the final stages")
        else:
            lines.append("  clone the current environment, apply the changes above, "
                         "then re-run the final stages")
    return lines


# -- init ----------------------------------------------------------------------------------


def init_lines(report: InitReport) -> list[str]:
    """What ``pinfold init`` wrote, and the next two commands."""
    lines = [f"{'replaced' if p in report.replaced else 'wrote':8} {_shown(p)}" for p in report.written]
    lines += [f"created  {_shown(p)}/" for p in report.created if p != report.folder]
    lines += [f"note: {note}" for note in report.notes]
    if not report.needs:
        lines.append(f"note: {_shown(report.needs_file)} lists no needs yet: add one requirement per line")
    spec = "" if report.folder == Path.cwd() else f" {_shown(report.spec_file)}"
    lock = f"pinfold lock{spec}" if report.wheelhouse is None else f"pinfold lock --upstream{spec}"
    lines.append(f"next: {lock}   (resolves the needs, writes the locks"
                 + (", fills the wheelhouse)" if report.wheelhouse is not None else ")"))
    lines.append(f"then: pinfold build{spec}")
    return lines


# -- rollback, gc, fetch -------------------------------------------------------------------


def rollback_lines(path: Path, old: Path, new: Path) -> list[str]:
    """``pinfold rollback`` switched ``path`` from ``old`` to ``new``."""
    return [f"{path}: rolled back from {old.name} to {new.name}"]


def gc_lines(path: Path, removed: Sequence[Path], spares: Sequence[Path] = ()) -> list[str]:
    """``pinfold gc`` removed these environments (and the folders of ones retired before)."""
    kept = f", and the spare folders of {len(spares)} retired earlier" if spares else ""
    return [f"{path}: removed {len(removed)} old environment(s){kept}"]


def size_text(size: int) -> str:
    """A size in bytes for people: ``512 B``, ``3.4 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable: GiB ends the loop


def cache_lines(info: CacheInfo, *, removed: int | None = None, freed: int = 0) -> list[str]:
    """``pinfold cache info`` (and after ``prune``, what it removed): what the cache holds."""
    lines = []
    if removed is not None:
        lines.append(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'}, "
                     f"freed {size_text(freed)}")
    interps = f" for {', '.join(info.interpreters)}" if info.interpreters else ""
    lines.append(f"{_shown(info.root)}: {size_text(info.size)}: {info.entries} bytecode "
                 f"entr{'y' if info.entries == 1 else 'ies'} ({size_text(info.pyc_bytes)}){interps}, "
                 f"{info.digests} artifact digest(s)"
                 + (f", {info.wheels} wheel(s) built from sdists ({size_text(info.wheel_bytes)})"
                    if info.wheels else "")
                 + (f", {info.templates} virtualenv template(s) ({size_text(info.template_bytes)})"
                    if info.templates else ""))
    if info.leftovers:
        lines.append(f"{info.leftovers} unfinished fill(s) (never used; "
                     "`pinfold cache prune` removes stale ones)")
    return lines


def fetch_lines(report: FetchReport) -> list[str]:
    """What ``pinfold fetch`` downloaded: one line."""
    where = _shown(report.wheelhouse) + "/"
    if not report.downloaded:
        return [f"{where} already holds every locked artifact ({report.present} pins)"]
    return [f"downloaded {len(report.downloaded)} artifacts into {where} "
            f"({report.present} were already there)"]


# -- lock ----------------------------------------------------------------------------------


def change_lines(changes: LockChanges) -> list[str]:
    """One line per change of one lock."""
    return ([f"added    {p}" for p in changes.added] + [f"removed  {p}" for p in changes.removed]
            + [f"moved    {m}" for m in changes.moved]
            + [f"rehashed {p}: the index holds other artifacts of it" for p in changes.rehashed])


def lock_lines(report: LockReport) -> list[str]:
    """What ``pinfold lock`` changed and wrote: one block per lock, then what was written."""
    out = []
    for title, path, changes, count in (
            ("runtime", report.runtime_path, report.runtime, report.runtime_pins),
            ("build", report.build_path, report.build, report.build_pins)):
        if path is None:
            continue
        state = "unchanged" if changes.empty else "changed"
        out.append(f"{title} lock {_shown(path)} ({count} pin{'' if count == 1 else 's'}): {state}")
        out += [f"  {line}" for line in change_lines(changes)]
    out += warning_lines(report.warnings)
    if report.dry_run:
        out.append("dry run: nothing was written")
    elif report.written and report.runtime.empty and report.build.empty:
        out.append("rewrote " + " and ".join(_shown(p) for p in report.written)
                   + ": the same pins, with a new header or new annotations")
    elif report.written:
        out.append("wrote " + " and ".join(_shown(p) for p in report.written))
    else:
        out.append("the locks were already up to date; nothing was written")
    return out


def lock_check_lines(report: CheckReport) -> list[str]:
    """``pinfold lock --check`` found the locks current: one line."""
    return [f"{' and '.join(_shown(p) for p in report.paths)} match env.yaml's needs"]


def export_lines(source: Path, output: Path, fmt: str, *, written: bool) -> list[str]:
    """``pinfold export -o FILE``: what was converted, and whether FILE changed."""
    what = "a PEP 751 lock" if fmt == "pylock" else "a requirements file"
    if not written:
        return [f"{_shown(output)} already holds {_shown(source)} as {what}; nothing was written"]
    return [f"wrote {_shown(output)}: {_shown(source)} as {what}"]


def sbom_lines(output: Path | None, components: int, build: int, digest: str | None) -> list[str]:
    """``pinfold sbom``: where the SBOM went and what it counts (on stderr: stdout may hold it)."""
    where = _shown(output) if output is not None else "stdout"
    counts = f"{components} component{'s' if components != 1 else ''}, {build} from the build lock"
    return [f"wrote the CycloneDX SBOM to {where}: {counts}"
            + (f"; environment digest {digest}" if digest else "")]


# -- errors --------------------------------------------------------------------------------


# -- config --------------------------------------------------------------------------------


def config_lines(layers: Sequence[Path], config: Located, *, origins: bool) -> list[str]:
    """``pinfold config``: the merged env.yaml as YAML, which ``yaml.safe_load`` reads back as
    ``config.plain()``; with ``origins``, each value ends with a ``# file:line`` comment."""
    out = [f"# merged from {', '.join(_shown(f) for f in layers)} (in the order applied)"]
    if isinstance(config.value, dict) and config.value:
        out += _config_entries(config.value, "", origins)
    elif isinstance(config.value, list) and config.value:
        for item in config.value:
            out += _config_item(item, "", origins)
    else:
        out.append(_config_flow(config) + _config_origin(config, origins))
    return out


def _config_origin(value: Located, origins: bool) -> str:
    return f"  # {value.where}" if origins else ""


def _config_nested(value: Located) -> bool:
    """Whether a value gets lines of its own (a non-empty mapping or list) or fits on one."""
    return isinstance(value.value, (dict, list)) and bool(value.value)


def _config_entries(mapping: dict[str, Located], pad: str, origins: bool) -> list[str]:
    out = []
    for key, value in mapping.items():
        name = _config_scalar(key)
        if not _config_nested(value):
            out.append(f"{pad}{name}: {_config_flow(value)}{_config_origin(value, origins)}")
        elif isinstance(value.value, dict):
            out += [f"{pad}{name}:", *_config_entries(value.value, pad + "  ", origins)]
        else:
            assert isinstance(value.value, list)
            out.append(f"{pad}{name}:")
            for item in value.value:
                out += _config_item(item, pad + "  ", origins)
    return out


def _config_item(item: Located, pad: str, origins: bool) -> list[str]:
    if isinstance(item.value, dict) and item.value:
        lines = _config_entries(item.value, pad + "  ", origins)
        return [f"{pad}- {lines[0][len(pad) + 2:]}", *lines[1:]]
    # A list in a list (an argv) is written in flow style, with the origin of the list.
    return [f"{pad}- {_config_flow(item)}{_config_origin(item, origins)}"]


def _config_flow(value: Located) -> str:
    if isinstance(value.value, list):
        return "[" + ", ".join(_config_flow(v) for v in value.value) + "]"
    if isinstance(value.value, dict):
        pairs = (f"{_config_scalar(k)}: {_config_flow(v)}" for k, v in value.value.items())
        return "{" + ", ".join(pairs) + "}"
    return _config_scalar(value.value)


def _config_scalar(value: object) -> str:
    """One scalar as YAML text that reads back as the same value."""
    import json

    import yaml  # only `pinfold config` gets here: the fast path stays free of it

    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    text = text.removesuffix("\n").removesuffix("\n...").removesuffix("...").rstrip("\n")
    if "\n" in text or (isinstance(value, str) and any(c in text for c in "[]{},")):
        # Multi-line, or flow indicators (inside a flow list they would split it): a JSON
        # string is a valid YAML double-quoted scalar.
        return json.dumps(value, ensure_ascii=False)
    return text


def error_lines(exc: PinfoldError) -> list[str]:
    """An error as the user reads it: ``error:`` with its message (summary and problems),
    then its ``tip:`` if it has one."""
    return [f"error: {exc}", *([f"tip: {exc.tip}"] if exc.tip else [])]


def internal_error_lines(exc: Exception) -> list[str]:
    """A bug in pinfold: still one line, with the way to see more."""
    return [f"internal error: {type(exc).__name__}: {exc}",
            "tip: run again with --traceback and report it"]


#: What ``pinfold`` says when interrupted (Ctrl-C) during a command.
INTERRUPTED = "interrupted; the previous environment is unchanged"


def import_files_lines(result: ImportResult) -> list[str]:
    """``pinfold import --dry-run``: each file it would write, under its name."""
    out: list[str] = []
    for name, text in result.files.items():
        out += [f"==> {name} <==", *text.rstrip("\n").split("\n"), ""]
    return out


def import_lines(result: ImportResult, *, verbose: bool) -> list[str]:
    """``pinfold import``'s report: one line per finding (notes with -v), then what was written."""
    out = []
    for f in result.findings:
        if f.level == "note" and not verbose:
            continue
        tip = f" (tip: {f.suggestion})" if f.suggestion else ""
        out.append(f"{f.level}: {f.where}: {f.message}{tip}" if f.where else f"{f.level}: {f.message}{tip}")
    counts = {lvl: sum(1 for f in result.findings if f.level == lvl) for lvl in ("error", "warning", "note")}
    out.append(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['note']} note(s)"
               + ("" if verbose else " (-v lists the notes)"))
    if result.written:
        out.append(f"wrote {', '.join(result.written)} in {_shown(result.output_dir)}")
    if result.failed:
        out.append("some parts that define scripts or eggs could not be carried over: see the errors above")
    else:
        out.append("next: pinfold lock (or pinfold lock --upstream), then pinfold build")
    return out
