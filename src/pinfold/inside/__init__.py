"""Scripts that run *inside* the target interpreter, and the one module pinfold shares with them.

pinfold imports only :mod:`pinfold.inside.shared` (constants and helpers both sides use,
standard library only) and :func:`script` below; every other file here is a script run by
path in the target interpreter, never imported by pinfold. The scripts use only the
standard library and what the environment has installed (Twisted), and stay compatible
with Pythons from 3.8 on (below pinfold's minimum target, interpreter.MIN_TARGET). Two ways to run them:

- Through ``_launch.py``: ``python -I -B _launch.py [--pycache DIR] SCRIPT RESULT.json ARGS...``
  from an empty temporary working directory (see :mod:`pinfold.target`), so that neither
  the working directory nor pinfold's own environment is on the target's ``sys.path``.
  ``_launch.py`` loads ``shared.py`` and ``_common.py`` (what these scripts share) once,
  by file path, so nothing is added to the target's ``sys.path``. Each script writes one
  JSON document to ``RESULT.json``: output printed by plugins on import can never be
  mistaken for a result. The plugin scripts (regenerate, freshness, hygiene, bootstrap,
  importer) and distributions run this way.
- Directly: ``python -I SCRIPT ARGS...``, for the one that works on files alone, prints
  lines and exits non-zero on failure: ``compile.py`` (the compile stage). It runs a process
  pool, whose workers may re-run the script by path (spawn, forkserver), without
  ``_launch.py``: so it needs nothing that loads.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["script"]


def script(name: str) -> Path:
    """The path of the inside script ``name`` (e.g. ``"regenerate"``)."""
    path = Path(__file__).with_name(f"{name}.py")
    if not path.is_file():
        raise FileNotFoundError(path)
    return path
