"""Read-only freshness test of the plugin caches: writes nothing, imports no plugin module.

Usage: ``python -I -B _launch.py freshness.py RESULT.json [--exactly] [PACKAGE ...]``.
Re-applies the rule of Twisted's ``getCache`` to every folder of every plugin package (see
``_common.freshness``). Only the plugin *packages* are imported (their ``__path__``
says where the folders are); caches are read with a pickle reader that loads no class.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinfold.inside import _common as common
else:
    # Loaded once, by path, by _launch.py (see pinfold.target).
    common = sys.modules["_pinfold_common"]


def main(argv: list[str]) -> None:
    """Write one report per cache folder, each with its problems (none when fresh)."""
    out, listed = argv[1], argv[2:]
    packages = common.plugin_packages(listed)
    result: dict[str, Any] = {"packages": packages, "folders": [], "errors": []}
    for name in packages:
        try:
            importlib.import_module(name)
            groups = common.buckets(name)
        except BaseException as exc:
            result["errors"].append(f"{name}: cannot import the plugin package: "
                                    f"{common.describe(exc)} ({common.where(exc)})")
            continue
        result["folders"] += [common.freshness(name, folder, modules) for folder, modules in groups]
    common.write_result(out, result)


if __name__ == "__main__":
    main(sys.argv)
