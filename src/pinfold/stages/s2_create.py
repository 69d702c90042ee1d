"""Stage 2: create the virtualenv, empty: no seed packages, so nothing is downloaded.

The environment then holds exactly the runtime lock (pip and setuptools only if the
lock pins them); pinfold's own pip installs into it from outside. An update starts
from a hard-link clone of the current environment instead.

virtualenv's output depends on the destination and on nothing that changes from build to
build (the interpreter and its files, virtualenv's version and what it uses, the umask: the
template's key): once a build has proven that what it wrote relocates exactly
(:mod:`pinfold.venvcache`), later builds write it from that template (milliseconds instead
of virtualenv's 0.2-0.3 s).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path
from typing import ClassVar

from packaging.requirements import InvalidRequirement, Requirement

from ..envdir import Environments
from ..errors import BuildError
from ..interpreter import Interpreter
from ..manifest import BOOKKEEPING
from ..paths import reason
from ..uptodate import interpreter_stamp
from ..venvcache import keep_template, template_key, written_from_template
from .base import Context, Stage

__all__ = ["CloneCurrent", "CreateFresh"]


class CreateFresh(Stage):
    """``virtualenv --no-seed`` for the target interpreter (a full build)."""

    name: ClassVar[str] = "create"

    def run(self, ctx: Context) -> str:
        interp = ctx.interpreter
        assert interp is not None
        key = _key(interp)
        if key is not None and written_from_template(key, ctx.env_dir):
            return f"{ctx.env_dir.name} for {interp.executable} (virtualenv's, from the template cache)"
        # virtualenv is a dependency of pinfold: it runs from pinfold's own interpreter.
        ctx.runner.run(
            [sys.executable, "-m", "virtualenv", "--quiet", "--no-seed", "--no-periodic-update",
             "--python", interp.executable, str(ctx.env_dir)],
            what="creating the virtualenv",
        )
        if key is not None:
            keep_template(key, ctx.env_dir, BOOKKEEPING)
        return f"{ctx.env_dir.name} for {interp.executable}"


def _key(interp: Interpreter) -> str | None:
    """The template key of this interpreter (:func:`pinfold.venvcache.template_key`), or None
    when what virtualenv would write cannot be pinned down: an interpreter not known by its
    files (a script such as a pyenv shim, or one changed a moment ago), or a virtualenv whose
    own requirements cannot be listed."""
    stamp = interpreter_stamp(interp.executable, interp.libraries)
    if stamp is None:
        return None
    try:
        names = ["virtualenv"]
        for line in requires("virtualenv") or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                return None
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                names.append(req.name)
        tools = " ".join(f"{name}=={version(name)}" for name in names)
    except PackageNotFoundError:
        return None
    identity = json.dumps([interp.implementation, interp.version, interp.abi,
                           interp.markers.get("python_full_version", ""), stamp], sort_keys=True)
    return template_key(interp.executable, identity, tools)


class CloneCurrent(Stage):
    """A hard-link clone of the current environment (an update)."""

    name: ClassVar[str] = "create"

    def __init__(self, base: Path) -> None:
        #: The environment this update starts from.
        self.base = base

    def run(self, ctx: Context) -> str:
        try:
            done = Environments(ctx.spec.path).clone(self.base, ctx.env_dir, ctx.hashes)
        except OSError as exc:
            where = exc.filename or ctx.env_dir
            raise BuildError(f"cannot clone {self.base} into {ctx.env_dir}: {where}: {reason(exc)}",
                             tip="the disk may be full, or a folder in `path`'s folder not yours to "
                                 "write; the current environment is unchanged") from None
        reused = f" ({done.folders} folders reused from a retired environment)" if done.folders else ""
        return f"{ctx.env_dir.name}: {done.files} files hard-linked from {self.base.name}{reused}"
