"""pip as the installer, run from pinfold's own pinned pip into the target environment.

pinfold's tool environment pins pip (>= 26.2 is needed: with hashes in it, its
``--build-constraint`` file reaches every build environment and fails closed on a build
dependency that is missing or differs; README "How a build stays hermetic"). That pip runs in the target
interpreter, so the environment never needs a pip of its own, and the machine's pip is
never used: :func:`pinfold.tools.pip_in` starts it the way ``pip --python`` does, without first
starting pip in pinfold's interpreter only to start it again (0.2-0.3 s a call).

pip never byte-compiles here (``--no-compile``): the compile stage does it once for
the whole environment, in parallel, after the develop trees are installed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from ..index import index_environ, index_flags
from ..locks import Pin
from ..runner import Runner
from ..spec import Spec
from ..tools import MIN_PIP, pip_in, tool_problem
from .base import OnStep, pins_file, requirements_file

__all__ = ["Pip", "pip_steps"]

#: pip's lines (without -v) that tell how far an install is: one ``Collecting`` or
#: ``Processing`` line per distribution, one ``Building wheel for`` per sdist, then one
#: ``Installing collected packages`` for all of them.
_COLLECTED = re.compile(r"^(?:Collecting|Processing) (\S+)")
_BUILDING = re.compile(r"^\s*Building wheel for (\S+) .*: started")
_INSTALLING = "Installing collected packages: "


def pip_steps(on_step: OnStep) -> Callable[[str], None]:
    """A line callback for a pip install that reports its steps to ``on_step``."""
    done = 0

    def line(text: str) -> None:
        nonlocal done
        if match := _COLLECTED.match(text):
            done += 1
            on_step(done, f"collecting {match[1].rsplit('/', 1)[-1]}")
        elif match := _BUILDING.match(text):
            on_step(done, f"building {match[1]} (sdist)")
        elif text.startswith(_INSTALLING):
            names = text[len(_INSTALLING):].split(", ")
            on_step(done, f"installing {len(names)} distributions")

    return line


class Pip:
    """Installs locks and editable trees with pip, hermetically."""

    name: ClassVar[str] = "pip"

    def __init__(self, spec: Spec, runner: Runner, *, on_step: OnStep | None = None) -> None:
        self.spec = spec
        self.runner = runner
        self.on_step = on_step

    def problems(self) -> list[str]:
        """Why pinfold's pip cannot be used (missing or too old), or nothing."""
        reason = tool_problem("pip", MIN_PIP)
        return [reason] if reason else []

    def _install(self, python: Path, args: list[str], *, what: str) -> None:
        build = self.spec.build_requirements
        argv = [*pip_in(python), "install",
                # A cached wheel could have been built with other build dependencies.
                "--no-cache-dir", "--no-compile", *index_flags(self.spec.index)]
        with contextlib.ExitStack() as stack:
            if build is not None:
                argv += ["--build-constraint", str(stack.enter_context(requirements_file(build)))]
            # The index as variables too: pip's build subprocesses re-read the environment.
            self.runner.run([*argv, *args], what=what, env=index_environ(self.spec.index),
                            on_line=pip_steps(self.on_step) if self.on_step else None)

    def install_lock(self, python: Path) -> None:
        """Install the runtime lock, hashes required."""
        with requirements_file(self.spec.requirements) as reqs:
            self._install(python, ["--require-hashes", "-r", str(reqs)], what="installing the runtime lock")

    def install_pins(self, python: Path, pins: list[Pin], *, previous: Path | None = None) -> None:
        """Install just these pins (an update): no resolving, hashes required (``previous``
        is not needed: pip checks what it installs, and installs nothing from a shared cache)."""
        if not pins:
            return
        with pins_file(pins) as reqs:
            self._install(python, ["--no-deps", "--require-hashes", "-r", str(reqs)],
                          what="installing the changed pins")

    def uninstall(self, python: Path, names: list[str]) -> None:
        """Remove distributions (pins dropped from the lock)."""
        if names:
            self.runner.run([*pip_in(python), "uninstall", "--yes", *names], what="removing distributions",
                            env=index_environ(self.spec.index))

    def install_editable(self, python: Path, trees: list[Path]) -> None:
        """Install local trees editable; their dependencies must already be in the lock."""
        args = ["--no-deps"]
        for tree in trees:
            args += ["-e", str(tree)]
        self._install(python, args, what="installing the develop trees")
