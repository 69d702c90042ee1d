"""What builds, plans and checks report: progress events, stage reports, typed stage outputs.

The plan, each stage's output (:class:`CompileOutput`, :class:`PluginCachesOutput`,
:class:`ProbesOutput`) and the result of a build. Standard library only and apart from
:mod:`pinfold.pipeline`, so that the no-op fast path (:mod:`pinfold.uptodate`) can read
an environment's record (:mod:`pinfold.record`, which holds these types) and return a
:class:`BuildResult` without importing the pipeline.

Each type has ``to_json`` and a ``from_json`` that raises ``KeyError``, ``TypeError`` or
``ValueError`` on data it cannot take; the record reader turns those into "not known".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

__all__ = [
    "BuildResult",
    "CacheFile",
    "CompileOutput",
    "OnEvent",
    "Plan",
    "PluginCachesOutput",
    "ProbeResult",
    "ProbesOutput",
    "Progress",
    "StageEvent",
    "StageOutputs",
    "StageReport",
    "Status",
]

#: A probe's verdict. ``warn`` is a finding that does not fail the build (e.g. an allowed
#: reactor import).
Status = Literal["ok", "warn", "fail"]


def _is_strs(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def json_strs(value: object) -> tuple[str, ...]:
    """A JSON list of strings as a tuple; ``TypeError`` for anything else."""
    if not _is_strs(value):
        raise TypeError(f"expected a list of strings, got {value!r:.60}")
    return tuple(value)


def json_str(value: object) -> str:
    """A JSON string; ``TypeError`` for anything else."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r:.60}")
    return value


