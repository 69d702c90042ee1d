"""What each sdist (and develop tree) needs to build: asked of its own build backend.

``pip download`` and pip-compile cannot tell (they prepare an sdist's metadata in a
throwaway build environment and report only its runtime requirements): the build
dependencies of a third-party sdist are ``build-system.requires`` plus whatever the
backend's ``get_requires_for_build_wheel`` hook returns, and that hook is where
``setup_requires`` (e.g. ``pbr``) shows up. So pinfold does what pip does at build time:
an isolated environment (``virtualenv --no-seed``) for the target interpreter, filled
with ``build-system.requires`` by pinfold's pip from the source only, then pypa/build's
``ProjectBuilder`` calls the hook in it. Every process goes through the Runner.
"""

from __future__ import annotations

import contextlib
import email.parser
import json
import sys
import tarfile
import threading
import tomllib
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from build import BuildBackendException, BuildException, ProjectBuilder
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import CommandError
from ..interpreter import Interpreter
from ..runner import Runner, redact
from ..tools import pip_in
from .errors import BuildDepsUnavailable, LockError
from .resolve import Source, explain_pip_failure

__all__ = ["BuildNeeds", "Discovery", "Needer"]

#: pip's (and pypa/build's) build system for a project without pyproject.toml.
_LEGACY_BACKEND = "setuptools.build_meta:__legacy__"


@dataclass(frozen=True, kw_only=True, slots=True)
class Needer:
    """Something that is built from source: an sdist a lock selects, or a develop tree."""

    #: How locks and messages name it: ``stevedore==3.5.2`` or ``src/myapp (develop)``.
    label: str
    #: The sdist file, or the tree's folder.
    path: Path
    #: Develop trees are built editable (``get_requires_for_build_editable``).
    editable: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildNeeds:
    """What one needer needs to build, as its backend reported it."""

    needer: Needer
    #: The build backend, e.g. ``setuptools.build_meta:__legacy__`` or ``pbr.build``.
    backend: str
    #: ``build-system.requires`` plus the hook's answer, normalized, markers evaluated.
    requires: tuple[str, ...]
    #: What the isolated environment held when the backend answered: name -> version.
    environment: Mapping[str, str] = field(default_factory=dict)
    #: Develop trees only: their project name and own runtime requirements (``Requires-Dist``).
    name: str = ""
    runtime: tuple[str, ...] = ()


