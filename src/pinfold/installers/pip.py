"""pip as the installer, run from pinfold's own pinned pip into the target environment.

pinfold's tool environment pins pip (>= 26.2 is needed: with hashes in it, its
``--build-constraint`` file reaches every build environment and fails closed on a build
dependency that is missing or differs; README "How a build stays hermetic"). That pip runs in the target
interpreter, so the environment never needs a pip of its own, and the machine's pip is
never used: :func:`pinfold.tools.pip_in` starts it the way ``pip --python`` does, without first
starting pip in pinfold's interpreter only to start it again (0.2-0.3 s a call).

pip never byte-compiles here (``--no-compile``): the compile stage does it once for
the whole environment, in parallel, after the develop trees are installed.

pip's own wheel cache stays off (``--no-cache-dir``): it keys a wheel built from an sdist
by the sdist's location, not by its hash nor the build dependencies used. pinfold keeps
its own instead (:class:`WheelCache`, ``<cache>/wheels/``): a full build first builds the
wheels of the sdists pre-flight chose (``pip wheel``, same flags, same build lock) into
entries keyed by the sdist's sha256, the build lock's digest and the interpreter, then
installs every pin with the entries' wheels offered beside the index, each wheel's sha256
added to its pin's hashes. pip checks that hash as it installs, prefers the wheel to the
sdist of the same version, and so installs the very wheel a later build finds in the
cache: the sdists are built once per build lock, not once per build (most of a warm
``pip install`` of the benchmark's lock went into building its three sdists again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from packaging.utils import canonicalize_name, parse_wheel_filename

from ..index import file_digest, index_environ, index_flags
from ..locks import Pin
from ..pyccache import MANIFEST, artifact_key, cache_root
from ..runner import Runner
from ..spec import Spec
from ..tools import MIN_PIP, pip_in, tool_problem
from .base import OnStep, pins_file, requirements_file

if TYPE_CHECKING:
    from ..interpreter import Interpreter
    from ..preflight import PreflightReport

__all__ = ["Pip", "WheelCache", "pip_steps"]

#: The file that makes a wheel cache entry (as a bytecode entry's): written last, before
#: the rename; its mtime is the entry's last use, for ``pinfold cache prune``.
_ENTRY = MANIFEST

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


class WheelCache:
    """Wheels pip built from sdists, one entry per (interpreter, sdist sha256, build lock).

    An entry is a folder holding one wheel and :data:`_ENTRY` (its file name and sha256),
    written to a ``.tmp-*`` folder, the entry file last, and renamed into place: a killed
    fill leaves nothing an entry is read from, and of two concurrent fills the first rename
    wins. A wheel whose bytes are not its entry's sha256 is not offered (and is replaced).
    """

    def __init__(self, root: Path, interpreter: Interpreter) -> None:
        markers = interpreter.markers
        # The interpreter a wheel was built for: what pip's own cache keys by, and the platform.
        who = json.dumps([interpreter.abi, interpreter.version, interpreter.implementation,
                          *(markers.get(k, "") for k in ("platform_machine", "sys_platform",
                                                          "platform_python_implementation"))])
        #: This interpreter's folder of entries.
        self.folder = root / f"{interpreter.abi}-{hashlib.sha256(who.encode()).hexdigest()[:16]}"

    def get(self, key: str) -> tuple[Path, str] | None:
        """The entry's wheel and its sha256 (hex), when the entry is whole and the bytes match."""
        entry = self.folder / key
        try:
            data = json.loads((entry / _ENTRY).read_text(encoding="utf-8"))
            wheel = entry / str(data["wheel"])
            sha = str(data["sha256"])
            if "/" in str(data["wheel"]) or file_digest(wheel) != sha:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        with contextlib.suppress(OSError):
            os.utime(entry / _ENTRY)
        return wheel, sha

    def put(self, key: str, wheel: Path) -> None:
        """Store ``wheel`` as the entry ``key`` (a bad entry there is replaced); never fails."""
        entry = self.folder / key
        tmp = self.folder / f".tmp-{key}-{uuid.uuid4().hex}"
        try:
            tmp.mkdir(parents=True)
            shutil.copy2(wheel, tmp / wheel.name)
            data = {"wheel": wheel.name, "sha256": file_digest(tmp / wheel.name)}
            (tmp / _ENTRY).write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            if entry.is_dir():
                gone = self.folder / f".old-{uuid.uuid4().hex}"
                with contextlib.suppress(OSError):
                    entry.rename(gone)
                    shutil.rmtree(gone, ignore_errors=True)
            tmp.rename(entry)
        except OSError:
            pass  # lost the race to another build, or the cache cannot be written: only slower
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Pip:
    """Installs locks and editable trees with pip, hermetically."""

    name: ClassVar[str] = "pip"

    def __init__(self, spec: Spec, runner: Runner, *, on_step: OnStep | None = None,
                 preflight: PreflightReport | None = None, interpreter: Interpreter | None = None,
                 ) -> None:
        self.spec = spec
        self.runner = runner
        self.on_step = on_step
        #: What pre-flight chose, and for which interpreter: the wheel cache needs both.
        self.preflight = preflight
        self.interpreter = interpreter

    def problems(self) -> list[str]:
        """Why pinfold's pip cannot be used (missing or too old), or nothing."""
        reason = tool_problem("pip", MIN_PIP)
        return [reason] if reason else []

    def _install(self, python: Path, args: list[str], *, what: str, command: str = "install") -> None:
        build = self.spec.build_requirements
        argv = [*pip_in(python), command,
                # A cached wheel could have been built with other build dependencies.
                "--no-cache-dir", *(["--no-compile"] if command == "install" else []),
                *index_flags(self.spec.index)]
        with contextlib.ExitStack() as stack:
            if build is not None:
                argv += ["--build-constraint", str(stack.enter_context(requirements_file(build)))]
            # The index as variables too: pip's build subprocesses re-read the environment.
            self.runner.run([*argv, *args], what=what, env=index_environ(self.spec.index),
                            on_line=pip_steps(self.on_step) if self.on_step else None)

    def install_lock(self, python: Path) -> None:
        """Install the runtime lock, hashes required (the sdists' wheels from the wheel cache).

        Nothing is left to check: pip copies every file out of the wheel it hashed."""
        sdists = self._sdist_keys()
        if not sdists or self.preflight is None:
            with requirements_file(self.spec.requirements) as reqs:
                self._install(python, ["--require-hashes", "-r", str(reqs)],
                              what="installing the runtime lock")
            return
        assert self.interpreter is not None
        cache = WheelCache(cache_root() / "wheels", self.interpreter)
        with tempfile.TemporaryDirectory(prefix="pinfold-wheels-") as tmp:
            offered = Path(tmp) / "offered"
            offered.mkdir()
            found = {pin: hit for pin, key in sdists.items() if (hit := cache.get(key)) is not None}
            if missing := [p for p in sdists if p not in found]:
                found |= self._build_wheels(python, missing, sdists, cache, Path(tmp) / "built")
            extra: dict[str, str] = {}
            for pin, (wheel, sha) in found.items():
                try:
                    os.link(wheel, offered / wheel.name)
                except OSError:
                    shutil.copy2(wheel, offered / wheel.name)
                extra[str(pin)] = f"sha256:{sha}"
            pins = [replace(p, hashes=p.hashes | {extra[str(p)]}) if str(p) in extra else p
                    for p in self.preflight.runtime]
            with pins_file(pins, name="runtime.txt") as reqs:
                self._install(python, ["--require-hashes", "--find-links", str(offered), "-r", str(reqs)],
                              what="installing the runtime lock")

    def _sdist_keys(self) -> dict[Pin, str]:
        """The runtime pins pre-flight chose an sdist for, with their wheel cache keys."""
        report = self.preflight
        if report is None or self.interpreter is None or not report.from_source:
            return {}
        build = self.spec.build_requirements
        try:
            build_lock = build.path.read_bytes() if build is not None else None
        except OSError:
            return {}  # read a moment ago by pre-flight: without it no key can be trusted
        keys = {}
        for pin in report.from_source:
            chosen = report.chosen.get(str(pin))
            key = artifact_key(chosen.digest if chosen else None, from_source=True, build_lock=build_lock)
            if key is not None:
                keys[pin] = key
        return keys

    def _build_wheels(self, python: Path, pins: list[Pin], keys: dict[Pin, str], cache: WheelCache,
                      folder: Path) -> dict[Pin, tuple[Path, str]]:
        """``pip wheel`` the sdists of ``pins`` (same flags and build lock as an install) into
        ``folder``; store each in the cache; each pin's wheel and sha256."""
        folder.mkdir()
        with pins_file(pins, name="sdists.txt") as reqs:
            self._install(python, ["--no-deps", "--require-hashes", "--wheel-dir", str(folder),
                                   "-r", str(reqs)],
                          # The first step of installing the lock: a failure is said as such.
                          what="installing the runtime lock", command="wheel")
        by_pin = {(p.name, p.version): p for p in pins}
        out = {}
        for wheel in sorted(folder.glob("*.whl")):
            name, version, _, _ = parse_wheel_filename(wheel.name)
            pin = by_pin.get((canonicalize_name(name), version))
            if pin is None:
                continue  # not one asked for (--no-deps: should not happen); not offered
            cache.put(keys[pin], wheel)
            out[pin] = (wheel, file_digest(wheel))
        return out

    def install_pins(self, python: Path, pins: list[Pin]) -> None:
        """Install just these pins (an update): no resolving, hashes required."""
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