def json_number(value: object) -> float:
    """A JSON number (not a boolean) as a float; ``TypeError`` for anything else, ``ValueError``
    for an integer too large for a float (JSON allows any number of digits)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r:.60}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError("a number too large for a float") from None


def json_int(value: object) -> int:
    """A JSON integer (not a boolean); ``TypeError`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r:.60}")
    return value


def json_object(value: object) -> Mapping[str, Any]:
    """A JSON object; ``TypeError`` for anything else."""
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {value!r:.60}")
    return value


@dataclass(frozen=True, slots=True)
class StageEvent:
    """Progress: a stage started, finished or was skipped."""

    stage: str
    kind: Literal["start", "done", "skip"]
    seconds: float = 0.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress inside a running stage: how far it is, and what it does now.

    Sent as often as the work allows (each distribution, each probe, each batch of files);
    the CLI shows the latest one on its live line and in its heartbeat lines.
    """

    stage: str
    #: Units done so far, of ``total`` (None when the total is not known).
    done: int
    total: int | None = None
    #: What a unit is, plural: "distributions", "files", "probes".
    unit: str = ""
    #: What is being done now, e.g. "building legacy-proj (sdist)", or the slowest probe running.
    item: str = ""
    #: Bytes transferred so far (downloads: ``pinfold fetch``), or None when nothing is counted.
    bytes_done: int | None = None
    #: The bytes all the downloads will transfer, when their sizes are known, else None.
    bytes_total: int | None = None


#: Where progress goes: a stage's start and end (:class:`StageEvent`) and its steps (:class:`Progress`).
OnEvent = Callable[[StageEvent | Progress], None]


@dataclass(frozen=True, slots=True)
class StageReport:
    """How one stage went."""

    name: str
    status: Literal["ok", "skipped"]
    seconds: float
    detail: str

    @classmethod
    def from_json(cls, data: object) -> StageReport:
        """The inverse of ``dataclasses.asdict``."""
        data = json_object(data)
        status = data["status"]
        if status not in ("ok", "skipped"):
            raise ValueError(f"unknown stage status {status!r:.30}")
        return cls(json_str(data["name"]), status, json_number(data["seconds"]), json_str(data["detail"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What ``pinfold build`` would do now."""

    mode: Literal["noop", "update", "full"]
    #: Why: which inputs changed, or why a full build is needed.
    reasons: tuple[str, ...] = ()
    #: ``name==version`` pins to install (update: only those that moved or are new).
    install: tuple[str, ...] = ()
    #: Names to uninstall (update: pins removed from the lock, or whose hashes changed).
    remove: tuple[str, ...] = ()
    #: The current environment (the base of an update), if any.
    current: Path | None = None
    #: The digests of the spec's inputs, recorded in the new environment (not in ``to_json``).
    inputs: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"mode": self.mode, "reasons": list(self.reasons), "install": list(self.install),
                "remove": list(self.remove), "current": str(self.current) if self.current else None}

    @classmethod
    def from_json(cls, data: object) -> Plan:
        """The inverse of :meth:`to_json` (``inputs`` is not part of it: None)."""
        data = json_object(data)
        mode, current = data["mode"], data["current"]
        if mode not in ("noop", "update", "full"):
            raise ValueError(f"unknown plan mode {mode!r:.30}")
        return cls(mode=mode, reasons=json_strs(data["reasons"]), install=json_strs(data["install"]),
                   remove=json_strs(data["remove"]),
                   current=None if current is None else Path(json_str(current)))


@dataclass(frozen=True, kw_only=True, slots=True)
class CompileOutput:
    """What the compile stage found."""

    #: Files that do not compile (reported as warnings), as the compiler named them.
    failed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"failed": list(self.failed)}

    @classmethod
    def from_json(cls, data: object) -> CompileOutput:
        """The inverse of :meth:`to_json`."""
        return cls(failed=json_strs(json_object(data)["failed"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheFile:
    """One plugin cache the plugins stage wrote."""

    #: The plugin package, e.g. ``twisted.plugins``.
    package: str
    path: Path
    #: How many plugin modules its folder holds.
    modules: int
    mtime_ns: int
    #: Seconds its mtime was moved forward past the newest module (0.0 when not needed).
    raised: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"package": self.package, "path": str(self.path), "modules": self.modules,
                "mtime_ns": self.mtime_ns, "raised_seconds": round(self.raised, 6)}

    @classmethod
    def from_json(cls, data: object) -> CacheFile:
        """The inverse of :meth:`to_json`."""
        data = json_object(data)
        return cls(package=json_str(data["package"]), path=Path(json_str(data["path"])),
                   modules=json_int(data["modules"]), mtime_ns=json_int(data["mtime_ns"]),
                   raised=json_number(data["raised_seconds"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class PluginCachesOutput:
    """What the plugins stage wrote; the probes stage of the same build reads it."""

    #: Every plugin package: ``twisted.plugins``, those found, those listed.
    packages: tuple[str, ...]
    caches: tuple[CacheFile, ...]
    #: Old caches removed first.
    removed: tuple[Path, ...] = ()
    #: The read-only freshness test passed right after writing (the probes report it, not repeat it).
    fresh: bool = True
    #: Seconds between the newest plugin module and its cache, the smallest over the folders.
    margin: float | None = None
    #: Evidence the plugins stage's interpreter gathered for this build's probes (never written
    #: out): the plugin-hygiene children's findings and the installed distributions, as the
    #: inside scripts report them; None when the probes must gather it themselves.
    hygiene: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    distributions: tuple[dict[str, Any], ...] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"packages": list(self.packages), "caches": [c.to_json() for c in self.caches],
                "removed": [str(p) for p in self.removed], "fresh": self.fresh, "margin": self.margin}

    @classmethod
    def from_json(cls, data: object) -> PluginCachesOutput:
        """The inverse of :meth:`to_json`."""
        data = json_object(data)
        caches, fresh, margin = data["caches"], data["fresh"], data["margin"]
        if not isinstance(caches, list) or not isinstance(fresh, bool):
            raise TypeError("plugin caches: caches must be a list and fresh a boolean")
        return cls(packages=json_strs(data["packages"]), caches=tuple(CacheFile.from_json(c) for c in caches),
                   removed=tuple(Path(p) for p in json_strs(data["removed"])), fresh=fresh,
                   margin=None if margin is None else json_number(margin))


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeResult:
    """A probe's outcome, with its name and duration."""

    name: str
    status: Status
    seconds: float
    summary: str
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the form kept under ``facts["probes"]``)."""
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3),
                "summary": self.summary, "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, data: object) -> ProbeResult:
        """The inverse of :meth:`to_json`, checking every field (a record on disk may hold anything)."""
        data = json_object(data)
        if data["status"] not in ("ok", "warn", "fail"):
            raise ValueError(f"unknown probe status {data['status']!r:.30}")
        return cls(name=json_str(data["name"]), status=data["status"], seconds=json_number(data["seconds"]),
                   summary=json_str(data["summary"]), evidence=json_strs(data.get("evidence", [])))


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbesOutput:
    """What the probes stage found (a failed probe fails the stage instead: :class:`ProbeError`)."""

    #: Every probe's result, in report order.
    results: tuple[ProbeResult, ...]

    def to_json(self) -> list[dict[str, Any]]:
        """A JSON-ready list."""
        return [r.to_json() for r in self.results]

    @classmethod
    def from_json(cls, data: object) -> ProbesOutput:
        """The inverse of :meth:`to_json`."""
        if not isinstance(data, list):
            raise TypeError("probes: expected a list")
        return cls(results=tuple(ProbeResult.from_json(r) for r in data))


@dataclass(frozen=True, kw_only=True, slots=True)
class StageOutputs:
    """The outputs of the stages that ran (None: the stage was skipped or is not part of this run)."""

    compile: CompileOutput | None = None
    plugin_caches: PluginCachesOutput | None = None
    probes: ProbesOutput | None = None

    @property
    def probe_results(self) -> tuple[ProbeResult, ...]:
        """The probes' results, or () when the probes did not run."""
        return self.probes.results if self.probes is not None else ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with a key for each stage that ran, in stage order."""
        data: dict[str, Any] = {}
        if self.compile is not None:
            data["compile"] = self.compile.to_json()
        if self.plugin_caches is not None:
            data["plugin_caches"] = self.plugin_caches.to_json()
        if self.probes is not None:
            data["probes"] = self.probes.to_json()
        return data

    @classmethod
    def from_json(cls, data: object) -> StageOutputs:
        """The inverse of :meth:`to_json`."""
        data = json_object(data)
        compiled, caches, probes = data.get("compile"), data.get("plugin_caches"), data.get("probes")
        return cls(compile=None if compiled is None else CompileOutput.from_json(compiled),
                   plugin_caches=None if caches is None else PluginCachesOutput.from_json(caches),
                   probes=None if probes is None else ProbesOutput.from_json(probes))


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildResult:
    """What ``build`` or ``check`` did."""

    spec_file: Path
    #: ``path`` from env.yaml (a symlink) and the directory it points to.
    path: Path
    env_dir: Path
    #: True when nothing had changed and nothing was rebuilt.
    up_to_date: bool
    stages: tuple[StageReport, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    #: What the build did (None for ``check`` and for an environment found up to date).
    plan: Plan | None = None
    #: The outputs of the stages that ran.
    outputs: StageOutputs = field(default_factory=StageOutputs)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings); the plan and the outputs under ``facts``."""
        facts = self.outputs.to_json()
        if self.plan is not None:
            facts["plan"] = self.plan.to_json()
        return {"spec_file": str(self.spec_file), "path": str(self.path), "env_dir": str(self.env_dir),
                "up_to_date": self.up_to_date, "stages": [asdict(s) for s in self.stages],
                "warnings": list(self.warnings), "seconds": self.seconds, "facts": facts}
