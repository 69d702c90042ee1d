"""The local index: which artifacts it holds, their hashes, and the pre-flight check.

Pre-flight runs before anything is created: every pin of both locks must have an
artifact in the index whose hash is in the lock and which fits the target interpreter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from .errors import PreflightError, Problem
from .interpreter import Interpreter
from .locks import Lock, Pin
from .paths import display_path
from .spec import IndexSpec, Spec

__all__ = ["IndexFile", "LocalIndex", "Preflight", "preflight", "sha256_of"]


def sha256_of(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexFile:
    """One artifact the index offers."""

    filename: str
    #: A local path (find-links) or a URL (simple index).
    location: str
    name: NormalizedName
    version: Version
    #: Wheel tags, or None for an sdist.
    tags: frozenset[Tag] | None
    #: ``sha256:<hex>`` when known (always for local files; from the URL fragment otherwise).
    digest: str | None

    @property
    def is_sdist(self) -> bool:
        return self.tags is None


def _parse_filename(filename: str) -> tuple[NormalizedName, Version, frozenset[Tag] | None] | None:
    try:
        if filename.endswith(".whl"):
            name, version, _, tags = parse_wheel_filename(filename)
            return name, version, tags
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return name, version, None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


def _hrefs(body: str) -> list[str]:
    """The ``href`` of every anchor of a PEP 503 page."""
    import html.parser

    hrefs: list[str] = []

    class Links(html.parser.HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            href = dict(attrs).get("href")
            if tag == "a" and href:
                hrefs.append(href)

    Links().feed(body)
    return hrefs


class LocalIndex:
    """The artifacts of the spec's index, listed lazily per project name."""

    def __init__(self, spec: IndexSpec) -> None:
        self.spec = spec
        self._local: dict[NormalizedName, list[tuple[Path, str]]] | None = None
        self._digests: dict[Path, str] = {}
        self._pages: dict[NormalizedName, list[IndexFile]] = {}

    def describe(self) -> str:
        """The index as the user named it, for messages."""
        places = [display_path(p) + "/" for p in self.spec.find_links]
        if self.spec.url:
            places.append(self.spec.url)
        return " or ".join(places)

    def _scan_local(self) -> dict[NormalizedName, list[tuple[Path, str]]]:
        if self._local is None:
            self._local = {}
            for folder in self.spec.find_links:
                # pip's find-links looks at a folder's own files, not its subfolders.
                for entry in sorted(folder.iterdir()):
                    parsed = _parse_filename(entry.name) if entry.is_file() else None
                    if parsed:
                        self._local.setdefault(parsed[0], []).append((entry, entry.name))
        return self._local

    def _url_files(self, name: NormalizedName) -> list[IndexFile]:
        if name not in self._pages:
            self._pages[name] = self._read_page(name)
        return self._pages[name]

    def _read_page(self, name: NormalizedName) -> list[IndexFile]:
        # Imported here: only a URL index needs them, and the no-op path stays cheap.
        import urllib.error
        import urllib.parse
        import urllib.request

        assert self.spec.url is not None
        page = urllib.parse.urljoin(self.spec.url, f"{name}/")
        try:
            parsed_url = urllib.parse.urlparse(page)
            if parsed_url.scheme == "file":
                path = Path(urllib.request.url2pathname(parsed_url.path)) / "index.html"
                body = path.read_text(encoding="utf-8") if path.is_file() else ""
            else:
                # The local index only: no proxy from the environment may sit in between.
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                # S310: the scheme was checked in spec.py (http, https or file only).
                request = urllib.request.Request(page, headers={"Accept": "text/html"})  # noqa: S310
                with opener.open(request,
                                 timeout=30) as resp:
                    body = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise PreflightError(f"the index {self.spec.url} answered {exc.code} for {page}") from None
        except (OSError, urllib.error.URLError) as exc:
            raise PreflightError(f"cannot reach the index {self.spec.url}: {exc}",
                                 tip="start the local index, or fix index.url in env.yaml") from None
        out = []
        for href in _hrefs(body):
            url = urllib.parse.urljoin(page, href)
            base, _, fragment = url.partition("#")
            filename = urllib.parse.unquote(base.rsplit("/", 1)[-1])
            parsed = _parse_filename(filename)
            if not parsed or parsed[0] != name:
                continue
            algo, _, hexdigest = fragment.partition("=")
            digest = f"sha256:{hexdigest.lower()}" if algo == "sha256" and hexdigest else None
            out.append(IndexFile(filename=filename, location=base, name=parsed[0],
                                 version=parsed[1], tags=parsed[2], digest=digest))
        return out

    def files(self, name: NormalizedName, version: Version | None = None) -> list[IndexFile]:
        """Every artifact of ``name`` (of ``version``, if given), local ones hashed."""
        out = []
        for path, filename in self._scan_local().get(name, []):
            parsed = _parse_filename(filename)
            assert parsed is not None
            if version is not None and parsed[1] != version:
                continue
            if path not in self._digests:
                self._digests[path] = sha256_of(path)
            out.append(IndexFile(filename=filename, location=str(path), name=name,
                                 version=parsed[1], tags=parsed[2], digest=self._digests[path]))
        if self.spec.url:
            out += [f for f in self._url_files(name) if version is None or f.version == version]
        return out

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        """Warm the URL index pages in parallel (one request per project)."""
        if self.spec.url:
            from concurrent.futures import ThreadPoolExecutor

            todo = sorted(set(names) - self._pages.keys())
            with ThreadPoolExecutor(8) as pool:
                self._pages.update(zip(todo, pool.map(self._read_page, todo), strict=True))


