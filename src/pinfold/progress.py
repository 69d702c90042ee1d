"""What the CLI writes for people, on stderr: progress, then results, warnings and errors.

On a terminal, the running stage has a live line (what it does, how far, for how long),
replaced by the stage's summary line when it ends; warnings and errors are in colour.
Elsewhere (CI logs, pipes) every line is plain text without control characters, and a
long stage writes a heartbeat line (``[install] 3/120 distributions: ... (45s)``) whenever
nothing was written for :data:`HEARTBEAT` seconds (``PINFOLD_HEARTBEAT_SECONDS``), so that
a slow build can be told from a hung one. stdout stays for ``--json``.

Colour follows the conventions of no-color.org and force-color.org: ``NO_COLOR`` (not
empty) turns it off, and wins; ``FORCE_COLOR`` (not empty) turns it on even in a pipe
(colour only: the live line needs a terminal). ``-q`` keeps only the result and errors.

The terminal rendering is `rich`'s, imported on first use only: the no-op ``pinfold
build`` (one line, no stage) never loads it. Events arrive from any thread (the probes
run in a pool, the runner reads output in a thread): one lock keeps the lines whole.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping

from . import render

TYPE_CHECKING = False  # not typing's: see pinfold.errors
if TYPE_CHECKING:
    from typing import IO

    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from .results import Progress, StageEvent

__all__ = ["HEARTBEAT", "Output"]

#: Seconds without a line after which a running stage writes a heartbeat (not on a terminal).
HEARTBEAT = 10.0

#: The style of a line, by how it starts (render's prefixes): the rest is plain.
_STYLES = (
    ("error:", "bold red"),
    ("internal error:", "bold red"),
    ("warning:", "yellow"),
    ("tip:", "cyan"),
    ("  FAIL", "red"),
    ("  WARN", "yellow"),
)


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "") != ""


def _heartbeat_seconds(environ: Mapping[str, str]) -> float:
    try:
        seconds = float(environ.get("PINFOLD_HEARTBEAT_SECONDS", HEARTBEAT))
    except ValueError:
        return HEARTBEAT
    return seconds if seconds > 0 else HEARTBEAT


class Output:
    """Writes for humans on ``err``: live on a terminal, plain lines elsewhere.

    ``quiet`` (``-q``) keeps the result and errors only; ``verbose`` (``-v``) adds a line
    when a stage starts (the subprocesses' output is streamed by the runner).
    """

    def __init__(self, err: IO[str], *, verbose: bool = False, quiet: bool = False,
                 environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.err = err
        self.verbose = verbose
        self.quiet = quiet
        try:
            tty = err.isatty()
        except (AttributeError, ValueError):
            tty = False
        #: A live line: a terminal that can move its cursor, and progress asked for.
        self.live = tty and env.get("TERM", "") != "dumb" and not quiet
        self.colour = not _flag(env, "NO_COLOR") and (tty or _flag(env, "FORCE_COLOR"))
        self.heartbeat = _heartbeat_seconds(env)
        self._lock = threading.RLock()
        self._console: Console | None = None  # made on first use
        self._live: Live | None = None  # while a stage runs, on a terminal
        #: The running stage, since when, and its latest progress.
        self._stage: str | None = None
        self._since = 0.0
        self._latest: Progress | None = None
        self._written = time.monotonic()
        self._beating: threading.Thread | None = None
        self._closed = threading.Event()

    # -- lines --------------------------------------------------------------------------

    def _style(self, text: str) -> str | None:
        if not self.colour:
            return None
        return next((style for prefix, style in _STYLES if text.startswith(prefix)), None)

    def _rich(self) -> Console:
        if self._console is None:
            from rich.console import Console  # lazy: see the module's doc

            self._console = Console(file=self.err, force_terminal=self.live or self.colour,
                                    force_interactive=self.live, no_color=not self.colour,
                                    color_system="standard" if self.colour else None,
                                    highlight=False, markup=False, emoji=False, soft_wrap=True,
                                    _environ={})
        return self._console

    def _write(self, text: str) -> None:
        with self._lock:
            style = self._style(text)
            if style is None and self._live is None:
                print(text, file=self.err, flush=True)
            else:
                from rich.text import Text

                self._rich().print(Text(text, style=style or ""))
            self._written = time.monotonic()

    def line(self, text: str) -> None:
        """Something people may want to read (not with ``-q``)."""
        if not self.quiet:
            self._write(text)

    def lines(self, texts: Iterable[str]) -> None:
        """:meth:`line` for each."""
        for text in texts:
            self.line(text)

    def result(self, texts: Iterable[str]) -> None:
        """A command's outcome: always written."""
        self._end_live()
        for text in texts:
            self._write(text)

    def error(self, texts: Iterable[str]) -> None:
        """An error and its tip: always written."""
        self.result(texts)

    def subprocess_line(self, text: str) -> None:
        """One line of a command's output (``-v``)."""
        self.line(f"    {text}")

    # -- progress -----------------------------------------------------------------------

    def event(self, event: StageEvent | Progress) -> None:
        """A stage started, made progress, ended or was skipped."""
        from .results import StageEvent  # cheap: pinfold.results is standard library only

        if self.quiet:
            return
        with self._lock:
            if not isinstance(event, StageEvent):
                self._progress(event)
                return
            if event.kind == "start":
                self._start(event.stage)
                if self.verbose and not self.live:
                    self._write(f"[{event.stage}] ...")
                return
            self._end_live()
            self._stage = None
            if (text := render.event_line(event, verbose=self.verbose)) is not None:
                self._write(text)

    def progress(self, item: str | Progress) -> None:
        """What `pinfold lock` and `pinfold fetch` report: a message line, or how far they are."""
        if isinstance(item, str):
            self.line(item)
        else:
            self.event(item)

    def _start(self, stage: str, first: Progress | None = None) -> None:
        self._end_live()
        # The first progress is known before the live line is drawn: never a bare "running".
        self._stage, self._since, self._latest = stage, time.monotonic(), first
        if self.live:
            from rich.live import Live  # lazy: see the module's doc

            self._live = Live(console=self._rich(), get_renderable=self._renderable, transient=True,
                              refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        elif self._beating is None:
            self._beating = threading.Thread(target=self._beat, daemon=True, name="pinfold-heartbeat")
            self._beating.start()

    def _progress(self, progress: Progress) -> None:
        if self._stage != progress.stage:  # lock and fetch have no start event: their first step is one
            self._start(progress.stage, progress)
        self._latest = progress

    def _text(self) -> str:
        assert self._stage is not None
        return render.progress_line(self._stage, self._latest, time.monotonic() - self._since)

    def _renderable(self) -> Text:
        from rich.text import Text

        with self._lock:
            return Text(self._text() if self._stage is not None else "", style="bold" if self.colour else "",
                        no_wrap=True, overflow="ellipsis")

    def _end_live(self) -> None:
        with self._lock:
            if self._live is not None:
                live, self._live = self._live, None
                live.stop()  # transient: the live line is erased

    def _beat(self) -> None:
        """Not on a terminal: a line when a running stage has written nothing for a while."""
        tick = min(1.0, self.heartbeat / 5)
        while not self._closed.wait(tick):
            with self._lock:
                if self._stage is not None and time.monotonic() - self._written >= self.heartbeat:
                    self._write(self._text())

    def close(self) -> None:
        """The command is over: end the live line and the heartbeat."""
        self._closed.set()
        self._end_live()
        with self._lock:
            self._stage = None