def _normalize(text: str, markers: Mapping[str, str], label: str) -> str | None:
    """``text`` as one spelling, or None when its marker excludes the target interpreter."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise LockError(f"{label}: its build backend reported an invalid requirement "
                        f"{text!r}: {exc}") from None
    if req.marker is not None and not req.marker.evaluate({**markers, "extra": ""}):
        return None
    req.marker = None  # evaluated for the target already: the build lock holds what applies
    req.name = canonicalize_name(req.name)
    return str(req)


def _backend_name(tree: Path) -> str:
    try:
        data = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return _LEGACY_BACKEND
    build_system = data.get("build-system", {})
    backend = build_system.get("build-backend") if isinstance(build_system, dict) else None
    return backend if isinstance(backend, str) else _LEGACY_BACKEND


def _last_words(output: str) -> str:
    """The last meaningful line a backend printed (an exception's message, usually)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and not ln.startswith("    ")]
    return lines[-1] if lines else "(no output)"


class _Env:
    """An isolated environment that holds one set of build requirements."""

    def __init__(self, python: Path, installed: dict[str, str]) -> None:
        self.python = python
        self.installed = installed


class Discovery:
    """Asks build backends for their requirements, in isolated environments fed from ``source``.

    Environments are shared between needers with the same build requirements (most
    legacy sdists need just ``setuptools>=40.8.0``): the hooks only read. ``run`` may be
    called from several threads at once.
    """

    def __init__(self, runner: Runner, source: Source, interp: Interpreter, workdir: Path, *,
                 tool_python: str = sys.executable) -> None:
        self.runner = runner
        self.source = source
        self.interp = interp
        self.workdir = workdir
        self.tool_python = tool_python
        self._envs: dict[tuple[tuple[str, ...], tuple[str, ...]], _Env] = {}
        self._trees: dict[Path, Path] = {}
        self._metadata_dirs = 0
        self._env_dirs = 0
        self._lock = threading.Lock()
        self._creating: dict[tuple[tuple[str, ...], tuple[str, ...]], threading.Lock] = {}
        # catch_warnings changes process-wide state: one hook call at a time (they are short).
        self._hooks = threading.Lock()

    # -- one needer ---------------------------------------------------------------------

    def run(self, needer: Needer, constraints: Sequence[str] = ()) -> BuildNeeds:
        """Discover what ``needer`` needs to build; raise :class:`LockError` naming it on failure.

        ``constraints`` hold the build requirements at the versions the build lock will
        pin, so the backend answers as it will at build time.
        """
        tree = needer.path if needer.editable else self._unpack(needer)
        backend = _backend_name(tree)
        try:
            declared = ProjectBuilder(tree, runner=self._hook_runner(needer)).build_system_requires
        except BuildException as exc:
            raise LockError(f"{needer.label}: its pyproject.toml is invalid: {exc}") from None
        markers = self.interp.markers
        requires = sorted({r for t in declared if (r := _normalize(t, markers, needer.label))})
        env = self._env(requires, constraints, needer)
        builder = ProjectBuilder(tree, python_executable=str(env.python), runner=self._hook_runner(needer))
        kind: Literal["editable", "wheel"] = "editable" if needer.editable else "wheel"
        try:
            with self._hooks, self._backend_warnings():
                reported = builder.get_requires_for_build(kind)
        except BuildBackendException as exc:
            raise self._backend_failed(needer, backend, exc, "its build requirements",
                                       f"get_requires_for_build_{kind}") from None
        extra = sorted({r for t in reported if (r := _normalize(t, markers, needer.label))} - set(requires))
        name = ""
        runtime: tuple[str, ...] = ()
        if needer.editable:
            # The tree's own dependencies go into the runtime lock; reading them needs the
            # backend's full requirements installed, as pip would have them.
            full = self._env(sorted({*requires, *extra}), constraints, needer) if extra else env
            name, runtime = self._metadata(needer, tree, full, backend)
        return BuildNeeds(needer=needer, backend=backend, requires=tuple(sorted({*requires, *extra})),
                          environment=dict(env.installed), name=name, runtime=runtime)

    def _backend_failed(self, needer: Needer, backend: str, exc: BuildBackendException, what: str,
                        hook: str) -> LockError:
        """The error for a backend that failed: the needer, the backend and its own last words."""
        inner = exc.exception
        if isinstance(inner, CommandError):
            said = _last_words(inner.output)
        else:
            said = str(exc) if str(exc) else repr(inner)
            traceback = getattr(inner, "traceback", "")
            if isinstance(traceback, str) and traceback.strip():
                said = f"{said} {_last_words(traceback)}"
        return LockError(f"{needer.label}: its build backend ({backend}) cannot report {what} "
                         f"({hook}): {said}",
                         tip="fix or replace the sdist; run with -v to see the backend's whole output")

    # -- environments and trees ---------------------------------------------------------

    def _unpack(self, needer: Needer) -> Path:
        with self._lock:
            if needer.path in self._trees:
                return self._trees[needer.path]
            self._metadata_dirs += 1
            dest = self.workdir / "src" / str(self._metadata_dirs) / needer.path.name
        dest.mkdir(parents=True)
        try:
            if needer.path.name.endswith(".zip"):
                with zipfile.ZipFile(needer.path) as archive:
                    names = archive.namelist()
                    if any(n.startswith("/") or ".." in Path(n).parts for n in names):
                        raise LockError(f"{needer.label}: {needer.path.name} has unsafe member names")
                    archive.extractall(dest)  # noqa: S202 (member names checked just above)
            else:
                with tarfile.open(needer.path) as archive:
                    # "data": no absolute paths, links out of the tree, devices or setuid bits.
                    archive.extractall(dest, filter="data")
        except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
            raise LockError(f"{needer.label}: cannot unpack {needer.path.name}: {exc}") from None
        entries = list(dest.iterdir())
        tree = entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
        with self._lock:
            self._trees[needer.path] = tree
        return tree

    def _reusable(self, requires: tuple[str, ...], constraints: Sequence[str]) -> _Env | None:
        """An environment with these requirements that already holds exactly what the
        constraints pin (later rounds pin every build dependency): pip would change nothing."""
        pinned = set(constraints)
        for (reqs, _), env in self._envs.items():
            if reqs == requires and all(f"{n}=={v}" in pinned for n, v in env.installed.items()):
                return env
        return None

    def _env(self, requires: Sequence[str], constraints: Sequence[str], needer: Needer) -> _Env:
        key = (tuple(requires), tuple(constraints))
        with self._lock:
            creating = self._creating.setdefault(key, threading.Lock())
        with creating:  # two needers with the same requirements wait for one environment
            with self._lock:
                found = self._envs.get(key) or self._reusable(key[0], constraints)
                # A counter, not len(self._envs): a failed attempt leaves its folder behind.
                self._env_dirs += 1
                where = self.workdir / "envs" / str(self._env_dirs)
            if found is not None:
                return found
            env = self._create(where, requires, constraints, needer)
            with self._lock:
                self._envs[key] = env
            return env

    def _create(self, where: Path, requires: Sequence[str], constraints: Sequence[str],
                needer: Needer) -> _Env:
        self.runner.run([self.tool_python, "-m", "virtualenv", "--quiet", "--no-seed",
                         "--no-periodic-update", "--python", self.interp.executable, str(where)],
                        what="creating an isolated environment for build dependencies")
        python = where / "bin" / "python"
        installed: dict[str, str] = {}
        if requires:
            report = where / "pinfold-report.json"
            # --no-compile: the hook runs once, byte-compiling setuptools would cost a second.
            argv = [*pip_in(python), "install", "--no-compile",
                    "--no-cache-dir", "--report", str(report), *self.source.flags]
            if constraints:
                cfile = where / "constraints.txt"
                cfile.write_text("".join(f"{c}\n" for c in constraints), encoding="utf-8")
                argv += ["-c", str(cfile)]
            try:
                self.runner.run([*argv, *requires], what=f"installing the build dependencies of "
                                                         f"{needer.label}",
                                env=self.source.environ, online=self.source.online)
            except CommandError as exc:
                origins = {r: [needer.label] for r in requires}
                problems = explain_pip_failure(exc.output, self.source, origins, role="build dependency of")
                raise BuildDepsUnavailable(f"the build dependencies of {needer.label} are not all in "
                                f"{self.source.description}; no lock was written",
                                problems or exc.problems,
                                tip="add them to the index (or use `pinfold lock --upstream`)") from None
            data = json.loads(report.read_text(encoding="utf-8"))
            for item in data.get("install", []):
                meta = item.get("metadata", {})
                installed[canonicalize_name(meta["name"])] = str(meta["version"])
        return _Env(python, installed)

    @contextlib.contextmanager
    def _backend_warnings(self) -> Iterator[None]:
        """A backend's own warnings (setuptools deprecations, ...) are its output, not pinfold's:
        shown with -v like the rest of it, never as Python warnings of the caller."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        if self.runner.on_output is not None:
            for w in caught:
                for line in str(w.message).splitlines():
                    self.runner.on_output(redact(line))

    def _hook_runner(self, needer: Needer) -> _HookRunner:
        return _HookRunner(self.runner, self.source, needer.label)

    def _metadata(self, needer: Needer, tree: Path, env: _Env, backend: str) -> tuple[str, tuple[str, ...]]:
        """A develop tree's project name and ``Requires-Dist``, from its backend's metadata."""
        builder = ProjectBuilder(tree, python_executable=str(env.python), runner=self._hook_runner(needer))
        with self._lock:
            self._metadata_dirs += 1
            out = self.workdir / "metadata" / str(self._metadata_dirs)
        try:
            with self._hooks, self._backend_warnings():
                path = builder.prepare("editable", out)
                # No prepare_metadata hook: build the editable wheel and read it.
                wheel = builder.build("editable", out) if path is None else ""
            if path is None:
                with zipfile.ZipFile(wheel) as archive:
                    name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
                    text = archive.read(name).decode("utf-8")
            else:
                text = (Path(path) / "METADATA").read_text(encoding="utf-8")
        except BuildBackendException as exc:
            raise self._backend_failed(needer, backend, exc, "its metadata",
                                       "prepare_metadata_for_build_editable") from None
        except (BuildException, OSError, StopIteration, zipfile.BadZipFile) as exc:
            raise LockError(f"{needer.label}: cannot read its metadata: {exc}") from None
        message = email.parser.Parser().parsestr(text)
        return canonicalize_name(message.get("Name", "")), tuple(message.get_all("Requires-Dist") or ())


class _HookRunner:
    """pyproject-hooks' subprocess runner, through pinfold's Runner (scrubbed environment)."""

    def __init__(self, runner: Runner, source: Source, label: str) -> None:
        self.runner = runner
        self.source = source
        self.label = label

    def __call__(self, cmd: Sequence[str], cwd: str | None = None,
                 extra_environ: Mapping[str, str] | None = None) -> None:
        # The index variables too: a setup.py that shells out to pip must see only the source.
        env = {**self.source.environ, **(extra_environ or {})}
        self.runner.run(cmd, what=f"asking the build backend of {self.label}", env=env,
                        online=self.source.online, cwd=Path(cwd) if cwd else None)
