"""Sanity probes: small, independent checks of an environment, run in parallel.

A probe is a name and a function returning an :class:`Outcome`; :func:`run_probes`
runs them on threads (each one mostly waits for a subprocess), times each one, and
turns a probe that raises into a failed result instead of stopping the others.
What the probes of a build are is decided by the probes stage
(:mod:`pinfold.stages.s8_probes`); the checks live in :mod:`.plugins` (Twisted) and
:mod:`.environment`; :mod:`.report` renders results for people and for CI.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import PinfoldError
from ..results import ProbeResult, Status

__all__ = ["OnDone", "Outcome", "Probe", "ProbeResult", "Status", "run_probe", "run_probes"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What a probe found."""

    status: Status
    #: One line for the summary.
    summary: str
    #: The details behind a warning or failure, one finding per line.
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Probe:
    """A named check."""

    name: str
    check: Callable[[], Outcome]
    #: Rough cost: the costliest probes start first, so the slowest one does not start last.
    weight: float = 1.0
    #: The same check, already started by an earlier stage of the build (its evidence
    #: cannot change in between): :func:`run_probes` waits for it instead of running ``check``.
    started: Future[ProbeResult] | None = None


def run_probe(probe: Probe) -> ProbeResult:
    """Run one probe's check, timed; a probe that raises is a failed result."""
    start = time.monotonic()
    try:
        outcome = probe.check()
    except PinfoldError as exc:  # e.g. a command that could not start or timed out
        outcome = Outcome(status="fail", summary=exc.summary,
                          evidence=tuple(str(p) for p in exc.problems))
    except Exception as exc:  # a bug in a probe must not hide the other probes' results
        outcome = Outcome(status="fail", summary=f"the probe crashed: {type(exc).__name__}: {exc}")
    return ProbeResult(name=probe.name, status=outcome.status, seconds=time.monotonic() - start,
                       summary=outcome.summary, evidence=outcome.evidence)


#: Hears each probe that ends: probes done, of how many, and the longest-running one left ("" if none).
OnDone = Callable[[int, int, str], None]


def run_probes(probes: Sequence[Probe], *, jobs: int | None = None,
               on_done: OnDone | None = None) -> list[ProbeResult]:
    """Run ``probes`` in parallel; return their results in the order given."""
    if not probes:
        return []
    jobs = jobs or max(4, 2 * (os.cpu_count() or 2))
    order = sorted(range(len(probes)), key=lambda i: -probes[i].weight)
    pool = ThreadPoolExecutor(max_workers=min(jobs, len(probes)), thread_name_prefix="pinfold-probe")
    running: dict[str, float] = {}
    finished = 0
    lock = threading.Lock()

    def run(probe: Probe) -> ProbeResult:
        nonlocal finished
        with lock:
            running[probe.name] = time.monotonic()
        try:
            return probe.started.result() if probe.started is not None else run_probe(probe)
        finally:
            with lock:
                running.pop(probe.name, None)
                finished += 1
                slowest = min(running, key=running.__getitem__, default="")
                count = finished
            if on_done is not None:
                on_done(count, len(probes), slowest)

    try:
        futures = {i: pool.submit(run, probes[i]) for i in order}
        return [futures[i].result() for i in range(len(probes))]
    finally:
        # On Ctrl-C, probes not started yet never start; running ones end with their command.
        pool.shutdown(wait=True, cancel_futures=True)
