"""List the distributions the environment's interpreter sees, as its consumers would.

Usage: ``python -I -B _launch.py distributions.py RESULT.json``. One entry per ``.dist-info`` or
``.egg-info`` found on ``sys.path`` (see ``_common.list_distributions``; the plugins stage's
script lists them the same way, in the same run, when it can).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinfold.inside import _common as common
else:
    # Loaded once, by path, by _launch.py (see pinfold.target).
    common = sys.modules["_pinfold_common"]


def main(argv: list[str]) -> None:
    """Write ``{"distributions": [...]}``."""
    common.write_result(argv[1], {"distributions": common.list_distributions()})


if __name__ == "__main__":
    main(sys.argv)
