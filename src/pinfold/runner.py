"""The one subprocess seam: every pip, virtualenv and target-Python call goes here.

Each command runs in an environment built from nothing: a few harmless variables
are copied from the caller, then pip's configuration is switched off. This is what
keeps a caller's ``PIP_FIND_LINKS``, ``PIP_INDEX_URL`` or pip config file from
widening the index of a build: pip's build subprocesses re-read the environment, so
flags alone are not enough.

Each command also runs in its own session (so its own process group), under a
timeout, and keeps a bounded tail of its output in memory. When the command ends --
it exited, timed out, or pinfold was interrupted -- the whole group ends with it:
SIGTERM, a short grace, then SIGKILL. So neither a build backend nor a probe's
background process outlives the call, and none of them can make pinfold wait for it
(a background process holding the output pipe open is ended, not waited for).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import CommandError

TYPE_CHECKING = False  # not typing's: see pinfold.errors
if TYPE_CHECKING:
    import subprocess

__all__ = [
    "DEFAULT_TIMEOUT",
    "OUTPUT_LIMIT",
    "Completed",
    "Runner",
    "Terminated",
    "end_running_commands",
    "redact",
    "resume_commands",
    "scrubbed_environ",
]

#: Seconds a command may run when its caller gives no timeout: generous enough for an
#: install that builds sdists, finite so that nothing can hang pinfold forever.
DEFAULT_TIMEOUT = 3600.0

#: Characters of a command's output kept in memory (the tail; earlier lines are counted
#: and dropped). pip-compile --verbose prints well under 1 MB on a lock of a hundred pins,
#: and what is parsed from failures (ResolutionImpossible, "Failed to build") is near the
#: end, so 8 MiB keeps every parser working while an endless printer cannot grow memory.
OUTPUT_LIMIT = 8 * 1024 * 1024

#: A line longer than this is read (kept, streamed) in pieces of this many characters,
#: so that output without any newline is bounded too.
_PIECE = 64 * 1024

#: Seconds between SIGTERM and SIGKILL when a command's process group is ended.
_GRACE = 2.0

#: Seconds to wait for the output reader once the group is gone: only a process that
#: left the group (its own setsid) can still hold the pipe, and pinfold does not wait for it.
_READER_JOIN = 2.0

#: Copied from the caller: none of them can change what pip, uv or virtualenv install.
#: NETRC only says where pip and uv find an index's credentials (default ``~/.netrc``).
_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TERM", "SOURCE_DATE_EPOCH", "NETRC")

#: Copied only for commands that go online on purpose (``pinfold fetch``): they choose
#: how to reach an index (certificates, proxies), never which index.
_KEEP_ONLINE = (
    "PIP_CERT",
    "PIP_CLIENT_CERT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)

#: Set for every command. PIP_CONFIG_FILE=/dev/null is the only value that makes pip
#: skip every config file, the global ones included.
_FIXED = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PIP_PROGRESS_BAR": "off",
    "PYTHONNOUSERSITE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "UV_NO_CONFIG": "1",
    "VIRTUALENV_CONFIG_FILE": os.devnull,
}


#: ``scheme://userinfo@``: the part of a URL that holds a user and password (or a token).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/\s@]+)@")


def redact(text: str) -> str:
    """``text`` with every URL password (or token) shown as ``****``: ``https://user:****@host``.

    What pinfold shows or keeps of a command (a failed command's argv and output, ``-v``
    lines) and every message naming an index pass through this; pip and uv get the real URL.
    """
    def hide(m: re.Match[str]) -> str:
        user, colon, _ = m["info"].partition(":")
        return f"{m['scheme']}{user}:****@" if colon else f"{m['scheme']}****@"

    return _USERINFO.sub(hide, text) if "@" in text else text


def scrubbed_environ(
    extra: Mapping[str, str] | None = None,
    *,
    online: bool = False,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the environment a command runs in: copied allow-list, fixed values, ``extra``."""
    src = os.environ if source is None else source
    keep = _KEEP + _KEEP_ONLINE if online else _KEEP
    env = {k: src[k] for k in keep if k in src}
    env.setdefault("PATH", os.defpath)
    env.update(_FIXED)
    if extra:
        env.update(extra)
    return env


