"""Start an inside script: ``python -I -B _launch.py [--pycache D] [--path D]... SCRIPT RESULT ARGS...``.

Loads ``shared.py`` and ``_common.py`` once, by file path, as the modules ``_pinfold_shared``
and ``_pinfold_common``, then runs SCRIPT as ``__main__``. Nothing else is added to ``sys.path``,
which is where Twisted looks for plugin folders; the scripts take ``shared`` and ``common``
from ``sys.modules``.

``--pycache DIR`` is for an environment built without bytecode (``compile: false``):
the modules of the environment (and of develop trees) keep their bytecode in DIR, outside
the environment, so that the plugins stage and the probes of one build compile Twisted
once instead of once per interpreter. The standard library still uses its own
``__pycache__`` (a global ``-X pycache_prefix`` would compile it all again), and nothing
is written into the environment: ``-B`` stays in force for everything else.

``--path DIR`` (repeatable) puts DIR first on ``sys.path``, in order: the ``extra_paths``
of env.yaml's generated scripts, so that plugin folders only those scripts reach are
seen (their caches regenerated, their modules probed) like the environment's.
"""

from __future__ import annotations

import importlib.machinery as machinery
import importlib.util
import os
import runpy
import sys
from types import CodeType


def _cache_outside(prefix: str) -> None:
    """Keep the bytecode of modules outside the base interpreter's tree in ``prefix``."""
    env = os.path.realpath(sys.prefix) + os.sep
    bases = tuple(os.path.realpath(p) + os.sep for p in (sys.base_prefix, sys.base_exec_prefix))

    class CachedOutside(machinery.SourceFileLoader):
        def get_code(self, fullname: str) -> CodeType | None:
            # cache_from_source() and the write check read these two at call time; get_code
            # only reads and compiles (it imports nothing), so the switch is short and local.
            saved = sys.pycache_prefix, sys.dont_write_bytecode
            sys.pycache_prefix, sys.dont_write_bytecode = prefix, False
            try:
                return super().get_code(fullname)
            finally:
                sys.pycache_prefix, sys.dont_write_bytecode = saved

    loaders = [(machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
               (CachedOutside, machinery.SOURCE_SUFFIXES),
               (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES)]

    def hook(path: str) -> machinery.FileFinder:
        full = os.path.realpath(path or os.curdir) + os.sep
        if not os.path.isdir(full) or (full.startswith(bases) and not full.startswith(env)):
            raise ImportError("standard library or not a folder: default finders")
        return machinery.FileFinder(path, *loaders)

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


def _load(name: str, filename: str) -> None:
    """Load ``filename`` (next to this file) by path as the module ``name``."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), filename)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--pycache"]:
        _cache_outside(args[1])
        args = args[2:]
    extra = []
    while args[:1] == ["--path"]:
        extra.append(args[1])
        args = args[2:]
    sys.path[0:0] = extra
    _load("_pinfold_shared", "shared.py")  # first: _common.py uses it
    _load("_pinfold_common", "_common.py")
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    _main()
