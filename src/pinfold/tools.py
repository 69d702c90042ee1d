"""pinfold's own tools: the pinned pip (and uv) of its tool environment, found and checked.

pinfold never uses the machine's pip: it runs the pip pinned in its own tool environment
(requirements/tool.txt) inside the target interpreter. The installers, the probes (``pip
check``), ``pinfold fetch`` and build-dependency discovery all start it the same way, so
the way is here, below all of them.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.version import Version

from .errors import BuildError

__all__ = ["MIN_PIP", "pip_in", "tool_problem"]

#: The oldest pip whose hashed build constraints reach build environments and fail closed.
MIN_PIP = "26.2"


def tool_problem(dist: str, minimum: str, *, why: str = "") -> str | None:
    """Why pinfold's tool environment cannot provide ``dist`` >= ``minimum``, or None."""
    fix = "run ./bootstrap.sh to recreate it from requirements/tool.txt"
    try:
        have = Version(version(dist))
    except PackageNotFoundError:
        return f"{why}pinfold's tool environment has no {dist} ({fix})"
    if have < Version(minimum):
        return f"pinfold's tool environment has {dist} {have}; it needs {dist} >= {minimum} ({fix})"
    return None


def pip_in(python: Path) -> list[str]:
    """The command that runs pinfold's own pip inside ``python``.

    ``pip --python P`` re-runs the same pip as ``P <pip>/__pip-runner__.py``, a file pip
    keeps for exactly this (and for its build environments); this is that command.
    """
    spec = importlib.util.find_spec("pip")
    if spec is None or spec.origin is None:  # the install stage's pre-flight checks this
        raise BuildError(tool_problem("pip", MIN_PIP) or "pinfold's tool environment has no pip")
    return [str(python), str(Path(spec.origin).with_name("__pip-runner__.py"))]
