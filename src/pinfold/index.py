"""Every access to an index: pip's view of it, its artifacts, their names and hashes, downloads.

The spec's index (find-links folders and/or a PEP 503 simple-index URL) reaches pip as
flags and as ``PIP_*`` variables (:func:`index_flags`, :func:`index_environ`: the pip and
uv backends, pip-compile and build-dependency discovery all use these two); an upstream
index for ``pinfold fetch`` and ``pinfold lock --upstream`` as :func:`upstream_flags` and
:func:`upstream_environ`. :class:`ArtifactIndex` lists what the index holds, reading
simple pages through :func:`index_opener` (the user's own index) or :func:`upstream_opener`
(``pinfold fetch``: proxies and certificates from the environment, as pip reads them), and
:func:`download` copies artifacts through either (counting bytes for a progress line;
:func:`remote_size` tells a file's size beforehand); artifact file names are read by
:func:`parse_filename` and files hashed by :func:`file_digest`, local artifacts through
:class:`DigestCache` (a digest is remembered by the file's identity between builds).
Pre-flight, which checks the locks against all this, is :mod:`pinfold.preflight`.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from .errors import PreflightError, Problem, SpecError
from .paths import display_path, file_url_path
from .pyccache import cache_root
from .runner import redact
from .spec import IndexSpec

if TYPE_CHECKING:
    import http.client
    import urllib.request

# urllib.request (with http.client, email and ssl), netrc and html.parser are imported where
# a URL is opened or a page read: a build from a wheelhouse folder never needs them, and
# they are a tenth of its start-up.

__all__ = [
    "ArtifactIndex",
    "DigestCache",
    "IndexFile",
    "download",
    "file_digest",
    "hash_algorithms",
    "index_environ",
    "index_flags",
    "index_opener",
    "no_proxy_opener",
    "parse_filename",
    "redact",
    "remote_size",
    "sha256_of",
    "strip_credentials",
    "upstream_environ",
    "upstream_flags",
    "upstream_opener",
]


def strip_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` part (what is written in files and pages)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def url_credentials(url: str) -> tuple[str, str] | None:
    """(user, password) for ``url``: from its ``user:password@``, else from the netrc file.

    pip and uv read ``$NETRC`` (else ``~/.netrc``) for a host the URL names no user for;
    pinfold's own page reads do the same, so that pre-flight sees what they will see.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None:
        return urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
    if not parts.hostname:
        return None
    import netrc

    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        found = netrc.netrc(path).authenticators(parts.hostname)
    except (OSError, netrc.NetrcParseError):
        return None
    return (found[0], found[2] or "") if found else None


def index_flags(index: IndexSpec) -> list[str]:
    """The spec's index as pip flags: nothing else is ever searched."""
    flags = [] if index.url else ["--no-index"]
    if index.url:
        flags += ["--index-url", index.url, "--timeout", f"{index.timeout:g}",
                  "--retries", str(index.retries)]
        if index.cert is not None:
            flags += ["--cert", str(index.cert)]
    for folder in index.find_links:
        flags += ["--find-links", str(folder)]
    return flags


def index_environ(index: IndexSpec) -> dict[str, str]:
    """The spec's index as ``PIP_*`` variables, for any pip a build starts on its own."""
    # pip splits PIP_FIND_LINKS on whitespace: file: URLs (a space is %20) keep each folder whole.
    env = {"PIP_FIND_LINKS": " ".join(f.as_uri() for f in index.find_links)}
    if index.url:
        env |= {"PIP_INDEX_URL": index.url, "PIP_TIMEOUT": f"{index.timeout:g}",
                "PIP_RETRIES": str(index.retries)}
        if index.cert is not None:
            env["PIP_CERT"] = str(index.cert)
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