@dataclass(frozen=True, slots=True)
class Preflight:
    """What pre-flight learned: the pins that apply and which build from source."""

    runtime: tuple[Pin, ...]
    build: tuple[Pin, ...]
    #: Runtime pins that will be built from an sdist (no fitting wheel in the lock).
    from_source: tuple[Pin, ...] = field(default=())
    #: The artifact chosen for each applying pin (best wheel, else the sdist).
    chosen: dict[str, IndexFile] = field(default_factory=dict)


def _applies(pin: Pin, interp: Interpreter) -> bool:
    return pin.marker is None or pin.marker.evaluate(interp.markers)


def _role(pin: Pin, build: bool, runtime: dict[NormalizedName, Pin]) -> str:
    if not build:
        return ""
    needers = []
    for via in pin.via:
        name = canonicalize_name(via.split("==")[0].split("[")[0].strip())
        needers.append(str(runtime[name]) if name in runtime else via)
    return f" (build dependency of {', '.join(needers)})" if needers else " (build dependency)"


def check_pins(pins: Iterable[Pin], *, build: bool, index: LocalIndex, interp: Interpreter,
               runtime: dict[NormalizedName, Pin], problems: list[Problem],
               chosen: dict[str, IndexFile]) -> list[Pin]:
    """Check each pin against the index; return those that must be built from source."""
    rank = {Tag(*t.split("-")): i for i, t in enumerate(interp.tags)}
    from_source = []
    for pin in pins:
        role = _role(pin, build, runtime)
        files = index.files(pin.name, pin.version)
        if not files:
            problems.append(Problem(f"{pin}{role}", f"not in {index.describe()}"))
            continue
        good = []
        for f in files:
            if f.digest is None or f.digest in pin.hashes:
                good.append(f)
                continue
            expected = ", ".join(sorted(pin.hashes))
            problems.append(Problem(
                display_path(Path(f.location)) if "://" not in f.location else f.location,
                f"hash mismatch for {pin}{role}: the file has {f.digest}, the lock expects {expected}; "
                "the file was changed or replaced: remove it and run `pinfold fetch`"))
        wheels = [f for f in good if f.tags is not None and f.tags & rank.keys()]
        sdists = [f for f in good if f.is_sdist]
        if wheels:
            # The wheel with the most preferred tag, as pip would choose.
            chosen[str(pin)] = min(wheels, key=lambda f: min(rank[t] for t in (f.tags or set()) if t in rank))
        elif sdists:
            chosen[str(pin)] = sdists[0]
            from_source.append(pin)
        elif good and len(good) == len(files):
            names = ", ".join(f.filename for f in good)
            problems.append(Problem(f"{pin}{role}", f"no artifact fits {interp.implementation} "
                                    f"{interp.version} ({interp.tags[0]}): the index has {names}"))
    return from_source


def preflight(spec: Spec, interp: Interpreter, index: LocalIndex) -> Preflight:
    """Check both locks against the index; raise :class:`PreflightError` listing every gap."""
    runtime = tuple(p for p in spec.requirements.pins if _applies(p, interp))
    build_lock: Lock | None = spec.build_requirements
    build = tuple(p for p in build_lock.pins if _applies(p, interp)) if build_lock else ()
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
    return Preflight(runtime, build, tuple(from_source), chosen)
