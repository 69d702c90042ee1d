"""``pinfold import``: a Buildout configuration tree read into a located model, and mapped to
env.yaml, a needs file and a constraints file, with a report of what has no equivalent.

:mod:`.config` reads ``buildout.cfg`` and what it extends the way zc.buildout does (every
value keeps the ``file:line`` it was written at); :mod:`.importer` maps the result.
"""

from __future__ import annotations

from .config import BuildoutConfig, BuildoutError, Condition, Value, read_buildout
from .importer import Finding, ImportResult, import_buildout, write_import

__all__ = ["BuildoutConfig", "BuildoutError", "Condition", "Finding", "ImportResult", "Value",
           "import_buildout", "read_buildout", "write_import"]
