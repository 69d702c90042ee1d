"""Scripts that run *inside* the target interpreter, never imported by pinfold itself.

Each script is run by path as ``python -I -B _launch.py <script> RESULT.json ARGS...`` from an
empty temporary working directory (see :mod:`pinfold.target`), so that neither the
working directory nor pinfold's own environment is on the target's ``sys.path``. They
use only the standard library and what the environment has installed (Twisted), stay
compatible with older Pythons (3.9+), and write one JSON document to ``RESULT.json``:
output printed by plugins on import can never be mistaken for a result.

:mod:`pinfold.inside._common` holds what the scripts share; ``_launch.py``
loads it once by file path, so nothing is added to the target's ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["script"]


def script(name: str) -> Path:
    """The path of the inside script ``name`` (e.g. ``"caches"``)."""
    path = Path(__file__).with_name(f"{name}.py")
    if not path.is_file():
        raise FileNotFoundError(path)
    return path