def hash_algorithms(hashes: Iterable[str]) -> list[str]:
    """The algorithms of ``algo:hex`` hashes (as locks write them), sha256 first."""
    algos = {h.split(":", 1)[0] for h in hashes}
    return sorted(algos, key=lambda a: (a != "sha256", a))


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
    import urllib.request

    # The local index only: no proxy from the environment may sit in between.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _index_auth(netloc: str, credentials: tuple[str, str]) -> urllib.request.BaseHandler:
    """A handler that sends the index's credentials (basic auth) with every request to ``netloc``.

    Sent at once rather than after a 401, as pip does once it has them: a server that
    lists without a login but refuses downloads (pypiserver ``-a download``) works too.
    """
    import base64
    import urllib.request

    header = "Basic " + base64.b64encode("{}:{}".format(*credentials).encode()).decode("ascii")

    class IndexAuth(urllib.request.BaseHandler):
        def _add(self, request: urllib.request.Request) -> urllib.request.Request:
            if urllib.parse.urlsplit(request.full_url).netloc == netloc:
                request.add_unredirected_header("Authorization", header)
            return request

        http_request = _add
        https_request = _add

    return IndexAuth()


def index_opener(index: IndexSpec) -> urllib.request.OpenerDirector:
    """The opener for the spec's own index: no proxy, ``index.cert`` as the trust store
    (when given), and the URL's or the netrc file's credentials for its host."""
    import ssl
    import urllib.request

    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if index.cert is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=index.cert)))
    if index.url and (credentials := url_credentials(index.url)) is not None:
        handlers.append(_index_auth(urllib.parse.urlsplit(strip_credentials(index.url)).netloc, credentials))
    return urllib.request.build_opener(*handlers)


def upstream_opener(url: str | None = None) -> urllib.request.OpenerDirector:
    """A URL opener for an upstream index, reaching it the way pip would in pinfold's runner.

    The runner hands ``pinfold fetch``'s pip only certificate and proxy variables (never a
    pip config file); the same ones are honoured here: ``PIP_CERT`` (else
    ``REQUESTS_CA_BUNDLE``) replaces the default trust store, which otherwise is OpenSSL's
    (``SSL_CERT_FILE``/``SSL_CERT_DIR`` move it); ``PIP_CLIENT_CERT`` is a client
    certificate; ``http(s)_proxy`` and ``no_proxy`` choose the proxy. ``url``'s credentials
    (or the netrc file's, for its host) are sent to its host, as for the spec's own index.
    """
    import ssl
    import urllib.request

    env = os.environ
    cafile = env.get("PIP_CERT") or env.get("REQUESTS_CA_BUNDLE") or None
    context = ssl.create_default_context(cafile=cafile)
    if env.get("PIP_CLIENT_CERT"):
        context.load_cert_chain(env["PIP_CLIENT_CERT"])
    # ProxyHandler() reads http(s)_proxy, and no_proxy for each request, from os.environ.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler(),
                                                  urllib.request.HTTPSHandler(context=context)]
    if url and (credentials := url_credentials(url)) is not None:
        handlers.append(_index_auth(urllib.parse.urlsplit(strip_credentials(url)).netloc, credentials))
    return urllib.request.build_opener(*handlers)


def download(url: str, target: Path, *, timeout: float = 60,
             opener: urllib.request.OpenerDirector | None = None,
             on_bytes: Callable[[int], None] | None = None) -> int:
    """Copy the artifact at ``url`` into ``target`` (default: no proxy); OSError when that fails.

    Returns the bytes copied; ``on_bytes`` (when given) hears the count so far after each
    chunk, for a progress line.
    """
    done = 0
    with (opener or no_proxy_opener()).open(url, timeout=timeout) as resp, target.open("wb") as fh:
        # Chunks small enough for a live byte count, large enough to cost nothing.
        while chunk := resp.read(1 << 16):
            fh.write(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)
    return done


