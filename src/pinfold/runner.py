"""The one subprocess seam: every pip, virtualenv and target-Python call goes here.

Each command runs in an environment built from nothing: a few harmless variables
are copied from the caller, then pip's configuration is switched off. This is what
keeps a caller's ``PIP_FIND_LINKS``, ``PIP_INDEX_URL`` or pip config file from
widening the index of a build (see shared/notes/hermetic-builds.md, section 1):
pip's build subprocesses re-read the environment, so flags alone are not enough.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import CommandError

__all__ = ["Completed", "Runner", "scrubbed_environ"]

#: Copied from the caller: none of them can change what pip, uv or virtualenv install.
_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TERM", "SOURCE_DATE_EPOCH")

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


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished command: its argv, merged output and duration in seconds."""

    argv: tuple[str, ...]
    output: str
    seconds: float


class Runner:
    """Runs commands with a scrubbed environment and captured, optionally streamed, output.

    ``on_output`` receives each output line as it arrives (the CLI's ``-v``).
    """

    def __init__(self, on_output: Callable[[str], None] | None = None) -> None:
        self.on_output = on_output
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
    ) -> Completed:
        """Run ``argv``; raise :class:`CommandError` (naming ``what``) when it fails.

        ``what`` is the user-facing description: "installing the runtime lock".
        """
        args = tuple(str(a) for a in argv)
        self.history.append(args)
        start = time.monotonic()
        lines: list[str] = []
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
            )
        except OSError as exc:
            raise CommandError(
                f"{what} failed: cannot start {args[0]}", argv=args, returncode=-1, output=str(exc)
            ) from exc
        with proc:  # closes the pipe whatever happens
            assert proc.stdout is not None
            stdout = proc.stdout

            def pump() -> None:
                # A thread reads, so that wait() below can honour the timeout.
                for line in stdout:
                    lines.append(line)
                    if self.on_output is not None:
                        self.on_output(line.rstrip("\n"))

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            # A timer kills on timeout, so that wait() blocks in waitpid: wait(timeout=...)
            # polls with sleeps of up to 50 ms, paid at the end of every command.
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                proc.kill()

            timer = None
            if timeout is not None:
                timer = threading.Timer(timeout, expire)
                timer.daemon = True
                timer.start()
            try:
                returncode = proc.wait()
            except BaseException:
                # Ctrl-C or a kill of pinfold: never leave pip running on its own.
                proc.kill()
                proc.wait()
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if expired.is_set():
                reader.join(5)
                raise CommandError(
                    f"{what} timed out after {timeout:g} s",
                    argv=args,
                    returncode=-9,
                    output="".join(lines),
                )
            reader.join()
        output = "".join(lines)
        if check and returncode != 0:
            raise CommandError(f"{what} failed", argv=args, returncode=returncode, output=output)
        return Completed(args, output, time.monotonic() - start)
