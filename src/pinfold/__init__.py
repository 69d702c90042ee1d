"""pinfold: one reproducible virtualenv from env.yaml, pinned, hashed and offline.

A deploy pipeline calls :func:`load_spec` then :func:`build` and gets a typed result;
the ``pinfold`` command is a thin shell over these.

The names below are imported on first use (PEP 562): ``import pinfold`` alone, which
every submodule import implies, must not import the pipeline, YAML and ``packaging``,
or the no-op ``pinfold build`` (:mod:`pinfold.uptodate`) could not stay fast.
"""

from __future__ import annotations

import importlib

from ._version import __version__

TYPE_CHECKING = False  # not typing's: see pinfold.errors
if TYPE_CHECKING:
    from .errors import (
        BuildError,
        CommandError,
        PinfoldError,
        PreflightError,
        ProbeError,
        Problem,
        SpecError,
    )
    from .pipeline import build, check
    from .results import BuildResult, StageEvent, StageReport
    from .spec import Spec, load_spec

_WHERE = {
    **dict.fromkeys(("BuildError", "CommandError", "PinfoldError", "PreflightError", "ProbeError",
                     "Problem", "SpecError"), "errors"),
    **dict.fromkeys(("BuildResult", "StageEvent", "StageReport"), "results"),
    **dict.fromkeys(("build", "check"), "pipeline"),
    **dict.fromkeys(("Spec", "load_spec"), "spec"),
}

__all__ = [
    "BuildError",
    "BuildResult",
    "CommandError",
    "PinfoldError",
    "PreflightError",
    "ProbeError",
    "Problem",
    "Spec",
    "SpecError",
    "StageEvent",
    "StageReport",
    "__version__",
    "build",
    "check",
    "load_spec",
]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
