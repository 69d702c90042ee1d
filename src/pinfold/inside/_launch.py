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
is written into the environment: ``-B`` stays in force for everything else. When DIR holds
the compile stage's plan (``shared.BYTECODE_PLAN``: each distribution's bytecode cache entry
and sources), a module whose pyc DIR lacks gets the cached one, linked in (a copy across file
systems) the first time an import needs it, and only when it passes the compile stage's checks
(the sha256 the entry's manifest names, a checked-hash header of this very source); else
it is compiled as usual. So a build links what its final stages import, not every file.

``--path DIR`` (repeatable) puts DIR first on ``sys.path``, in order: the ``extra_paths``
of env.yaml's generated scripts, so that plugin folders only those scripts reach are
seen (their caches regenerated, their modules probed) like the environment's.
"""

from __future__ import annotations

import contextlib
import importlib.machinery as machinery
import importlib.util
import os
import runpy
import sys
from types import CodeType


class _Offer:
    """What the bytecode cache holds for the environment's sources (the plan in the bytecode
    folder), placed there one pyc at a time as the imports need them."""

    def __init__(self, plan: str) -> None:
        self.plan = plan
        self._sources: dict[str, tuple[str, str]] | None = None  # real source -> (entry, rel pyc)
        self._manifests: dict[str, dict[str, str]] = {}

    def _load(self) -> dict[str, tuple[str, str]]:
        import json

        sources: dict[str, tuple[str, str]] = {}
        try:
            with open(self.plan, encoding="utf-8") as fh:
                plan = json.load(fh)
            folder = f"{sys.implementation.cache_tag}-{importlib.util.MAGIC_NUMBER.hex()}"
            for item in plan["dists"]:
                real = os.path.realpath(str(item["site"]))
                entry = os.path.join(str(plan["root"]), folder, str(item["key"]))
                for rel in item["sources"]:
                    # The entry's layout is the environment's (compile.py's rel_pyc, no prefix).
                    head, name = os.path.split(str(rel))
                    pyc = os.path.join(head, "__pycache__", f"{name[:-3]}.{sys.implementation.cache_tag}.pyc")
                    sources[os.path.join(real, str(rel))] = (entry, pyc)
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # no plan (or not one of ours): every module is compiled as usual
        return sources

    def _manifest(self, entry: str) -> dict[str, str]:
        import json

        if entry not in self._manifests:
            try:
                with open(os.path.join(entry, "MANIFEST.json"), encoding="utf-8") as fh:
                    files = json.load(fh)["files"]
            except (OSError, ValueError, KeyError, TypeError):
                files = {}
            self._manifests[entry] = files if isinstance(files, dict) else {}
        return self._manifests[entry]

    def place(self, source: str, cfile: str) -> None:
        """Put the cached pyc of ``source`` at ``cfile`` when there is none yet and it passes
        the checks; anything wrong only means the import compiles it."""
        if self._sources is None:
            self._sources = self._load()
        found = self._sources.get(os.path.realpath(source))
        if found is None or os.path.exists(cfile):
            return
        import hashlib
        import struct

        entry, rel = found
        sha = self._manifest(entry).get(rel)
        cached = os.path.join(entry, rel)
        try:
            with open(cached, "rb") as fh:
                data = fh.read()
            with open(source, "rb") as fh:
                text = fh.read()
        except OSError:
            return
        if (sha is None or hashlib.sha256(data).hexdigest() != sha or len(data) < 16
                or data[:4] != importlib.util.MAGIC_NUMBER or struct.unpack("<L", data[4:8])[0] != 0b11
                or data[8:16] != importlib.util.source_hash(text)):
            return  # not a checked-hash pyc of this source, or not the entry's bytes
        tmp = f"{cfile}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            os.makedirs(os.path.dirname(cfile), exist_ok=True)
            try:
                os.link(cached, tmp)
            except OSError:  # another file system: a copy of the checked bytes
                with open(tmp, "wb") as fh:
                    fh.write(data)
            os.replace(tmp, cfile)  # several interpreters may place the same file: one wins
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _cache_outside(prefix: str, plan: str) -> None:
    """Keep the bytecode of modules outside the base interpreter's tree in ``prefix``;
    ``plan``: the bytecode cache's offer (see the module docs), if that file exists."""
    env = os.path.realpath(sys.prefix) + os.sep
    bases = tuple(os.path.realpath(p) + os.sep for p in (sys.base_prefix, sys.base_exec_prefix))
    offer = _Offer(plan) if os.path.isfile(plan) else None

    class CachedOutside(machinery.SourceFileLoader):
        def get_code(self, fullname: str) -> CodeType | None:
            # cache_from_source() and the write check read these two at call time; get_code
            # only reads and compiles (it imports nothing), so the switch is short and local.
            saved = sys.pycache_prefix, sys.dont_write_bytecode
            sys.pycache_prefix, sys.dont_write_bytecode = prefix, False
            try:
                if offer is not None:
                    offer.place(self.path, importlib.util.cache_from_source(self.path))
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
    _load("_pinfold_shared", "shared.py")  # first: _common.py uses it
    if args[:1] == ["--pycache"]:
        _cache_outside(args[1], os.path.join(args[1], sys.modules["_pinfold_shared"].BYTECODE_PLAN))
        args = args[2:]
    extra = []
    while args[:1] == ["--path"]:
        extra.append(args[1])
        args = args[2:]
    sys.path[0:0] = extra
    _load("_pinfold_common", "_common.py")
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    _main()
