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

#: The flags of a checked-hash pyc (PEP 552: hash-based, checked against its source), the
#: only kind the bytecode cache holds (compile.py's ``CHECKED``).
_CHECKED = 0b11


class _Offer:
    """What the bytecode cache holds for the environment's sources (the plan in the bytecode
    folder), placed there one pyc at a time as the imports need them.

    The entry layout must stay compile.py's: ``<root>/<cache_tag>-<magic hex>/<key>/`` (its
    ``interpreter_key()``), each pyc where the environment keeps it (its ``_Dist.rel_pyc``).
    """

    def __init__(self, plan: str) -> None:
        # Imported now, not in place(): that runs with the bytecode folder as the pycache
        # prefix, where a standard library module imported for the first time would be
        # compiled into it instead of read from its own __pycache__.
        import hashlib
        import json
        import struct

        self._hashlib, self._json, self._struct = hashlib, json, struct
        self.plan: str = plan
        self._sources: dict[str, tuple[str, str]] | None = None  # real source -> (entry, rel pyc)
        self._manifests: dict[str, dict[str, str]] = {}

    def _load(self) -> dict[str, tuple[str, str]]:
        sources: dict[str, tuple[str, str]] = {}
        tag = sys.implementation.cache_tag
        try:
            with open(self.plan, encoding="utf-8") as fh:
                plan = self._json.load(fh)
            folder = f"{tag}-{importlib.util.MAGIC_NUMBER.hex()}"
            for item in plan["dists"]:
                real = os.path.realpath(str(item["site"]))
                entry = os.path.join(str(plan["root"]), folder, str(item["key"]))
                for rel in item["sources"]:
                    head, name = os.path.split(str(rel))
                    pyc = os.path.join(head, "__pycache__", f"{name[:-3]}.{tag}.pyc")
                    sources[os.path.join(real, str(rel))] = (entry, pyc)
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # no plan (or not one of ours): every module is compiled as usual
        return sources

    def _manifest(self, entry: str) -> dict[str, str]:
        if entry not in self._manifests:
            try:
                with open(os.path.join(entry, "MANIFEST.json"), encoding="utf-8") as fh:
                    files = self._json.load(fh)["files"]
            except (OSError, ValueError, KeyError, TypeError):
                files = {}
            self._manifests[entry] = files if isinstance(files, dict) else {}
        return self._manifests[entry]

    def _valid(self, data: bytes, sha: str, source: bytes) -> bool:
        """The entry's bytes (its manifest's sha256), a checked-hash pyc of this very source."""
        return (self._hashlib.sha256(data).hexdigest() == sha and len(data) >= 16
                and data[:4] == importlib.util.MAGIC_NUMBER
                and self._struct.unpack("<L", data[4:8])[0] == _CHECKED
                and data[8:16] == importlib.util.source_hash(source))

    def place(self, source: str, cfile: str) -> None:
        """Put the cached pyc of ``source`` at ``cfile`` when there is none yet and it passes
        the checks; anything wrong only means the import compiles it."""
        if os.path.exists(cfile):  # placed (or compiled) by this or another final stage
            return
        if self._sources is None:
            self._sources = self._load()
        found = self._sources.get(os.path.realpath(source))
        if found is None:
            return
        entry, rel = found
        sha = self._manifest(entry).get(rel)
        if sha is None:
            return
        cached = os.path.join(entry, rel)
        tmp = f"{cfile}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            os.makedirs(os.path.dirname(cfile), exist_ok=True)
            try:
                # Linked first, then the link's bytes checked: what is checked is what is placed,
                # even if the entry is replaced meanwhile.
                os.link(cached, tmp)
                linked = True
            except OSError:
                linked = False  # another file system: a copy of the checked bytes
            with open(tmp if linked else cached, "rb") as fh:
                data = fh.read()
            with open(source, "rb") as fh:
                text = fh.read()
            if not self._valid(data, sha, text):
                raise OSError("not the entry's pyc of this source")
            if not linked:
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
            # and place() only read, link and compile (they import nothing), so the switch
            # is short and local.
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
