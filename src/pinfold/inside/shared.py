"""What pinfold and its inside scripts both use: one copy, standard library only.

The one module of :mod:`pinfold.inside` that pinfold imports (``from pinfold.inside.shared
import ...``). The inside scripts never import it: they run in the target interpreter,
where pinfold is not importable, and load this file by path instead (``_launch.py`` as
``_pinfold_shared``). So it must import nothing but the standard
library and stay valid on every target Python (3.8+): no runtime use of newer syntax or
builtin generics.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["BYTECODE_PLAN", "CACHE", "EXACTLY", "SECOND_NS", "strictly_newer_mtime_ns"]

#: The plugin scripts' first argument for "exactly these plugin packages, do not scan".
EXACTLY = "--exactly"
#: The file name of a Twisted plugin cache, one per plugin folder.
CACHE = "dropin.cache"
#: What marks a package as a Twisted plugin package: its ``__init__`` extends ``__path__``.
PLUGIN_MARK = b"pluginPackagePaths("
#: In the final stages' bytecode folder of a ``compile: false`` build (``_launch.py --pycache``):
#: what the bytecode cache holds for the environment's sources (the compile stage's plan).
BYTECODE_PLAN = "pinfold-bytecode-plan.json"
#: Nanoseconds per second: caches' mtimes are handled in ``st_mtime_ns``.
SECOND_NS = 1_000_000_000


def strictly_newer_mtime_ns(cache_ns: int, module_ns: Iterable[int]) -> int:
    """The mtime (ns) a cache needs: its own, or the whole second after its newest module's.

    Twisted re-imports a plugin module whose file's mtime is ``>=`` its cache's (a float
    comparison). The result is strictly newer under that rule, and still strictly newer
    after a copy that keeps whole seconds only (tar without pax headers, coarse filesystems).
    """
    newest = max(module_ns, default=-1)
    return max(cache_ns, (newest // SECOND_NS + 1) * SECOND_NS)
