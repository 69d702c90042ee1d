"""The no-op fast path: ``pinfold build`` with nothing changed, answered before env.yaml is validated.

A finished environment records what its build read (``watch`` in pinfold.json): the
digest of every file (env.yaml, the locks, the needs files and what they include), the
folders that had to exist (wheelhouses, develop trees, with their ``pyproject.toml`` or
``setup.py`` among the files) and the interpreter env.yaml named. When all of those are
as recorded, validating env.yaml again would give the same spec and the plan would be a
no-op; :func:`up_to_date` checks exactly that with the standard library, ``yaml`` and one
``python -I -S`` run (an interpreter can be replaced in place), without importing the
pipeline, ``packaging`` or the lock parser: a no-op then costs about 0.1 s.

Anything different or unreadable and it answers None, "not known to be up to date":
the full path (:func:`pinfold.pipeline.build`) decides, with its own messages. So it does
when ``<path>.d`` holds an unfinished entry (a killed build's folder; one listing): the
full path's no-op removes it under the build lock.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ._version import __version__
from .envdir import Environments, damage
from .errors import CommandError, PinfoldError, interpreter_failed
from .paths import env_path, find_python
from .record import Watch, read_record
from .results import BuildResult
from .runner import Runner

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["digest", "identity", "up_to_date", "watch_of"]


def digest(path: Path | None) -> str:
    """The sha256 of a file's bytes ("" for no file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path else ""


def identity(python: str, runner: Runner) -> str:
    """The cheapest honest identity of an interpreter: -S skips site, so this is ~15 ms."""
    try:
        done = runner.run([python, "-I", "-S", "-c",
                           "import sys; print(sys.executable, sys.version, sys.implementation.cache_tag)"],
                          what=f"running {python}", timeout=60)
    except CommandError as exc:
        raise interpreter_failed(python, exc.problems) from None
    return done.output.strip()


def watch_of(spec: Spec) -> Watch:
    """What the no-op fast path must find unchanged: everything validating ``spec`` read."""
    from .needs import read_needs  # lazy: packaging; watch_of runs on the full path only

    files: list[Path] = [spec.file, spec.requirements.path]
    if spec.build_requirements is not None:
        files.append(spec.build_requirements.path)
    for ns in (spec.needs, spec.build_needs):
        if ns is not None:
            files += read_needs(ns, spec.root)[0].files
    for tree in spec.develop:
        files += [tree / name for name in ("pyproject.toml", "setup.py") if (tree / name).is_file()]
    return Watch(spec=str(spec.file), files={str(f): digest(f) for f in dict.fromkeys(files)},
                 folders=tuple(str(d) for d in (*spec.index.find_links, *spec.develop)),
                 python=spec.python)


def _unchanged(watch: Watch, spec_file: Path, python: str) -> bool:
    if watch.spec != str(spec_file) or watch.python != python or str(spec_file) not in watch.files:
        return False
    try:
        if any(digest(Path(name)) != value for name, value in watch.files.items()):
            return False
    except OSError:  # a file went away: validation will say so
        return False
    return all(Path(folder).is_dir() for folder in watch.folders)


def up_to_date(spec_file: Path | str, runner: Runner) -> BuildResult | None:
    """The no-op result if nothing the current environment was built from changed, else None.

    Never raises: this is only a shortcut, and whatever it cannot judge (an env.yaml too
    deep for ``yaml.safe_load``, a path with a NUL byte, a foreign ``pinfold.json``) the
    full path validates and reports with a proper message.
    """
    try:
        return _up_to_date(spec_file, runner)
    except Exception:  # see the docstring: the full path reports it
        return None


def _up_to_date(spec_file: Path | str, runner: Runner) -> BuildResult | None:
    start = time.monotonic()
    file = Path(spec_file).absolute()
    try:
        raw = yaml.safe_load(file.read_bytes())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
        return None
    value = raw.get("python")
    python = find_python(file, value) if value is None or isinstance(value, str) else None
    if python is None:
        return None
    path = env_path(file, raw["path"])
    envs = Environments(path)
    if not path.is_symlink() or (current := envs.current()) is None:
        return None
    if envs.has_leftovers():  # a killed build's folder: the full path's no-op removes it
        return None
    record = read_record(current)
    if record is None or record.pinfold != __version__ or not _unchanged(record.watch, file, python):
        return None
    if damage(current, record.installed) is not None:
        return None
    try:
        if identity(python, runner) != record.inputs.get("python"):
            return None
    except PinfoldError:  # the full path runs it again and reports it
        return None
    return BuildResult(spec_file=file, path=path, env_dir=current, up_to_date=True,
                       seconds=time.monotonic() - start)
