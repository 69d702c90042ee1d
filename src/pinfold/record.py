"""The environment record, ``pinfold.json``: what a finished environment was built from and holds.

Written last into a finished environment (:func:`write_record`, atomically), read by the
plan (:mod:`pinfold.changes`), the no-op fast path (:mod:`pinfold.uptodate`) and the lock
probe of ``pinfold check`` (:mod:`pinfold.stages.s8_probes`), all through
:func:`read_record`. The reader is lenient: a record that is missing, unparseable, from
a newer pinfold or otherwise not of the known shape reads as None, "not known", and the
callers then do a full build (or compare with the lock on disk).

Schemas: 1 is the record of pinfold before the ``schema`` key existed (the same keys, no
``schema``): it is read as it is. 2 adds ``schema``. Keys added since (``watch.develop``,
``watch.plugin_packages``, more ``inputs``) are optional to the reader: a record without
them reads, and is treated as "not known" where they matter. ``digest`` (the environment
digest, :mod:`pinfold.manifest`) is optional too: a record written before manifests has none,
and its environment none to check the files against. ``packed`` is only in the record of an
environment ``pinfold unpack`` placed (the pack's own document, :mod:`pinfold.pack`).
``checksum`` (:data:`pinfold.envlayout.CHECKSUM`, over the rest) is written with every record
and ignored by the reader: the no-op fast path trusts the shape of a record whose checksum
holds. The manifest itself lives beside the record (``pinfold-manifest.json``), written
first: the record, written last, finishes both.
Standard library only and cheap to import: the no-op fast path reads the record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .envlayout import CHECKSUM, SCHEMA, STATE_FILE, record_checksum
from .paths import write_atomic
from .results import (
    Plan,
    StageOutputs,
    StageReport,
    json_int,
    json_object,
    json_str,
    json_strs,
)

__all__ = ["SCHEMA", "STATE_FILE", "EnvRecord", "PythonRecord", "TreeState", "Watch", "read_digest",
           "read_record", "write_record"]



def _str_map(value: object) -> dict[str, str]:
    data = json_object(value)
    return {json_str(k): json_str(v) for k, v in data.items()}


@dataclass(frozen=True, kw_only=True, slots=True)
class PythonRecord:
    """The target interpreter the environment was built for."""

    #: The real (non-venv) executable.
    executable: str
    #: ``platform.python_version()``, e.g. ``3.11.9``.
    version: str
    #: e.g. ``cpython-311``.
    abi: str
    #: The PEP 508 marker environment (what an update evaluates the lock's markers with).
    markers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"executable": self.executable, "version": self.version, "abi": self.abi,
                "markers": dict(self.markers)}

    @classmethod
    def from_json(cls, data: object) -> PythonRecord:
        """The inverse of :meth:`to_json`."""
        data = json_object(data)
        return cls(executable=json_str(data["executable"]), version=json_str(data["version"]),
                   abi=json_str(data["abi"]), markers=_str_map(data["markers"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class TreeState:
    """What a develop tree holds that a build depends on, read without importing anything."""

    #: Its metadata files (``pyproject.toml``, ``setup.py``, ``setup.cfg``: what decides its
    #: dependencies and entry points), name -> sha256 of its bytes.
    metadata: dict[str, str] = field(default_factory=dict)
    #: Its Twisted plugin folders and their modules, relative POSIX paths: a folder ends in
    #: ``/`` (value ``"folder"``), a module maps to ``"<size>:<mtime_ns>"`` (Twisted judges its
    #: caches by mtime, so a touched module counts as changed).
    plugins: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"metadata": dict(self.metadata), "plugins": dict(self.plugins)}

    @classmethod
    def from_json(cls, data: object) -> TreeState:
        """The inverse of :meth:`to_json`."""
        data = json_object(data)
        return cls(metadata=_str_map(data["metadata"]), plugins=_str_map(data["plugins"]))


def _stamp(data: object) -> dict[str, list[int] | None] | None:
    """``Watch.interpreter`` from JSON: absent (an older record) is None."""
    if data is None:
        return None
    out: dict[str, list[int] | None] = {}
    for path, ident in json_object(data).items():
        if ident is not None and not isinstance(ident, list):
            raise TypeError(f"expected a list of integers, got {ident!r:.60}")
        out[json_str(path)] = None if ident is None else [json_int(n) for n in ident]
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Watch:
    """What the no-op fast path must find unchanged: everything validating env.yaml read."""

    #: env.yaml, absolute.
    spec: str
    #: Every file read (env.yaml, the locks, the needs files and their includes): path ->
    #: sha256 of its bytes.
    files: dict[str, str]
    #: Folders that had to exist: the wheelhouses and the develop trees.
    folders: tuple[str, ...]
    #: The interpreter env.yaml named (as found on PATH or relative to env.yaml).
    python: str
    #: Each develop tree (absolute) -> its metadata and plugin modules. None in a record
    #: written before pinfold watched them: not known, so never up to date by the fast path.
    develop: dict[str, TreeState] | None = None
    #: ``final.plugin_caches.packages``: plugin packages whose folders a develop tree may hold.
    plugin_packages: tuple[str, ...] = ()
    #: The files that decide what ``python`` runs as (see :func:`pinfold.uptodate.interpreter_stamp`):
    #: path -> ``[st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns]``, or None for a file that
    #: was not there. None: not known (a script, a shared or framework build), so the fast path
    #: starts the interpreter to learn its identity.
    interpreter: dict[str, list[int] | None] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {"spec": self.spec, "files": dict(self.files),
                               "folders": list(self.folders), "python": self.python,
                               "plugin_packages": list(self.plugin_packages)}
        if self.develop is not None:
            out["develop"] = {tree: state.to_json() for tree, state in self.develop.items()}
        if self.interpreter is not None:
            out["interpreter"] = {path: None if ident is None else list(ident)
                                  for path, ident in self.interpreter.items()}
        return out

    @classmethod
    def from_json(cls, data: object) -> Watch:
        """The inverse of :meth:`to_json`; ``develop`` and ``plugin_packages`` may be absent."""
        data = json_object(data)
        develop = data.get("develop")
        return cls(spec=json_str(data["spec"]), files=_str_map(data["files"]),
                   folders=json_strs(data["folders"]), python=json_str(data["python"]),
                   develop=None if develop is None else {
                       json_str(tree): TreeState.from_json(state)
                       for tree, state in json_object(develop).items()},
                   plugin_packages=json_strs(data.get("plugin_packages", [])),
                   interpreter=_stamp(data.get("interpreter")))


@dataclass(frozen=True, kw_only=True, slots=True)
class EnvRecord:
    """One finished environment's record (``pinfold.json``)."""

    #: The record's layout version (:data:`SCHEMA` when written by this pinfold).
    schema: int = SCHEMA
    #: One digest of ``inputs``.
    fingerprint: str
    #: Digests of what the environment was built from: ``env.yaml``, ``requirements``,
    #: ``build_requirements``, ``python`` (the interpreter's identity), ``pinfold`` (its
    #: version), ``compile`` and ``installer`` (their values), and per develop tree
    #: ``develop <tree>`` and ``plugins <tree>`` (digests of its :class:`TreeState` parts).
    #: Older records lack the later keys: the plan then counts them as changed.
    inputs: dict[str, str]
    #: What the no-op fast path checks.
    watch: Watch
    #: The pinfold version that built it.
    pinfold: str
    #: The env.yaml it was built from.
    spec: Path
    #: The target interpreter.
    python: PythonRecord
    #: The runtime pins installed, ``name==version``, sorted.
    installed: tuple[str, ...]
    #: The hashes the lock gave each installed pin: name -> sorted ``sha256:...``.
    hashes: dict[str, tuple[str, ...]]
    #: The develop trees installed editable.
    develop: tuple[Path, ...] = ()
    #: What the build did.
    plan: Plan
    #: How each stage went.
    stages: tuple[StageReport, ...] = ()
    #: The stage outputs (kept under ``facts`` in the file, as in ``--json``).
    outputs: StageOutputs = field(default_factory=StageOutputs)
    #: The environment digest over its manifest (``sha256:...``); None in an older record.
    digest: str | None = None
    #: For an environment placed by ``pinfold unpack``: the pack's own document (what
    #: ``pinfold check --path`` reads instead of env.yaml, see :mod:`pinfold.pack`); None
    #: for one built here.
    packed: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, the file's content."""
        return {
            **({"digest": self.digest} if self.digest is not None else {}),
            **({"packed": self.packed} if self.packed is not None else {}),
            "schema": self.schema,
            "fingerprint": self.fingerprint,
            "inputs": dict(self.inputs),
            "watch": self.watch.to_json(),
            "pinfold": self.pinfold,
            "spec": str(self.spec),
            "python": self.python.to_json(),
            "installed": list(self.installed),
            "hashes": {name: list(hashes) for name, hashes in self.hashes.items()},
            "develop": [str(d) for d in self.develop],
            "plan": self.plan.to_json(),
            "stages": [{"name": s.name, "status": s.status, "seconds": s.seconds, "detail": s.detail}
                       for s in self.stages],
            "facts": self.outputs.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> EnvRecord:
        """The inverse of :meth:`to_json`; raises ``KeyError``, ``TypeError`` or ``ValueError``.

        A record without ``schema`` is schema 1; one from a newer pinfold is refused.
        """
        data = json_object(data)
        schema = data.get("schema", 1)
        if isinstance(schema, bool) or not isinstance(schema, int) or not 1 <= schema <= SCHEMA:
            raise ValueError(f"unknown record schema {schema!r:.30}")
        stages = data["stages"]
        if not isinstance(stages, list):
            raise TypeError("stages: expected a list")
        return cls(
            schema=schema,
            fingerprint=json_str(data["fingerprint"]),
            inputs=_str_map(data["inputs"]),
            watch=Watch.from_json(data["watch"]),
            pinfold=json_str(data["pinfold"]),
            spec=Path(json_str(data["spec"])),
            python=PythonRecord.from_json(data["python"]),
            installed=json_strs(data["installed"]),
            hashes={json_str(k): json_strs(v) for k, v in json_object(data["hashes"]).items()},
            develop=tuple(Path(d) for d in json_strs(data["develop"])),
            plan=Plan.from_json(data["plan"]),
            stages=tuple(StageReport.from_json(s) for s in stages),
            outputs=StageOutputs.from_json(data["facts"]),
            digest=None if data.get("digest") is None else json_str(data["digest"]),
            packed=None if data.get("packed") is None else dict(json_object(data["packed"])),
        )


def read_record(env_dir: Path) -> EnvRecord | None:
    """The record of the environment in ``env_dir``, or None when there is none it can read.

    None (missing, unparseable, foreign or of an unknown schema) means "not known": do a
    full build. Never raises for the file's content.
    """
    try:
        data = json.loads((env_dir / STATE_FILE).read_bytes())
        return EnvRecord.from_json(data)
    # JSONDecodeError is a ValueError; a 400-digit number where a float belongs overflows, and
    # lists nested thousands deep recurse past the limit.
    except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None


def read_digest(env_dir: Path) -> str | None:
    """The environment digest the record in ``env_dir`` holds, or None (none, or not readable).

    Reads only that key, not the whole record's shape: cheap, for the end of a build and
    the no-op fast path's report.
    """
    try:
        data = json.loads((env_dir / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    value = data.get("digest") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def write_record(env_dir: Path, record: EnvRecord) -> None:
    """Write ``record`` into ``env_dir`` atomically: a reader sees the old file or the new one.

    With its :data:`~pinfold.envlayout.CHECKSUM`, taken over the values as they read back (JSON
    has lists, not tuples, and string keys only).
    """
    data = json.loads(json.dumps(record.to_json()))
    data[CHECKSUM] = record_checksum(data)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_atomic(env_dir / STATE_FILE, text.encode("utf-8"))