def remote_size(url: str, *, timeout: float = 60,
                opener: urllib.request.OpenerDirector | None = None) -> int | None:
    """The size in bytes of the file at ``url`` (a HEAD request's Content-Length), or None.

    For a progress line only: any failure, or an answer without a length, is None.
    """
    import http.client
    import urllib.request

    request = urllib.request.Request(url, method="HEAD")  # noqa: S310 (the index's own URLs)
    try:
        with (opener or no_proxy_opener()).open(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
    except (OSError, ValueError, http.client.HTTPException):  # a garbled answer too: see above
        return None
    try:
        return int(length) if length is not None and int(length) >= 0 else None
    except ValueError:
        return None


def _reason(exc: BaseException, index: IndexSpec) -> str:
    """Why a request failed, in words, with the bounds that were applied."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        reason = f"no answer within {index.timeout:g} s"
    return redact(f"{reason} (after {index.retries + 1} tries)")


def _hash_url(opener: urllib.request.OpenerDirector, url: str, algos: list[str], *,
              timeout: float = 60) -> dict[str, str]:
    """The digests (algo -> hex) of the bytes at ``url``, streamed: nothing is kept."""
    hashers = {a: hashlib.new(a) for a in algos}
    with opener.open(url, timeout=timeout) as resp:
        while chunk := resp.read(1 << 20):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _plain_filename(filename: str) -> bool:
    """Whether a (percent-decoded) link target is a file name and nothing else."""
    return bool(filename) and filename not in (".", "..") and not any(c in filename for c in "/\\\0")


class DigestCache:
    """Digests of local files, kept between builds, keyed by the file's identity.

    The key is (device, inode, size, mtime_ns, ctime_ns) and the algorithm: a file
    rewritten, replaced or touched has another identity, even with its old size and an
    mtime set back by ``os.utime`` (that sets the ctime, which nothing can set back). A
    file changed in the last :data:`RACY_SECONDS` is hashed but not remembered: within the
    file system clock's granularity a change need not show in its times (git's "racy"
    files). Each entry is one small file, written to a temporary name and renamed, so
    concurrent builds never read a half-written one; an unreadable or odd entry is a miss.
    The installers check the hashes again when they install.
    """

    #: A file whose mtime or ctime is this recent is not remembered.
    RACY_SECONDS = 2.0

    def __init__(self, folder: Path | None) -> None:
        #: Where entries live (None: remember nothing).
        self.folder = folder

    @staticmethod
    def _identity(st: os.stat_result) -> str:
        return f"{st.st_dev}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}"

    def digest(self, path: Path, algo: str) -> str:
        """The hex ``algo`` digest of ``path``'s bytes, from the cache when its identity is known."""
        if self.folder is None:
            return file_digest(path, algo)
        before = os.stat(path)
        entry = self.folder / f"{self._identity(before)}-{algo}"
        try:
            known = entry.read_text(encoding="ascii").strip()
            if known and all(c in "0123456789abcdef" for c in known):
                return known
        except (OSError, UnicodeDecodeError):
            pass
        hexdigest = file_digest(path, algo)
        try:
            after = os.stat(path)
            racy = time.time() - max(after.st_mtime, after.st_ctime) < self.RACY_SECONDS
            if not racy and self._identity(after) == self._identity(before):
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
                tmp.write_text(hexdigest, encoding="ascii")
                os.replace(tmp, entry)
        except OSError:
            pass  # a cache that cannot be written only means hashing again next time
        return hexdigest


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
    #: ``<algo>:<hex>`` the index page announces in the URL fragment (any algorithm), or None.
    announced: str | None = None

    @property
    def is_sdist(self) -> bool:
        """True for an sdist (no wheel tags)."""
        return self.tags is None

    def local_path(self) -> Path | None:
        """Where the artifact is on this machine (a find-links file or a ``file:`` URL), or None."""
        if "://" not in self.location:
            return Path(self.location)
        return file_url_path(self.location)


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


