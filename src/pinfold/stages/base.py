"""What every stage shares: the context it reads and writes, and the stage base class."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..errors import Problem
from ..index import ArtifactIndex
from ..interpreter import Interpreter
from ..manifest import HashMemo
from ..preflight import PreflightReport
from ..results import ProbeResult, Progress, StageOutputs
from ..runner import Runner
from ..spec import Spec
from ..target import Target

__all__ = ["Context", "Stage"]


@dataclass(kw_only=True)
class Context:
    """One build's shared state. Stages fill in what later stages need."""

    spec: Spec
    runner: Runner
    index: ArtifactIndex
    #: The directory being built (a new versioned directory, or an existing one for `check`).
    env_dir: Path
    interpreter: Interpreter | None = None
    preflight: PreflightReport | None = None
    #: Findings that do not fail the build, shown to the user.
    warnings: list[str] = field(default_factory=list)
    #: The typed outputs of the stages that ran, for the result and for later stages
    #: (the probes read the plugin caches written).
    outputs: StageOutputs = field(default_factory=StageOutputs)
    #: For an environment without bytecode (``compile: false``): a temporary folder where
    #: the final stages keep the bytecode of what they import (see :class:`Target`).
    pycache: Path | None = None
    #: Launchers in ``bin_dir`` this env.yaml wrote and no longer lists (the scripts stage):
    #: removed by the pipeline only once the new environment is switched in.
    stale_launchers: list[Path] = field(default_factory=list)
    #: Probes an earlier stage started ahead of the probes stage, by probe name (the plugins
    #: stage starts those whose evidence the stages in between cannot change).
    started_probes: dict[str, Future[ProbeResult]] = field(default_factory=dict)
    #: The build's hashes of its files (the clone's carried ones, uv's RECORD check's, the
    #: pycs the compile stage linked), which the final scan takes instead of reading a file
    #: again; None outside a build.
    hashes: HashMemo | None = None
    #: A check of the installed files an earlier stage left running in a thread (uv's
    #: RECORD check, see :data:`~pinfold.installers.base.PendingCheck`): only a stage that
    #: declares :attr:`Stage.overlaps_checks` runs before it is settled (:meth:`settle`).
    pending_check: Future[str] | None = None
    #: Where stages report how far they are (the CLI's live line); called from any thread.
    on_progress: Callable[[Progress], None] = lambda _: None

    def start_check(self, check: Callable[[], str]) -> None:
        """Run ``check`` in a thread of its own while the next stages work (see :meth:`settle`)."""
        assert self.pending_check is None, "one pending check at a time"
        future: Future[str] = Future()

        def run() -> None:
            try:
                future.set_result(check())
            except BaseException as exc:  # the settling stage raises it
                future.set_exception(exc)

        self.pending_check = future  # first: an interrupt after the start still finds it
        try:
            threading.Thread(target=run, name="pinfold-record-check", daemon=True).start()
        except RuntimeError:  # no thread to be had (a process at its limit): check in place
            run()

    def settle(self) -> str | None:
        """Wait for the pending check, if any: what it reports, or None when there was none.
        Raises what the check raised (a :class:`~pinfold.errors.BuildError` for a file
        that differs from its wheel). A wait that is interrupted (Ctrl-C) leaves the check
        pending, for :meth:`abandon`."""
        pending = self.pending_check
        if pending is None:
            return None
        try:
            return pending.result()
        finally:
            if pending.done():
                self.pending_check = None

    def abandon(self) -> None:
        """Wait for the pending check to end without its verdict (the build failed already):
        the environment it reads is about to be removed."""
        pending = self.pending_check
        if pending is not None:
            wait([pending])
            self.pending_check = None

    @property
    def env_python(self) -> Path:
        """The environment's interpreter."""
        return self.env_dir / "bin" / "python"

    @property
    def target(self) -> Target:
        """The environment's interpreter as the final stages run it."""
        return Target(self.env_python, self.pycache)


class Stage(ABC):
    """One step of the build. Which stages a build runs (a full build or an update) is the
    pipeline's choice; a stage does its one job."""

    #: Short name shown in progress lines and JSON.
    name: ClassVar[str]
    #: Whether the stage may start while a check of the installed files is still running
    #: (``Context.pending_check``): it then settles the check itself before it trusts them.
    overlaps_checks: ClassVar[bool] = False

    def problems(self, ctx: Context) -> list[Problem]:
        """What makes this stage impossible, found before anything is touched (default: nothing)."""
        return []

    def skip_reason(self, ctx: Context) -> str | None:
        """Why the stage has nothing to do in this build, or None (default: it always runs)."""
        return None

    def progress(self, ctx: Context, done: int, total: int | None = None, *, unit: str = "",
                 item: str = "") -> None:
        """Report how far this stage is (see :class:`~pinfold.results.Progress`)."""
        ctx.on_progress(Progress(self.name, done, total, unit, item))

    @abstractmethod
    def run(self, ctx: Context) -> str:
        """Do the work (storing any typed output in ``ctx.outputs``); return a one-line detail
        for the progress line."""
