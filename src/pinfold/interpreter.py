"""What the target interpreter is: one call to it, for markers, wheel tags and identity.

Markers and tags must come from the interpreter the environment is for, not from the
one running pinfold. The target may lack ``packaging``, so the probe puts pinfold's own
copy (pure Python) on its path for that one call.

The oldest target pinfold builds for is :data:`MIN_TARGET` (3.10), stated here once: pinfold
runs its own pip (26.3) and its own ``packaging`` (26.4) inside the target, and both need
Python 3.10 or newer (their ``Requires-Python``). An older interpreter is refused here,
before anything is created; a lock for an older Python can still be written for a
``targets:`` version/platform pair, which runs nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import packaging

from .errors import CommandError, Problem, SpecError, interpreter_failed
from .runner import Runner

__all__ = ["MIN_TARGET", "Interpreter", "inspect_interpreter"]

#: The oldest target interpreter (``python`` in env.yaml) pinfold supports: what the pip and
#: ``packaging`` pinfold runs inside it require.
MIN_TARGET = (3, 10)

_PROBE = r"""
import json, os, sys, sysconfig
if sys.version_info < tuple(int(p) for p in sys.argv[2].split(".")):
    print(json.dumps({"too_old": ".".join(map(str, sys.version_info[:3]))}))
    sys.exit(0)
sys.path.insert(0, sys.argv[1])
from packaging import markers, tags
libraries = []
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            if len(fields) == 6 and os.path.basename(fields[5].strip()).startswith("libpython"):
                libraries.append(fields[5].strip())
except OSError:
    pass
base = getattr(sys, "_base_executable", sys.executable) if sys.prefix != sys.base_prefix else sys.executable
print(json.dumps({
    "executable": base,
    "version": ".".join(map(str, sys.version_info[:3])),
    "implementation": sys.implementation.name,
    "abi": sys.implementation.cache_tag,
    "markers": markers.default_environment(),
    "tags": [str(t) for t in tags.sys_tags()],
    "shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED")
                   or sysconfig.get_config_var("PYTHONFRAMEWORK")),
    "libraries": list(dict.fromkeys(libraries)),
}))
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Interpreter:
    """The target interpreter: a real (non-venv) executable and what it supports."""

    executable: str
    version: str
    implementation: str
    #: e.g. ``cpython-311``: part of the environment's identity.
    abi: str
    markers: dict[str, str]
    #: Supported wheel tags, most preferred first.
    tags: tuple[str, ...]
    #: A shared-library or framework build: what it runs as is not only its executable's bytes.
    shared: bool = True
    #: The libpython shared objects it loaded (Linux: from ``/proc/self/maps``; empty for a
    #: static build, or where that cannot be read). With ``shared`` and none listed, the no-op
    #: fast path cannot know it by its files (pinfold.uptodate.interpreter_stamp).
    libraries: tuple[str, ...] = ()


def inspect_interpreter(python: str, runner: Runner) -> Interpreter:
    """Ask ``python`` about itself; raise :class:`BuildError` if it cannot run or is too old."""
    site = str(Path(packaging.__file__).parent.parent)
    try:
        done = runner.run([python, "-I", "-c", _PROBE, site, ".".join(map(str, MIN_TARGET))],
                          what=f"inspecting {python}", timeout=60)
    except CommandError as exc:
        raise interpreter_failed(python, exc.problems) from None
    try:
        data = json.loads(done.output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise interpreter_failed(python, [Problem("output", done.output.strip()[-500:])]) from None
    if "too_old" in data:
        oldest = ".".join(map(str, MIN_TARGET))
        raise SpecError(f"the target interpreter {python} is Python {data['too_old']}: pinfold builds "
                        f"environments for Python {oldest} or newer",
                        tip=f"set `python` in env.yaml to a Python {oldest} or newer interpreter")
    return Interpreter(
        executable=data["executable"],
        version=data["version"],
        implementation=data["implementation"],
        abi=data["abi"],
        markers=data["markers"],
        tags=tuple(data["tags"]),
        shared=data.get("shared") is not False,
        libraries=tuple(str(lib) for lib in data.get("libraries", ())),
    )