class Terminated(BaseException):
    """pinfold itself was asked to stop (SIGTERM, SIGHUP): raised like a KeyboardInterrupt.

    The CLI's signal handlers raise it in the main thread, so that every cleanup path that
    runs for Ctrl-C runs for it too: the runner ends the command's process group, the
    pipeline removes the half-built environment. A BaseException, not an Exception, for
    the same reason KeyboardInterrupt is one: ``except Exception`` must not swallow it.
    The library never installs signal handlers; only the CLI does.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


class Completed:  # a plain class: see pinfold.errors.Problem
    """A finished command: its argv, merged output and duration in seconds.

    ``output`` is the tail of at most :data:`OUTPUT_LIMIT` characters; when earlier
    output was dropped it starts with a line saying how much, also in ``dropped_lines``
    and ``dropped_chars``. ``returncode`` is the exit status (0 unless the command was run
    with ``check=False``).
    """

    __slots__ = ("argv", "dropped_chars", "dropped_lines", "output", "returncode", "seconds")

    def __init__(self, argv: tuple[str, ...], output: str, seconds: float, dropped_lines: int = 0,
                 dropped_chars: int = 0, returncode: int = 0) -> None:
        self.argv = argv
        self.output = output
        self.seconds = seconds
        self.dropped_lines = dropped_lines
        self.dropped_chars = dropped_chars
        self.returncode = returncode

    def __repr__(self) -> str:
        return f"Completed(argv={self.argv!r}, returncode={self.returncode}, seconds={self.seconds:.3f})"


class _Tail:
    """The last ``limit`` characters of output, in pieces, with a count of what was dropped.

    Written by the reader thread, read by the caller: a lock keeps the two apart (the
    caller may read while the reader of an escaped process still runs).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: deque[str] = deque()
        self.size = 0
        self.dropped_lines = 0
        self.dropped_chars = 0
        self.lock = threading.Lock()

    def add(self, piece: str) -> None:
        with self.lock:
            self.pieces.append(piece)
            self.size += len(piece)
            while self.size > self.limit and len(self.pieces) > 1:
                old = self.pieces.popleft()
                self.size -= len(old)
                self.dropped_chars += len(old)
                self.dropped_lines += old.endswith("\n")

    def text(self) -> str:
        with self.lock:
            body = "".join(self.pieces)
            if not self.dropped_chars:
                return body
            return (f"[pinfold: the first {self.dropped_chars} characters of output "
                    f"({self.dropped_lines} lines) were not kept; run with -v to see them]\n{body}")


def _signal_group(pgid: int, signum: int) -> None:
    # Already gone, or a member that is no longer ours to signal (it ran a setuid program).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is still in the group ``pgid``.

    Zombies count as members for kill(2), and an orphan stays a zombie for as long as
    its new parent does not reap it (PID 1 of some containers never does), so
    ``killpg(pgid, 0)`` alone would wait out the grace for processes already dead.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no procfs: assume the worst, the caller escalates to SIGKILL
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _end_group(proc: subprocess.Popen[str], grace: float = _GRACE) -> None:
    """End the command's whole process group: SIGTERM, up to ``grace`` seconds, SIGKILL.

    Returns once the leader is reaped and no live member is left. The group's id is
    the leader's pid: the caller has not reaped the leader, and once this reaps it, the
    members left keep the id from being reused, so the signals reach only the group.
    """
    pgid = proc.pid
    try:
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None or _group_alive(pgid):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
    finally:
        # Also reached when a second Ctrl-C cuts the grace short: never leave the group.
        if proc.poll() is None or _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        proc.wait()


class _Watch:
    """Ends one command's process group when its time is up, or early when asked to.

    One daemon thread per command waits for the first of: the timeout, :meth:`end`
    (:func:`end_running_commands`, from any thread), :meth:`done` (the command exited).
    Ending sends SIGTERM to the group, then SIGKILL after a grace if the leader still runs.
    The caller reaps the leader only after :meth:`done`, so the group id stays the group's.
    """

    def __init__(self, pgid: int, timeout: float) -> None:
        self.pgid = pgid
        self.timeout = timeout
        self.expired = False
        self.stopped = False
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="pinfold-watch")

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        self._wake.wait(self.timeout)
        if self._finished.is_set():
            return
        self.expired = not self.stopped
        _signal_group(self.pgid, signal.SIGTERM)
        if not self._finished.wait(_GRACE):
            _signal_group(self.pgid, signal.SIGKILL)

    def end(self) -> None:
        """Ask for the group to be ended now; returns at once (safe in a signal handler)."""
        self.stopped = True
        self._wake.set()

    def done(self) -> None:
        """The leader exited (or the caller unwinds): stop watching, before it is reaped."""
        self._finished.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()


#: The commands running now, in every thread and Runner, for end_running_commands().
_RUNNING: set[_Watch] = set()
#: Reentrant: end_running_commands() may run in a signal handler that interrupted the
#: main thread while it held this lock.
_RUNNING_LOCK = threading.RLock()
_refusing = False


def end_running_commands() -> None:
    """End every command now running (any thread, any Runner) and refuse new ones.

    For a signal handler of the program that embeds pinfold (the CLI's): the main thread
    gets the exception and cleans up, but commands waited for in other threads (the probes
    run in a thread pool) would run to their end, and the pool waits for them. Returns at
    once; each command's own thread ends its group (SIGTERM, grace, SIGKILL) and raises
    :class:`CommandError`. Until :func:`resume_commands`, :meth:`Runner.run` refuses to start
    anything.
    """
    global _refusing
    with _RUNNING_LOCK:
        _refusing = True
        watches = list(_RUNNING)
    for watch in watches:
        watch.end()


def resume_commands() -> None:
    """Let :meth:`Runner.run` start commands again after :func:`end_running_commands`."""
    global _refusing
    with _RUNNING_LOCK:
        _refusing = False


