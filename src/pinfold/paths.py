"""How env.yaml's ``path`` and ``python`` are resolved: one rule for the spec and the no-op check.

Kept apart from :mod:`pinfold.spec` (YAML nodes, locks, ``packaging``) so that the
no-op fast path (:mod:`pinfold.uptodate`) resolves them exactly as validation does
without importing any of it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["env_path", "find_python"]


def env_path(spec_file: Path, value: str) -> Path:
    """``path`` from env.yaml: ``~`` expanded, relative to env.yaml's folder, absolute."""
    return (spec_file.parent / os.path.expanduser(value)).absolute()


def find_python(spec_file: Path, value: str | None) -> str | None:
    """``python`` from env.yaml as the interpreter to run, or None when it cannot be found.

    Not given: the interpreter running pinfold. With a slash: a path relative to env.yaml's
    folder (it must be an executable file). Otherwise a command looked up on ``PATH``.
    """
    if value is None:
        return sys.executable
    if os.sep in value:
        path = env_path(spec_file, value)
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(value)
