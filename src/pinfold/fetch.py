"""``pinfold fetch``: the one command that goes online.

Downloads exactly the artifacts of both locks (name, version, hash) from an upstream
index into the spec's wheelhouse, creating the folder when it does not exist yet. It
never resolves and never runs build code: the upstream index's simple page of each
missing pin is read (:class:`pinfold.index.ArtifactIndex`, through
:func:`pinfold.index.upstream_opener`: the certificates and proxies pip would use), the
file is picked as pip would pick it for the target interpreter (the best-tagged wheel
whose hash is in the lock, else the locked sdist), downloaded, and kept only when its
hash is in the lock. Progress (artifacts, and bytes of the sizes a HEAD request tells
beforehand) goes to ``on_progress``. (``pip download`` would prepare an sdist's metadata, running its
build backend with build dependencies from upstream, unpinned and unhashed; no pip
option avoids that.)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.tags import Tag

from .errors import PreflightError, Problem, SpecError
from .index import (
    ArtifactIndex,
    IndexFile,
    download,
    file_digest,
    hash_algorithms,
    redact,
    remote_size,
    upstream_opener,
)
from .interpreter import Interpreter
from .locks import Pin
from .paths import display_path
from .preflight import check_pins, describe, preflight, target_interpreters
from .results import Progress
from .runner import Runner
from .spec import IndexSpec, Spec

__all__ = ["DEFAULT_UPSTREAM", "FetchReport", "fetch"]

#: pip's default index, used when no ``--index-url`` is given.
DEFAULT_UPSTREAM = "https://pypi.org/simple/"

#: Seconds a HEAD request for a file's size may take (the sizes only feed the progress line).
_SIZE_TIMEOUT = 5.0


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchReport:
    """What ``fetch`` found and downloaded."""

    wheelhouse: Path
    downloaded: tuple[str, ...] = ()
    present: int = 0
    pins: tuple[str, ...] = field(default=())
    #: The wheelhouse folder did not exist and was created.
    created: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"wheelhouse": str(self.wheelhouse), "downloaded": list(self.downloaded),
                "present": self.present, "created": self.created}


def _candidates(files: list[IndexFile], pin: Pin, rank: dict[Tag, int]) -> list[IndexFile]:
    """The files pip could install for ``pin``, in the order it prefers them."""
    algos = hash_algorithms(pin.hashes)

    def allowed(f: IndexFile) -> bool:
        # A hash the page announces in one of the lock's algorithms rules the file out (as in
        # pip) when it is not locked; a file without one is downloaded and checked.
        if f.announced is None or f.announced.split(":", 1)[0] not in algos:
            return True
        return f.announced in pin.hashes

    wheels = [f for f in files if f.tags is not None and f.tags & rank.keys() and allowed(f)]
    wheels.sort(key=lambda f: min(rank[t] for t in (f.tags or set()) if t in rank))
    return wheels + [f for f in files if f.is_sdist and allowed(f)]


class _Meter:
    """How far the downloads are: artifacts done of all, bytes so far and, when every size is
    known beforehand, in all; each change is one :class:`Progress` for the CLI's line."""

    def __init__(self, say: Callable[[str | Progress], None], expected: dict[str, int | None]) -> None:
        self.say = say
        #: Per pin, the size of the file it should get (its first candidate), when known.
        self.expected = expected
        known = list(expected.values())
        self.bytes_total = (sum(n for n in known if n is not None)
                            if known and None not in known else None)
        self.artifacts = 0
        self.bytes_done = 0
        self.item = ""
        self._file = 0  # bytes of the file being downloaded
        self._pin_start = 0

    def report(self) -> None:
        """Tell how far it is now."""
        self.say(Progress("fetch", self.artifacts, len(self.expected), "artifacts", self.item,
                          bytes_done=self.bytes_done + self._file, bytes_total=self.bytes_total))

    def begin(self, pin: Pin) -> None:
        """``pin``'s downloads start."""
        self.item, self._pin_start = f"downloading {pin}", self.bytes_done
        self.report()

    def file_bytes(self, done: int) -> None:
        """The file being downloaded has ``done`` bytes so far."""
        self._file = done
        self.report()

    def file_end(self) -> None:
        """A file is downloaded (or failed half-way): its bytes count as downloaded."""
        self.bytes_done += self._file
        self._file = 0

    def end(self, pin: Pin) -> None:
        """``pin`` is done: the total becomes what was really downloaded for it (a file that
        failed and another candidate make it other than expected)."""
        expected = self.expected.get(str(pin))
        if self.bytes_total is not None and expected is not None:
            self.bytes_total += self.bytes_done - self._pin_start - expected
        self.artifacts += 1
        self.report()


