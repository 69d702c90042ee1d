"""Every access to an index: pip's view of it, its artifacts, their names and hashes, downloads.

The spec's index (find-links folders and/or a PEP 503 simple-index URL) reaches pip as
flags and as ``PIP_*`` variables (:func:`index_flags`, :func:`index_environ`: the pip and
uv backends, pip-compile and build-dependency discovery all use these two); an upstream
index for ``pinfold fetch`` and ``pinfold lock --upstream`` as :func:`upstream_flags` and
:func:`upstream_environ`. :class:`ArtifactIndex` lists what the index holds, reading
simple pages through :func:`no_proxy_opener`, which :func:`download` uses too; artifact
file names are read by :func:`parse_filename` and files hashed by :func:`file_digest`.
Pre-flight, which checks the locks against all this, is :mod:`pinfold.preflight`.
"""

from __future__ import annotations

import hashlib
import html.parser
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from .errors import PreflightError
from .paths import display_path
from .spec import IndexSpec

__all__ = [
    "ArtifactIndex",
    "IndexFile",
    "download",
    "file_digest",
    "index_environ",
    "index_flags",
    "no_proxy_opener",
    "parse_filename",
    "sha256_of",
    "upstream_environ",
    "upstream_flags",
]


def index_flags(index: IndexSpec) -> list[str]:
    """The spec's index as pip flags: nothing else is ever searched."""
    flags = [] if index.url else ["--no-index"]
    if index.url:
        flags += ["--index-url", index.url]
    for folder in index.find_links:
        flags += ["--find-links", str(folder)]
    return flags


def index_environ(index: IndexSpec) -> dict[str, str]:
    """The spec's index as ``PIP_*`` variables, for any pip a build starts on its own."""
    env = {"PIP_FIND_LINKS": " ".join(str(f) for f in index.find_links)}
    if index.url:
        env["PIP_INDEX_URL"] = index.url
    else:
        env["PIP_NO_INDEX"] = "1"
    return env


def upstream_flags(url: str | None) -> list[str]:
    """An upstream index as pip flags; None or "" means pip's default index (no flag)."""
    return ["--index-url", url] if url else []


def upstream_environ(url: str | None) -> dict[str, str]:
    """An upstream index as ``PIP_*`` variables; None or "" means pip's default index."""
    return {"PIP_INDEX_URL": url} if url else {}


def file_digest(path: Path, algo: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in chunks."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, algo).hexdigest()


def sha256_of(path: Path) -> str:
    """``sha256:<hex>`` of a file, as locks and simple pages write artifact hashes."""
    return f"sha256:{file_digest(path)}"


def parse_filename(filename: str) -> tuple[NormalizedName, Version, frozenset[Tag] | None] | None:
    """(name, version, wheel tags or None for an sdist) of an artifact file name, or None."""
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


def no_proxy_opener() -> urllib.request.OpenerDirector:
    """A URL opener that ignores proxy variables: pinfold reads only the user's own index."""
    # The local index only: no proxy from the environment may sit in between.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def download(url: str, target: Path, *, timeout: float = 60) -> None:
    """Copy the artifact at ``url`` into ``target`` (no proxy); OSError when that fails."""
    with no_proxy_opener().open(url, timeout=timeout) as resp, target.open("wb") as fh:
        fh.write(resp.read())


def _file_url_path(url: str) -> Path | None:
    """The local path of a ``file:`` URL, or None for any other URL."""
    parsed = urllib.parse.urlparse(url)
    return Path(urllib.request.url2pathname(parsed.path)) if parsed.scheme == "file" else None


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
        """True for an sdist (no wheel tags)."""
        return self.tags is None

    def local_path(self) -> Path | None:
        """Where the artifact is on this machine (a find-links file or a ``file:`` URL), or None."""
        if "://" not in self.location:
            return Path(self.location)
        return _file_url_path(self.location)


def _hrefs(body: str) -> list[str]:
    """The ``href`` of every anchor of a PEP 503 page."""
    hrefs: list[str] = []

    class Links(html.parser.HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            href = dict(attrs).get("href")
            if tag == "a" and href:
                hrefs.append(href)

    Links().feed(body)
    return hrefs


class ArtifactIndex:
    """The artifacts of the spec's index (find-links folders and/or a simple-index URL), by project."""

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
                    parsed = parse_filename(entry.name) if entry.is_file() else None
                    if parsed:
                        self._local.setdefault(parsed[0], []).append((entry, entry.name))
        return self._local

    def _url_files(self, name: NormalizedName) -> list[IndexFile]:
        if name not in self._pages:
            self._pages[name] = self._read_page(name)
        return self._pages[name]

    def _read_page(self, name: NormalizedName) -> list[IndexFile]:
        assert self.spec.url is not None
        page = urllib.parse.urljoin(self.spec.url, f"{name}/")
        try:
            folder = _file_url_path(page)
            if folder is not None:
                path = folder / "index.html"
                body = path.read_text(encoding="utf-8") if path.is_file() else ""
            else:
                # S310: the scheme was checked in spec.py (http, https or file only).
                request = urllib.request.Request(page, headers={"Accept": "text/html"})  # noqa: S310
                with no_proxy_opener().open(request, timeout=30) as resp:
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
            parsed = parse_filename(filename)
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
            parsed = parse_filename(filename)
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
            todo = sorted(set(names) - self._pages.keys())
            with ThreadPoolExecutor(8) as pool:
                self._pages.update(zip(todo, pool.map(self._read_page, todo), strict=True))
