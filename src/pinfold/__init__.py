"""pinfold: one reproducible virtualenv from env.yaml, pinned, hashed and offline.

A deploy pipeline calls :func:`load_spec` then :func:`build` and gets a typed result;
the ``pinfold`` command is a thin shell over these.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    BuildError,
    CommandError,
    PinfoldError,
    PreflightError,
    ProbeError,
    Problem,
    SpecError,
)
from .pipeline import BuildResult, StageEvent, StageReport, build, check
from .spec import Spec, load_spec

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
