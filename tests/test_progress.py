"""Live progress: the real `pinfold` command in a pseudo-terminal, in a pipe, with -q and colours.

On a terminal the running stage has a live line that is replaced by its summary line; in
a pipe there are only plain lines, with a heartbeat during a long stage
(PINFOLD_HEARTBEAT_SECONDS shortens its interval for the test).
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinfold.progress import Output
from pinfold.render import progress_line
from pinfold.results import Progress, StageEvent
from tests.artifacts import make_wheel
from tests.conftest import write

#: Any control sequence or carriage return: none may reach a log.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _project(root: Path, *, sleep: int) -> Path:
    """One wheel, and a probe command that runs for ``sleep`` seconds (the long stage)."""
    wheel = make_wheel(root / "wheelhouse", "plain-wheel", "1.0")
    write(root / "runtime.txt", f"plain-wheel==1.0 \\\n    --hash=sha256:{wheel.sha256}\n")
    return write(root / "env.yaml", (
        "version: 1\npath: env\nindex:\n  find_links: [wheelhouse]\nrequirements: runtime.txt\n"
        f"final:\n  probes:\n    commands:\n      - [sleep, '{sleep}']\n"))


def _environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    return {**env, **extra}


def _in_terminal(argv: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run ``argv`` with stderr (and stdin, stdout) on a pseudo-terminal; all it wrote, raw."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env,
                            close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_a_terminal_gets_a_live_line_replaced_by_the_summary(tmp_path: Path) -> None:
    spec = _project(tmp_path, sleep=3)
    code, out = _in_terminal([sys.executable, "-m", "pinfold", "build", str(spec)],
                             _environ(TERM="xterm", NO_COLOR="1"))
    assert code == 0, out
    # The probes' live line names the slow probe still running, with how far the stage is.
    live = out.find("[probes] 2/3 probes: running command sleep 3")
    assert live >= 0, out
    summary = out.find("[probes]   ", live)
    assert summary > live, out
    # Between the two, rich erases the live line (carriage return, erase line) before the summary.
    between = out[live:summary]
    assert "\r" in between and "\x1b[2K" in between, repr(between)
    assert "[install] " in out and "distributions" in out, out
    # The summary lines stay; no live line is left on the screen at the end.
    assert re.search(r"\[install\] +\d+\.\d+s  1 distributions with pip", out), out
    # The result ends it: the build line, then the environment's digest.
    last = out.rstrip().splitlines()[-2:]
    assert last[0].startswith("built ") and last[1].startswith("  environment digest sha256:"), last
    assert "\x1b[3" not in out, "NO_COLOR: no colour"


@pytest.mark.slow
def test_a_pipe_gets_plain_lines_and_a_heartbeat(tmp_path: Path) -> None:
    spec = _project(tmp_path, sleep=7)
    done = subprocess.run([sys.executable, "-m", "pinfold", "build", "--json", str(spec)],
                          capture_output=True, text=True, env=_environ(PINFOLD_HEARTBEAT_SECONDS="2"),
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert not _CONTROL.search(done.stderr.replace("\n", "")), repr(done.stderr)
    beat = "[probes] 2/3 probes: running command sleep 7 ("
    beats = [ln for ln in done.stderr.splitlines() if ln.startswith(beat)]
    assert len(beats) >= 2, done.stderr
    # The heartbeat says for how long the stage has run; the summary line comes after.
    assert [int(re.findall(r"\((\d+)s\)", b)[0]) for b in beats] == sorted(
        int(re.findall(r"\((\d+)s\)", b)[0]) for b in beats)
    lines = done.stderr.splitlines()
    assert any(ln.startswith("[probes]   ") for ln in lines[lines.index(beats[-1]):]), done.stderr
    # --json is unaffected: stdout holds the result alone.
    assert json.loads(done.stdout)["ok"] is True


@pytest.mark.slow
def test_quiet_prints_only_the_result(tmp_path: Path) -> None:
    spec = _project(tmp_path, sleep=0)
    code, out = _in_terminal([sys.executable, "-m", "pinfold", "build", "-q", str(spec)],
                             _environ(TERM="xterm"))
    assert code == 0, out
    lines = out.strip().splitlines()
    # The result alone: the build line and the environment's digest.
    assert len(lines) == 2 and lines[0].startswith(f"built {tmp_path / 'env'} -> "), repr(out)
    assert lines[1].startswith("  environment digest sha256:"), repr(out)
    assert "[" not in out and "\x1b" not in out, repr(out)
    # Errors still show, in colour on a terminal.
    write(spec, spec.read_text().replace("runtime.txt", "missing.txt"))
    code, out = _in_terminal([sys.executable, "-m", "pinfold", "build", "-q", str(spec)],
                             _environ(TERM="xterm"))
    assert code == 2 and "error:" in out and "\x1b[1;31m" in out, repr(out)


def _output(**environ: str) -> tuple[Output, io.StringIO]:
    err = io.StringIO()
    return Output(err, environ=environ), err


def test_colour_follows_no_color_and_force_color() -> None:
    """Not a terminal: plain, unless FORCE_COLOR; NO_COLOR wins over it."""
    for environ, coloured in (({}, False), ({"FORCE_COLOR": "1"}, True),
                              ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False), ({"FORCE_COLOR": ""}, False)):
        out, err = _output(**environ)
        out.result(["warning: careful", "error: broken", "built env"])
        text = err.getvalue()
        assert ("\x1b[" in text) is coloured, (environ, repr(text))
        assert "\x1b[33mwarning: careful" in text if coloured else text == (
            "warning: careful\nerror: broken\nbuilt env\n"), (environ, repr(text))
        # FORCE_COLOR is colour only: never a live line, cursor moves or carriage returns, in a pipe.
        assert "\r" not in text and "\x1b[2K" not in text and "\x1b[?25l" not in text


def test_quiet_output_keeps_results_and_errors_only() -> None:
    err = io.StringIO()
    out = Output(err, quiet=True, environ={})
    out.event(StageEvent("install", "start"))
    out.event(Progress("install", 1, 2, "distributions"))
    out.event(StageEvent("install", "done", 1.0, "2 distributions with pip"))
    out.lines(["warning: x", "  ok    0.10s  lock: fine"])
    out.result(["built env"])
    out.error(["error: no"])
    out.close()
    assert err.getvalue() == "built env\nerror: no\n"


def test_progress_lines() -> None:
    assert progress_line("install", None, 3.4) == "[install] running (3s)"
    step = Progress("install", 43, 120, "distributions", "building foo (sdist)")
    assert progress_line("install", step, 12) == "[install] 43/120 distributions: building foo (sdist) (12s)"
    assert progress_line("lock", Progress("lock", 0, item="resolving the runtime needs"), 1) == (
        "[lock] resolving the runtime needs (1s)")
    # Downloads: artifacts and bytes, of a total when the sizes are known.
    fetching = Progress("fetch", 12, 49, "artifacts", "downloading foo==1.0", bytes_done=3_250_586,
                        bytes_total=10_276_044)
    assert progress_line("fetch", fetching, 4) == (
        "[fetch] 12/49 artifacts, 3.1 MiB of 9.8 MiB: downloading foo==1.0 (4s)")
    unknown = Progress("fetch", 0, 3, "artifacts", bytes_done=512)
    assert progress_line("fetch", unknown, 0) == "[fetch] 0/3 artifacts, 512 B (0s)"


def test_the_heartbeat_interval_is_configurable() -> None:
    assert Output(io.StringIO(), environ={}).heartbeat == 10.0
    assert Output(io.StringIO(), environ={"PINFOLD_HEARTBEAT_SECONDS": "2.5"}).heartbeat == 2.5
    assert Output(io.StringIO(), environ={"PINFOLD_HEARTBEAT_SECONDS": "soon"}).heartbeat == 10.0
