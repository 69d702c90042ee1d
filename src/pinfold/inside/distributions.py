"""List the distributions the environment's interpreter sees, as its consumers would.

Usage: ``python -I -B distributions.py RESULT.json``. One entry per ``.dist-info`` or
``.egg-info`` found on ``sys.path``: name, version, folder, and for editable installs
(PEP 610 ``direct_url.json``) the source tree's URL.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from typing import Any


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
    result: dict[str, Any] = {"distributions": found, "path": sys.path}
    tmp = f"{argv[1]}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, argv[1])


if __name__ == "__main__":
    main(sys.argv)
