"""List the distributions the environment's interpreter sees, as its consumers would.

Usage: ``python -I -B _launch.py distributions.py RESULT.json``. One entry per ``.dist-info`` or
``.egg-info`` found on ``sys.path``: name, version, folder, and for editable installs
(PEP 610 ``direct_url.json``) the source tree's URL.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pinfold.inside import _common as common
else:
    # Loaded once, by path, by _launch.py (see pinfold.target).
    common = sys.modules["_pinfold_common"]


def _direct_url(dist: importlib.metadata.Distribution) -> tuple[bool, str]:
    try:
        data = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False, ""
    editable = bool(data.get("dir_info", {}).get("editable"))
    return editable, str(data.get("url", ""))


def main(argv: list[str]) -> None:
    """Write ``{"distributions": [...]}``."""
    found = []
    for dist in importlib.metadata.distributions():
        editable, url = _direct_url(dist)
        found.append({
            "name": dist.metadata["Name"] or "",
            "version": dist.version or "",
            # Where the metadata lives: tells a shadowed duplicate from the one in use.
            "location": str(getattr(dist, "_path", "")),
            "editable": editable,
            "url": url,
        })
    common.write_result(argv[1], {"distributions": found})


if __name__ == "__main__":
    main(sys.argv)