class ArtifactIndex:
    """The artifacts of the spec's index (find-links folders and/or a simple-index URL), by project.

    ``opener`` reads the URL index (default: :func:`index_opener` of ``spec``, for the user's
    own index; ``pinfold fetch`` passes :func:`upstream_opener`).
    """

    def __init__(self, spec: IndexSpec, *, opener: urllib.request.OpenerDirector | None = None,
                 digest_cache: DigestCache | None = None) -> None:
        self.spec = spec
        self._opener = opener
        #: ``index.url`` without credentials (the opener sends them): every URL read, kept
        #: and shown is built from this one.
        self.url = strip_credentials(spec.url) if spec.url else None
        #: Digests of local files between builds (default: ``<cache_root>/digests``).
        self.digest_cache = digest_cache or DigestCache(cache_root() / "digests")
        self._local: dict[NormalizedName, list[tuple[Path, str]]] | None = None
        self._digests: dict[tuple[str, str], str] = {}
        self._pages: dict[NormalizedName, list[IndexFile]] = {}
        #: Links of a page that were ignored: their file name is not a plain name.
        self._rejected: dict[NormalizedName, list[str]] = {}

    @property
    def opener(self) -> urllib.request.OpenerDirector:
        """The opener for the URL index: made when a URL is first read (never, for folders).

        A certificate file that cannot be loaded is bad input (:class:`SpecError`, ``index.cert``).
        """
        if self._opener is None:
            try:
                self._opener = index_opener(self.spec)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                cert = display_path(self.spec.cert) if self.spec.cert else "the default trust store"
                why = getattr(exc, "strerror", None) or str(exc)
                raise SpecError("env.yaml's index.cert cannot be loaded; nothing was built",
                                [Problem("index.cert", f"{cert}: {why}")],
                                tip="point index.cert at a PEM file of the index's CA") from None
        return self._opener

    def describe(self) -> str:
        """The index as the user named it, for messages."""
        places = [display_path(p) + "/" for p in self.spec.find_links]
        if self.spec.url:
            places.append(redact(self.spec.url))
        return " or ".join(places)

    def open(self, url: str, *, accept: str | None = None) -> http.client.HTTPResponse:
        """Open ``url`` of the index, trying again ``index.retries`` times on a connection
        error, a timeout or a 5xx answer (with a short pause), each try bounded by
        ``index.timeout``; the last error is raised (HTTPError, URLError or OSError).
        """
        import urllib.request

        opener = self.opener  # once, before the tries: a bad index.cert is not a network error
        headers = {"Accept": accept} if accept else {}
        for attempt in range(self.spec.retries + 1):
            request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked in spec)
            try:
                response: http.client.HTTPResponse = opener.open(request, timeout=self.spec.timeout)
                return response
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == self.spec.retries:
                    raise
                exc.close()
            except (OSError, ValueError):
                if attempt == self.spec.retries:
                    raise
            time.sleep(min(0.25 * 2 ** attempt, 2.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def check_url(self) -> None:
        """The URL index (if any) must answer its root with an HTML page; else PreflightError.

        A wrong ``index.url`` next to good ``find_links`` would otherwise go unnoticed: every
        project page would be missing and find-links would serve everything. Only the
        status and content type are read, not the (possibly huge) page.
        """
        url = self.url
        if not url:
            return
        shown = redact(self.spec.url or url)
        folder = file_url_path(url)
        why = None
        if folder is not None:
            if not folder.is_dir():
                why = f"{shown}: the folder {folder} does not exist"
        else:
            try:
                with self.open(url, accept="text/html") as resp:
                    kind = resp.headers.get_content_type()
                if "html" not in kind:
                    why = f"{shown} answered {kind}, not the HTML page of a simple index"
            except urllib.error.HTTPError as exc:
                why = (f"{shown} answered {exc.code} {exc.reason} for the index's root page: "
                       "not a simple index")
            except (OSError, urllib.error.URLError, ValueError) as exc:
                why = f"cannot reach {shown} for the index's root page: {_reason(exc, self.spec)}"
        if why:
            raise PreflightError(f"pre-flight: the index URL does not answer ({shown}); nothing was built",
                                 [Problem("index.url", why)],
                                 tip="start the local index, or fix index.url in env.yaml")

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
        assert self.url is not None
        page = urllib.parse.urljoin(self.url, f"{name}/")
        shown = redact(self.spec.url or self.url)
        what = f"the project page of {name}"
        try:
            folder = file_url_path(page)
            if folder is not None:
                path = folder / "index.html"
                body = path.read_text(encoding="utf-8") if path.is_file() else ""
            else:
                with self.open(page, accept="text/html") as resp:
                    body = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise PreflightError(f"the index {shown} answered {exc.code} for {what} ({page})",
                                 [Problem("index.url", f"{page}: {exc.code} {exc.reason} "
                                                       f"(after {self.spec.retries + 1} tries)")],
                                 tip="check the index server's log, or fix index.url in env.yaml") from None
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise PreflightError(f"cannot reach the index {shown} for {what} ({page})",
                                 [Problem("index.url", f"{page}: {_reason(exc, self.spec)}")],
                                 tip="start the local index, or fix index.url in env.yaml") from None
        out = []
        for href in _hrefs(body):
            url = urllib.parse.urljoin(page, href)
            base, _, fragment = url.partition("#")
            filename = urllib.parse.unquote(base.rsplit("/", 1)[-1])
            if not _plain_filename(filename):
                # A decoded "/" or ".." would name a file outside any folder it is saved in.
                self._rejected.setdefault(name, []).append(filename)
                continue
            parsed = parse_filename(filename)
            if not parsed or parsed[0] != name:
                continue
            algo, _, hexdigest = fragment.partition("=")
            algo = algo.lower()
            announced = (f"{algo}:{hexdigest.lower()}"
                         if hexdigest and algo in hashlib.algorithms_guaranteed else None)
            digest = announced if algo == "sha256" else None
            out.append(IndexFile(filename=filename, location=base, name=parsed[0], version=parsed[1],
                                 tags=parsed[2], digest=digest, announced=announced))
        return out

    def rejected(self, name: NormalizedName) -> list[str]:
        """Link targets of ``name``'s page that were ignored (not plain file names)."""
        return list(self._rejected.get(name, []))

    def files(self, name: NormalizedName, version: Version | None = None) -> list[IndexFile]:
        """Every artifact of ``name`` (of ``version``, if given), local ones hashed."""
        out = []
        for path, filename in self._scan_local().get(name, []):
            parsed = parse_filename(filename)
            assert parsed is not None
            if version is not None and parsed[1] != version:
                continue
            digest = f"sha256:{self._file_hash(path, 'sha256')}"
            out.append(IndexFile(filename=filename, location=str(path), name=name,
                                 version=parsed[1], tags=parsed[2], digest=digest))
        if self.spec.url:
            out += [f for f in self._url_files(name) if version is None or f.version == version]
        return out

    def _file_hash(self, path: Path, algo: str) -> str:
        key = (str(path), algo)
        if key not in self._digests:
            self._digests[key] = self.digest_cache.digest(path, algo)
        return self._digests[key]

    def can_verify_cheaply(self, f: IndexFile, hashes: Iterable[str]) -> bool:
        """Whether :meth:`digests` can answer for ``f`` without downloading it."""
        hashes = set(hashes)
        algos = hash_algorithms(hashes)
        return f.local_path() is not None or (
            f.announced is not None and (f.announced in hashes or algos == [f.announced.split(":")[0]]))

    def digests(self, f: IndexFile, hashes: Iterable[str]) -> set[str]:
        """``f``'s digests (``algo:hex``) in the algorithms ``hashes`` use.

        Local files are hashed; a URL file is trusted to have the digest its page announces
        when that is in one of those algorithms (pip trusts it too, and checks the download),
        and is downloaded and hashed otherwise (streamed, nothing kept). OSError when the
        download fails.
        """
        hashes = set(hashes)
        algos = hash_algorithms(hashes)
        path = f.local_path()
        if path is not None:
            return {f"{a}:{self._file_hash(path, a)}" for a in algos}
        if f.announced is not None:
            algo = f.announced.split(":", 1)[0]
            # Trusted when it settles the question: a match, or the lock's only algorithm.
            if f.announced in hashes or algos == [algo]:
                return {f.announced}
        key = (f.location, ",".join(algos))
        if key not in self._digests:
            got = _hash_url(self.opener, f.location, algos, timeout=self.spec.timeout)
            self._digests[key] = " ".join(f"{a}:{h}" for a, h in got.items())
        return set(self._digests[key].split())

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        """Warm the URL index pages in parallel (one request per project)."""
        if self.spec.url:
            from concurrent.futures import ThreadPoolExecutor

            todo = sorted(set(names) - self._pages.keys())
            with ThreadPoolExecutor(8) as pool:
                self._pages.update(zip(todo, pool.map(self._read_page, todo), strict=True))