def _expected_sizes(upstream: ArtifactIndex, first: dict[str, IndexFile | None]) -> dict[str, int | None]:
    """The size of each pin's first candidate (HEAD requests, in parallel), None when unknown."""
    def size(f: IndexFile | None) -> int | None:
        if f is None:
            return None
        # Only for the progress line: a slow server costs the downloads' time, not this too.
        return remote_size(f.location, timeout=min(upstream.spec.timeout, _SIZE_TIMEOUT),
                           opener=upstream.opener)

    with ThreadPoolExecutor(8) as pool:
        return dict(zip(first, pool.map(size, first.values()), strict=True))


def _download_pin(pin: Pin, upstream: ArtifactIndex, rank: dict[Tag, int], tmp: Path,
                  wheelhouse: Path, interp: Interpreter, meter: _Meter) -> tuple[str | None, list[Problem]]:
    """Download ``pin``'s artifact into ``wheelhouse``; (its file name, or None, and problems)."""
    files = upstream.files(pin.name, pin.version)
    candidates = _candidates(files, pin, rank)
    tried: list[Problem] = []
    for f in candidates:
        target = tmp / f.filename
        try:
            download(f.location, target, opener=upstream.opener, on_bytes=meter.file_bytes)
        except OSError as exc:
            tried.append(Problem(f.location, f"cannot download it: {getattr(exc, 'reason', exc)}"))
            continue
        finally:
            meter.file_end()
        digests = {f"{a}:{file_digest(target, a)}" for a in hash_algorithms(pin.hashes)}
        if digests & pin.hashes:
            os.replace(target, wheelhouse / f.filename)
            return f.filename, []
        target.unlink()
        tried.append(Problem(f.location, f"hash mismatch for {pin}: the file has "
                                         f"{', '.join(sorted(digests))}, the lock expects "
                                         f"{', '.join(sorted(pin.hashes))}"))
    if tried:
        return None, tried
    if not files:
        detail = f"not in {upstream.describe()}"
        if ignored := upstream.rejected(pin.name):
            detail += ("; links ignored because their file name is not a plain name: "
                       + ", ".join(repr(n) for n in ignored))
    else:
        detail = (f"no file of {upstream.describe()} has a hash of the lock and fits "
                  f"{interp.implementation} {interp.version} ({interp.tags[0]}): it has "
                  + ", ".join(f.filename for f in files))
    return None, [Problem(str(pin), detail)]


def _selected(spec: Spec, runner: Runner, target: str | None) -> list[Interpreter]:
    """The targets to fetch for: all of them, or the one ``target`` names (as env.yaml writes it)."""
    interps = target_interpreters(spec, runner)
    if target is None:
        return interps
    if not spec.targets:
        raise SpecError(f"{display_path(spec.file)}: targets: missing: --target {target} names one "
                        "of env.yaml's targets, and it has none")
    for t, interp in zip(spec.targets, interps, strict=True):
        if target == t.label or (t.python and os.path.realpath(target) == os.path.realpath(t.python)):
            return [interp]
    raise SpecError(f"--target {target}: not one of env.yaml's targets",
                    [Problem("targets", ", ".join(t.label for t in spec.targets))],
                    tip="name a target as env.yaml writes it (an interpreter, or VERSION/PLATFORM)")