class Runner:
    """Runs commands with a scrubbed environment and captured, optionally streamed, output.

    ``on_output`` receives each output line as it arrives (the CLI's ``-v``), every line,
    however many are dropped from memory. ``timeout`` is the default of :meth:`run`;
    ``output_limit`` the characters of output kept per command.
    """

    def __init__(self, on_output: Callable[[str], None] | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, output_limit: int = OUTPUT_LIMIT) -> None:
        self.on_output = on_output
        self.timeout = timeout
        self.output_limit = output_limit
        #: Every argv run, in order: lets callers and tests see what was started.
        self.history: list[tuple[str, ...]] = []

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        what: str,
        env: Mapping[str, str] | None = None,
        online: bool = False,
        cwd: Path | None = None,
        timeout: float | None = None,
        check: bool = True,
        on_line: Callable[[str], None] | None = None,
    ) -> Completed:
        """Run ``argv``; raise :class:`CommandError` (naming ``what``) when it fails.

        ``what`` is the user-facing description: "installing the runtime lock".
        ``timeout`` is in seconds; None means the runner's (:data:`DEFAULT_TIMEOUT` unless
        set), never "forever". Whatever ends the call -- the command's exit, its timeout,
        an exception in the waiting thread (Ctrl-C, :class:`Terminated`) -- ends the
        command's whole process group before it returns or raises. ``on_line`` receives each
        output line of this command, like the runner's ``on_output`` (e.g. to count progress).
        """
        # Here, not at the top: the no-op fast path makes a Runner and, while the interpreter
        # is known by its files, starts nothing (subprocess and selectors: ~2 ms).
        import subprocess

        args = tuple(str(a) for a in argv)
        limit = self.timeout if timeout is None else timeout
        self.history.append(args)
        start = time.monotonic()
        tail = _Tail(self.output_limit)
        with _RUNNING_LOCK:  # started and registered together: a stop cannot slip in between
            if _refusing:
                raise CommandError(f"{what}: not started, pinfold is stopping",
                                   argv=[redact(a) for a in args], returncode=-1, output="")
            try:
                proc = subprocess.Popen(
                    args,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=scrubbed_environ(env, online=online),
                    cwd=cwd,
                    text=True,
                    errors="replace",
                    # Its own session, so its own process group: the group is what gets
                    # ended, and a Ctrl-C at the terminal reaches pinfold alone, which ends it.
                    start_new_session=True,
                )
            except OSError as exc:
                raise CommandError(f"{what} failed: cannot start {args[0]}",
                                   argv=[redact(a) for a in args], returncode=-1, output=str(exc)) from exc
            # A thread ends the group on timeout, so that the wait below blocks in the
            # kernel: wait(timeout=...) polls with sleeps of up to 50 ms, paid by every command.
            watch = _Watch(proc.pid, limit)
            _RUNNING.add(watch)
        assert proc.stdout is not None
        stdout = proc.stdout
        listeners = [f for f in (self.on_output, on_line) if f is not None]

        def pump() -> None:
            # A thread reads, so that the wait below can honour the timeout. readline with a
            # size: a line without end arrives in pieces instead of growing one string.
            while piece := stdout.readline(_PIECE):
                tail.add(piece)
                for listener in list(listeners):
                    try:
                        listener(redact(piece.rstrip("\n")))
                    except Exception:  # a broken terminal must not stop the draining
                        listeners.remove(listener)

        reader = threading.Thread(target=pump, daemon=True, name="pinfold-output")
        try:
            reader.start()
            watch.start()
            try:
                # Wait for the exit without reaping: until the watch is done, the group id
                # cannot be reused, whatever signal the watch sends.
                if hasattr(os, "waitid"):
                    with contextlib.suppress(ChildProcessError):
                        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                else:  # pragma: no cover - reaped at once; the watch's late signal is a no-op
                    proc.wait()
            finally:
                watch.done()
            # The command is done: what it left running in its group (a background
            # process, maybe holding the pipe open) is ended with it, not waited for.
            # Ended before the leader is reaped: its zombie keeps the group id ours.
            _end_group(proc)
            returncode = proc.wait()
        except BaseException:
            # Ctrl-C or a termination of pinfold: never leave pip or a backend running on its own.
            _end_group(proc)
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(watch)
            reader.join(_READER_JOIN)
            if not reader.is_alive():  # else a process outside the group holds the pipe: leave it
                stdout.close()
        # What is shown of the command (argv, output) never holds an index's password.
        output = redact(tail.text())
        args = tuple(redact(a) for a in args)
        if watch.expired:
            raise CommandError(
                f"{what} timed out after {limit:g} s", argv=args, returncode=-9, output=output
            )
        if watch.stopped:
            raise CommandError(f"{what} stopped: pinfold is stopping", argv=args,
                               returncode=returncode, output=output)
        if check and returncode != 0:
            raise CommandError(f"{what} failed", argv=args, returncode=returncode, output=output)
        return Completed(args, output, time.monotonic() - start, tail.dropped_lines,
                         tail.dropped_chars, returncode)
