"""Import one module in a fresh interpreter of the environment, as its consumers would.

Usage: ``python -I -B _launch.py importer.py RESULT.json MODULE``. An import that fails
ends the script with the traceback (the probe shows its last lines); one that works
writes where the module was found.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinfold.inside import _common as common
else:
    # Loaded once, by path, by _launch.py (see pinfold.target).
    common = sys.modules["_pinfold_common"]


def main(argv: list[str]) -> None:
    """Import ``argv[2]``; write ``{"module": ..., "file": ...}`` to ``argv[1]``."""
    module = importlib.import_module(argv[2])
    common.write_result(argv[1], {"module": argv[2], "file": getattr(module, "__file__", None)})


if __name__ == "__main__":
    main(sys.argv)