def fetch(spec: Spec, *, runner: Runner | None = None, index_url: str | None = None,
          on_progress: Callable[[str | Progress], None] | None = None,
          interp: Interpreter | None = None, target: str | None = None) -> FetchReport:
    """Fill the first ``find_links`` folder with every locked artifact that is missing.

    For every target of env.yaml (its ``targets``, else its ``python``), or only ``interp``,
    or only the target ``target`` names.
    """
    runner = runner or Runner()
    say = on_progress or (lambda _: None)
    if not spec.index.find_links:
        raise SpecError(f"{display_path(spec.file)}: index.find_links: fetch fills a wheelhouse "
                        "folder, and this spec has none",
                        tip="add a find_links folder, or upload the locked artifacts to your index")
    wheelhouse = spec.index.find_links[0]
    created = False
    if not wheelhouse.is_dir():
        if wheelhouse.exists() or wheelhouse.is_symlink():
            raise SpecError(f"{display_path(spec.file)}: index.find_links: {display_path(wheelhouse)} "
                            "is not a folder")
        try:
            wheelhouse.mkdir(parents=True)
        except OSError as exc:
            raise SpecError(f"{display_path(spec.file)}: index.find_links: cannot create "
                            f"{display_path(wheelhouse)}: {exc.strerror or exc}") from None
        created = True
        say(f"created the wheelhouse folder {display_path(wheelhouse)}/ (index.find_links)")
    interps = [interp] if interp is not None else _selected(spec, runner, target)
    downloaded: list[str] = []
    present = 0
    pins: list[str] = []
    for one in interps:
        got, here, wanted = _fetch_for(spec, one, wheelhouse, index_url, say,
                                       several=len(interps) > 1)
        downloaded += got
        present += here
        pins += [p for p in wanted if p not in pins]
    return FetchReport(wheelhouse=wheelhouse, downloaded=tuple(downloaded), present=present,
                       pins=tuple(pins), created=created)


def _fetch_for(spec: Spec, interp: Interpreter, wheelhouse: Path, index_url: str | None,
               say: Callable[[str | Progress], None], *, several: bool) -> tuple[list[str], int, list[str]]:
    """Fetch what ``interp`` needs; (downloaded file names, pins present already, pins)."""
    local = ArtifactIndex(IndexSpec(find_links=spec.index.find_links))
    runtime = [p for p in spec.requirements.pins if p.applies(interp.markers)]
    build = [p for p in spec.build_requirements.pins] if spec.build_requirements else []
    build = [p for p in build if p.applies(interp.markers)]
    missing: list[Pin] = []
    for pin in runtime + build:
        problems: list[Problem] = []
        chosen: dict[str, IndexFile] = {}
        check_pins([pin], build=False, index=local, interp=interp, runtime={},
                   problems=problems, chosen=chosen)
        if problems or str(pin) not in chosen:
            missing.append(pin)
    present = len(runtime) + len(build) - len(missing)
    # A pin in both locks is downloaded once.
    missing = list({(p.name, p.version): p for p in missing}.values())
    downloaded: list[str] = []
    if missing:
        who = f" for {describe(interp)}" if several else ""
        say(f"fetching {len(missing)} artifacts{who}: " + ", ".join(str(p) for p in missing))
        url = (index_url or DEFAULT_UPSTREAM).rstrip("/") + "/"
        upstream = ArtifactIndex(IndexSpec(url=url), opener=upstream_opener(url))
        rank = {Tag(*t.split("-")): i for i, t in enumerate(interp.tags)}
        failed: list[Problem] = []
        # Download beside the wheelhouse, then move in: a killed fetch leaves no partial file.
        with tempfile.TemporaryDirectory(dir=wheelhouse.parent, prefix=".pinfold-fetch-") as tmp:
            try:
                upstream.prefetch(p.name for p in missing)
                say(Progress("fetch", 0, len(missing), "artifacts", "asking the sizes of the files"))
                first = {str(p): next(iter(_candidates(upstream.files(p.name, p.version), p, rank)), None)
                         for p in missing}
                meter = _Meter(say, _expected_sizes(upstream, first))
                for pin in missing:
                    meter.begin(pin)
                    name, problems = _download_pin(pin, upstream, rank, Path(tmp), wheelhouse, interp, meter)
                    meter.end(pin)
                    if name is not None:
                        downloaded.append(name)
                    failed += problems
                meter.item = "checking the wheelhouse"
                meter.report()
            except PreflightError as exc:
                failed += exc.problems or [Problem("", str(exc))]
        if failed:
            kept = f"; {len(downloaded)} downloaded were kept" if downloaded else ""
            raise PreflightError(
                f"could not download every locked artifact from {redact(url)}; the wheelhouse keeps what "
                f"it had{kept}", failed, tip="check the pins and the upstream index (--index-url)")
    # Prove the result the same way `pinfold build` will.
    preflight(spec, interp, ArtifactIndex(spec.index))
    return downloaded, present, [str(p) for p in runtime + build]
