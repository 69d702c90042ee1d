"""uv as the installer (env.yaml ``installer: uv``), with the pip backend's guarantees.

uv is pinned in pinfold's tool environment (requirements/tool.txt) and runs with
``--python <env python>``, ``UV_NO_CONFIG=1`` and no inherited ``UV_*`` variable (the
runner starts from an empty environment), never downloading a Python.

What uv 0.13.9 does on its own, measured here (see README "How a build stays hermetic"):
a hashed ``--build-constraints`` file is verified when a build dependency is listed in
it, but a build dependency that is *not* listed is installed unpinned and unhashed
from whatever the index offers: uv fails open where pip >= 26.2 fails closed. Its
``--require-build-hashes`` (experimental) closes that gap but, like a wrong hash on a
build dependency, makes uv hang instead of fail in most runs (14 of 18 measured, killed
after 40 s; one ran 10 minutes). So pinfold closes it itself, with two files it writes
for every uv call, and pre-flight has hashed every artifact before uv starts:

- the **locked index**: a flat links page listing exactly the artifacts pre-flight
  chose for both locks (each with its ``#sha256=``), passed as uv's only index
  (``--no-index --find-links <page>``). uv can see nothing that pre-flight did not hash.
- the **build constraints**: the build lock, plus ``<name><0`` for every runtime pin
  that is not in the build lock. A build that asks for a dependency the build lock
  does not list then has no candidate at all, so uv fails at once, at resolution time
  (no hang), and pinfold names the dependency and the sdist that wanted it.

uv's cache (a warm cache is the point of this backend) lives in a pinfold-owned folder,
one per build lock: nothing says uv keys the wheels it built from sdists by the build
dependencies used, so a changed build lock starts from an empty cache. Installs hard-link out of
the cache (uv's default; ``--link-mode copy`` costs 5 s more for the 300 MB benchmark
environment on 2 cores). uv does not re-hash cached files, and a file of any environment
edited in place (an editor keeping hard links) would change the cached file behind every
later build; so after every install pinfold checks each installed file in site-packages
against the RECORD hash of its wheel (:func:`pinfold.manifest.record_differences`, in pinfold's
own process: what it reads the build's final scan does not read again, and an update reads
only the files it did not carry over unchanged) and fails naming the files that differ.
After a full install without develop trees, the check of everything but ``__pycache__``
files is handed back to the build (:data:`~pinfold.installers.base.PendingCheck`), which
runs it while the compile stage byte-compiles (with ``-S``: no code of the environment
runs), or in place with ``compile: false``, and waits for it before any later stage starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html
import os
import re
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..envlayout import site_packages
from ..errors import BuildError, CommandError, Problem
from ..index import file_digest, index_environ, strip_credentials, url_credentials
from ..locks import Pin
from ..manifest import HashMemo, record_differences
from ..paths import display_path, write_atomic
from ..runner import Runner
from ..spec import Spec
from ..tools import tool_problem
from .base import OnStep, PendingCheck, pins_file, requirements_file

if TYPE_CHECKING:
    from ..preflight import PreflightReport

__all__ = ["MIN_UV", "Uv", "uv_cache_root", "uv_steps"]

#: The oldest uv these guarantees were verified with (0.13.9 is pinned).
MIN_UV = "0.13"

#: Fixed for every uv call: never fetch a Python, no progress bars in captured output.
_UV_ENV = {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1", "UV_NO_CONFIG": "1"}

_NEEDS_UNLISTED = re.compile(r"you require ([A-Za-z0-9][A-Za-z0-9._-]*)<0\b")
_NOT_FOUND = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the provided package locations")
_FAILED_BUILD = re.compile(r"Failed to (?:download and )?build `([^`]+)`")


#: uv's lines (UV_NO_PROGRESS) that tell how far an install is: ``Resolved N packages``,
#: ``Building X`` and ``Built X`` per sdist, ``Prepared N packages``, then one `` + X`` per
#: distribution installed.
_RESOLVED = re.compile(r"^Resolved (\d+) packages?")
_BUILDING = re.compile(r"^\s+Building (\S+)")
_PREPARED = re.compile(r"^Prepared (\d+) packages?")
_INSTALLED = re.compile(r"^ [+] (\S+)")


def uv_steps(on_step: OnStep) -> Callable[[str], None]:
    """A line callback for a uv install that reports its steps to ``on_step``."""
    done = 0

    def line(text: str) -> None:
        nonlocal done
        if match := _RESOLVED.match(text):
            on_step(done, f"resolved {match[1]} distributions")
        elif match := _BUILDING.match(text):
            on_step(done, f"building {match[1]} (sdist)")
        elif match := _PREPARED.match(text):
            on_step(done, f"prepared {match[1]} distributions, installing")
        elif match := _INSTALLED.match(text):
            done += 1
            on_step(done, f"installed {match[1]}")

    return line


def uv_cache_root() -> Path:
    """Where pinfold keeps uv's caches: ``$PINFOLD_UV_CACHE``, else ``~/.cache/pinfold/uv``."""
    explicit = os.environ.get("PINFOLD_UV_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pinfold" / "uv"


def _uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return str(Path(sys.executable).with_name("uv"))


def _in_pycache(rel: str) -> bool:
    """Whether an installed file (its path in site-packages) is one the compile stage may
    replace: a file in a ``__pycache__`` folder."""
    return rel.startswith("__pycache__/") or "/__pycache__/" in rel


def _not_in_pycache(rel: str) -> bool:
    return not _in_pycache(rel)


class Uv:
    """Installs locks and editable trees with uv, hermetically."""

    name: ClassVar[str] = "uv"

    def __init__(self, spec: Spec, runner: Runner, *, preflight: PreflightReport | None = None,
                 on_step: OnStep | None = None, hashes: HashMemo | None = None) -> None:
        self.spec = spec
        self.runner = runner
        self.preflight = preflight
        self.on_step = on_step
        #: The build's hashes of its files, shared with the RECORD check (see _verify).
        self.hashes = hashes

    def problems(self) -> list[str]:
        """Why pinfold's uv cannot be used (missing or too old), or nothing."""
        reason = tool_problem("uv", MIN_UV, why="env.yaml asks for `installer: uv`, but ")
        return [reason] if reason else []

    def cache_dir(self) -> Path:
        """uv's cache for this spec's build lock (wheels built from sdists depend on it)."""
        build = self.spec.build_requirements
        key = file_digest(build.path)[:16] if build else "no-build-lock"
        return uv_cache_root() / key

    @contextlib.contextmanager
    def _index_page(self) -> Iterator[Path]:
        """The locked index, a links page of exactly the artifacts pre-flight chose, for one uv run.

        uv keys what it caches (wheels, and wheels it built from sdists) by the location of
        the index page, so the page has one place per index and build lock, shared by every
        env.yaml that uses them: a project in a new folder (a fresh checkout, a deploy's
        release folder) starts with a warm cache. Each run writes its own artifacts into it
        under an exclusive lock held until uv is done: concurrent builds sharing a
        wheelhouse take turns for their uv step instead of reading each other's page.
        """
        if self.preflight is None:
            raise BuildError("the uv backend needs pre-flight's chosen artifacts (internal error)")
        lines = []
        for key in sorted(self.preflight.chosen):
            f = self.preflight.chosen[key]
            url = f.location if "://" in f.location else Path(f.location).as_uri()
            fragment = f"#sha256={f.digest.split(':', 1)[1]}" if f.digest else ""
            lines.append(f'<a href="{html.escape(url + fragment)}">{html.escape(f.filename)}</a><br/>')
        text = "<!DOCTYPE html>\n<html><body>\n" + "\n".join(lines) + "\n</body></html>\n"
        where = uv_cache_root() / "pages"  # beside, not inside, uv's own caches
        where.mkdir(parents=True, exist_ok=True)
        index_url = self.spec.index.url
        bare = index_url and strip_credentials(index_url)
        places = (sorted(str(f) for f in self.spec.index.find_links), bare)
        index = repr(places)
        page = where / f"{self.cache_dir().name}-{hashlib.sha256(index.encode()).hexdigest()[:16]}.html"
        with page.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            if not page.is_file() or page.read_text(encoding="utf-8") != text:
                write_atomic(page, text.encode("utf-8"))
            yield page

    def _index_environ(self) -> dict[str, str]:
        """The URL index's bounds and trust store as uv reads them (uv ignores ``PIP_*``)."""
        index = self.spec.index
        if not index.url:
            return {}
        env = {"UV_HTTP_TIMEOUT": f"{max(1, round(index.timeout))}", "UV_HTTP_RETRIES": str(index.retries)}
        if index.cert is not None:
            env["SSL_CERT_FILE"] = str(index.cert)
        return env

    def _netrc(self, folder: Path) -> Path | None:
        """A netrc file for this uv run when ``index.url`` carries ``user:password@``, or None.

        The locked index page links artifacts by URLs without credentials (the page is a
        file in uv's cache: it must not hold a password), so uv gets them as pip gets its
        own netrc entries: from ``$NETRC``, here a private temporary file, followed by the
        user's own netrc file so that its other entries still apply.
        """
        url = self.spec.index.url
        if not url or strip_credentials(url) == url:
            return None
        credentials = url_credentials(url)
        host = urllib.parse.urlsplit(url).hostname
        if credentials is None or not host:
            return None
        user, password = credentials
        text = f"machine {host}\nlogin {user}\npassword {password}\n"
        own = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
        with contextlib.suppress(OSError):
            text += "\n" + own.read_text(encoding="utf-8")
        path = folder / "netrc"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def _build_constraints(self, folder: Path) -> Path:
        """The build lock, plus an impossible constraint for every runtime-only name."""
        build = self.spec.build_requirements
        build_pins = build.pins if build else ()
        listed = {p.name for p in build_pins}
        lines = [p.requirement_line() for p in build_pins]
        # Runtime pins are in the locked index too; `<0` keeps them out of build
        # environments unless the build lock lists them (as pip 26.3 refuses them).
        lines += [f"{n}<0" for n in sorted({p.name for p in self.spec.requirements.pins} - listed)]
        path = folder / "build-constraints.txt"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    def _uv(self, python: Path, *args: str, what: str, index: bool = True, verify: bool = True) -> None:
        argv = [_uv_binary(), "pip", *args, "--python", str(python), "--no-config",
                "--no-python-downloads", "--cache-dir", str(self.cache_dir())]
        env = {**_UV_ENV, **index_environ(self.spec.index), **self._index_environ()}
        if not index:
            self.runner.run(argv, what=what, env=env)
            return
        with tempfile.TemporaryDirectory(prefix="pinfold-uv-") as tmp, self._index_page() as page:
            if (netrc := self._netrc(Path(tmp))) is not None:
                env["NETRC"] = str(netrc)
            # --no-sources: a develop tree's [tool.uv.sources] must not add places either.
            argv += ["--no-index", "--no-sources", "--find-links", str(page),
                     "--build-constraints", str(self._build_constraints(Path(tmp))),
                     "--link-mode", "hardlink"]
            if not self.spec.index.url:
                argv.append("--offline")  # every artifact is a local file: never touch a network
            try:
                self.runner.run(argv, what=what, env=env,
                                on_line=uv_steps(self.on_step) if self.on_step else None)
            except CommandError as exc:
                raise self._explain(exc) from None
        if verify:
            self._verify(python)

    def _verify(self, python: Path, only: Callable[[str], bool] | None = None) -> int:
        """Every installed file (whose path in site-packages ``only`` accepts) is still what
        its hashed wheel held (see the module doc); returns how many were checked.

        In pinfold's own process, with the build's hashes (:class:`HashMemo`): a file an
        update carried over unchanged is not read again, and the final scan takes what is
        read here instead of reading it once more.
        """
        env_dir = python.parent.parent
        checked = 0
        for site in site_packages(env_dir):
            try:
                count, bad = record_differences(site, env_dir, self.hashes, only=only)
            except OSError as exc:
                raise BuildError(f"cannot check the installed files of {site}: "
                                 f"{exc.strerror or exc}") from None
            checked += count
            if bad:
                raise BuildError(
                    "installed files differ from the wheels they came from (uv's cache was changed: "
                    "a file of an environment edited in place?)",
                    [Problem(path, why) for path, why in bad[:20]],
                    tip=f"remove {self.cache_dir()} (pinfold's uv cache) and build again")
        return checked

    def _explain(self, exc: CommandError) -> BuildError:
        """Turn uv's resolver text for an unlocked build dependency into one line per gap."""
        for_build = "build-system.requires" in exc.output or "build backend" in exc.output
        missing = _NEEDS_UNLISTED.findall(exc.output) or (_NOT_FOUND.findall(exc.output) if for_build else [])
        if not missing:
            return exc
        needers = _FAILED_BUILD.findall(exc.output)
        of = f" (build dependency of {', '.join(dict.fromkeys(needers))})" if needers else ""
        build = self.spec.build_requirements
        lock = display_path(build.path) if build else "build_requirements (not set in env.yaml)"
        role = of or " (build dependency)"
        problems = [Problem(f"{name}{role}", f"not in the build lock {lock}: uv was not allowed to "
                                             "install it unpinned") for name in dict.fromkeys(missing)]
        return BuildError(f"{exc.summary}: a build dependency is not locked", problems,
                          tip="add it to the build lock (pinned, hashed; `pinfold lock` does) "
                              "and run again")

    def install_lock(self, python: Path) -> PendingCheck | None:
        """Install the runtime lock, hashes required; the RECORD check of the files outside
        ``__pycache__`` folders is left to the caller (the build runs it while the compile
        stage works). With develop trees, nothing: the develop stage's check covers all.

        The bytecode a wheel ships (``__pycache__`` files its RECORD lists) is checked here,
        before returning: the compile stage replaces a ``.pyc`` that is not valid for its
        source, and a check reading it after that would find the new file, not uv's.
        """
        with requirements_file(self.spec.requirements) as reqs:
            self._uv(python, "install", "--require-hashes", "-r", str(reqs),
                     what="installing the runtime lock", verify=False)
        # With develop trees, the develop stage comes next in the same build and its RECORD
        # check covers every file: checking here too would hash them all twice.
        if self.spec.develop:
            return None
        shipped = self._verify(python, only=_in_pycache)

        def the_rest() -> str:
            checked = shipped + self._verify(python, only=_not_in_pycache)
            return f"{checked} installed files match their wheels' RECORD"

        return the_rest

    def install_pins(self, python: Path, pins: list[Pin]) -> None:
        """Install just these pins (an update): no resolving, hashes required."""
        if not pins:
            return
        with pins_file(pins) as reqs:
            self._uv(python, "install", "--no-deps", "--require-hashes", "-r", str(reqs),
                     what="installing the changed pins")

    def uninstall(self, python: Path, names: list[str]) -> None:
        """Remove distributions (pins dropped from the lock)."""
        if names:
            self._uv(python, "uninstall", *names, what="removing distributions", index=False)

    def install_editable(self, python: Path, trees: list[Path]) -> None:
        """Install local trees editable; their dependencies must already be in the lock."""
        args = ["install", "--no-deps"]
        for tree in trees:
            args += ["-e", str(tree)]
        self._uv(python, *args, what="installing the develop trees")
