"""The runner with real processes: process groups, timeouts, bounded output, interrupts.

And, end to end, SIGTERM, SIGHUP and SIGINT to a `pinfold build` whose probe is running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from pinfold.errors import CommandError
from pinfold.runner import (
    OUTPUT_LIMIT,
    Runner,
    Terminated,
    end_running_commands,
    resume_commands,
)
from tests.artifacts import make_wheel
from tests.conftest import write


def gone(pid: int) -> bool:
    """True once ``pid`` has exited: no such process, or a zombie nobody reaped yet.

    An orphan is reparented to PID 1, which in some containers never reaps it.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2:].split()[0] in (b"Z", b"X")


def pids_in(text: str) -> list[int]:
    return [int(word) for word in text.split() if word.isdigit()]


@pytest.fixture()
def alarm() -> Iterator[Callable[[float, BaseException], None]]:
    """Raise an exception in the main thread after some seconds (as a signal handler would)."""
    previous = signal.getsignal(signal.SIGALRM)
    to_raise: list[BaseException] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        raise to_raise[0]

    def arm(seconds: float, exc: BaseException) -> None:
        to_raise.append(exc)
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_a_background_process_holding_the_output_does_not_hold_up_run(tmp_path: Path) -> None:
    # The background process holds the pipe for 6 s and then leaves a mark. A run that waited
    # for it would time out (2 s); one that let it finish would find the mark.
    mark = tmp_path / "finished"
    done = Runner().run(["sh", "-c", f"(sleep 6; touch {mark}) & echo $!"], what="a command", timeout=2)
    [pid] = pids_in(done.output)
    assert gone(pid), "the background process outlived the command"
    assert not mark.exists(), "run() waited for the background process to finish"


def test_an_endless_background_process_is_ended_without_a_timeout() -> None:
    # It never ends by itself: a run that waited for it could only end by the timeout, and raise.
    done = Runner().run(["sh", "-c", "while :; do sleep 1; done & echo $!"], what="a command", timeout=5)
    assert gone(pids_in(done.output)[0])


def test_a_timeout_ends_the_whole_group(tmp_path: Path) -> None:
    seen: list[str] = []
    mark = tmp_path / "finished"  # left by a grandchild that ran to its end
    with pytest.raises(CommandError) as caught:
        Runner(on_output=seen.append).run(["sh", "-c", f"(sleep 30; touch {mark}) & echo $!; sleep 100"],
                                          what="a command", timeout=1)
    assert caught.value.summary == "a command timed out after 1 s" and caught.value.returncode == -9
    assert gone(pids_in(" ".join(seen))[0]), "the grandchild outlived the timeout"
    assert not mark.exists(), "the grandchild was waited for, not ended"


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    # Every member ignores SIGTERM (the ignore is inherited): only the SIGKILL after the grace
    # ends them before they run to their end and leave the mark.
    seen: list[str] = []
    mark = tmp_path / "finished"
    with pytest.raises(CommandError, match="timed out"):
        Runner(on_output=seen.append).run(
            ["sh", "-c", f"trap '' TERM; (sleep 30; touch {mark}) & echo $!; sleep 30; touch {mark}"],
            what="a command", timeout=0.5)
    assert gone(pids_in(" ".join(seen))[0])
    assert not mark.exists(), "a member that ignores SIGTERM ran to its end: it was never killed"


def test_the_runner_default_timeout_applies_when_none_is_given() -> None:
    with pytest.raises(CommandError, match=r"timed out after 0\.5 s"):
        Runner(timeout=0.5).run(["sleep", "10"], what="a command")


def test_output_is_bounded_and_says_how_much_was_dropped() -> None:
    # 50 MB of output: the tail is kept, the rest counted.
    script = ("import sys\nline = 'x' * 99 + '\\n'\nfor _ in range(50):\n"
              "    sys.stdout.write(line * 10000)\nprint('the end')\n")
    done = Runner().run([sys.executable, "-c", script], what="printing")
    assert len(done.output) <= OUTPUT_LIMIT + 200
    assert done.dropped_lines > 400_000
    assert done.output.startswith(f"[pinfold: the first {done.dropped_chars} characters of output "
                                  f"({done.dropped_lines} lines) were not kept")
    assert done.output.endswith("the end\n")


def test_output_without_newlines_is_bounded_too() -> None:
    script = "import sys\nfor _ in range(40):\n    sys.stdout.write('x' * 500_000)\n"
    done = Runner(output_limit=1_000_000).run([sys.executable, "-c", script], what="printing")
    assert 900_000 <= len(done.output) <= 1_000_200
    assert done.dropped_chars > 18_000_000 and done.dropped_lines == 0


def test_streaming_sees_every_line_and_errors_keep_the_tail() -> None:
    seen: list[str] = []
    script = "for i in range(10000):\n    print(i)\nraise SystemExit(3)\n"
    with pytest.raises(CommandError) as caught:
        Runner(on_output=seen.append, output_limit=1000).run([sys.executable, "-c", script],
                                                             what="counting")
    assert seen == [str(i) for i in range(10000)]
    output = caught.value.output
    assert len(output) < 1200 and output.endswith("9999\n") and caught.value.returncode == 3
    assert output.startswith("[pinfold: the first ") and " lines) were not kept" in output


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), Terminated(signal.SIGTERM)],
                         ids=["KeyboardInterrupt", "Terminated"])
def test_an_interrupt_while_waiting_ends_the_group(
        alarm: Callable[[float, BaseException], None], exc: BaseException) -> None:
    seen: list[str] = []
    alarm(0.5, exc)
    # The timeout is the only other way out: an interrupt that did not end the wait would
    # end in CommandError (timed out), not in the interrupt.
    with pytest.raises(type(exc)):
        Runner(on_output=seen.append).run(["sh", "-c", "sleep 100 & echo $!; sleep 100"],
                                          what="a command", timeout=10)
    [grandchild] = pids_in(" ".join(seen))
    assert gone(grandchild)


def test_end_running_commands_ends_commands_waited_for_in_other_threads() -> None:
    seen: list[str] = []
    errors: list[CommandError] = []

    def work() -> None:
        try:
            Runner(on_output=seen.append).run(["sh", "-c", "sleep 100 & echo $!; sleep 100"],
                                              what="a probe")
        except CommandError as exc:
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        end_running_commands()
        worker.join(5)
        assert not worker.is_alive()
        assert errors and errors[0].summary == "a probe stopped: pinfold is stopping"
        assert gone(pids_in(" ".join(seen))[0])
        with pytest.raises(CommandError, match="not started, pinfold is stopping"):
            Runner().run(["true"], what="another command")
    finally:
        resume_commands()
    assert Runner().run(["true"], what="a command").output == ""


def test_the_callers_python_and_pip_variables_do_not_reach_commands(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PIP_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.setenv(name, str(tmp_path))
    done = Runner().run(["env"], what="env")
    names = {line.split("=", 1)[0] for line in done.output.splitlines()}
    assert not names & {"PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PIP_INDEX_URL", "PIP_FIND_LINKS"}


# --- end to end: a signal to `pinfold build` -----------------------------------------------


def _project(root: Path, *, probe_marker: Path | None) -> Path:
    wh = root / "wheelhouse"
    wheel = make_wheel(wh, "b-pkg", "1.0")
    write(root / "runtime.txt", wheel.pin() + "\n")
    text = "path: env\nindex: {find_links: wheelhouse}\nrequirements: runtime.txt\n"
    if probe_marker is not None:
        # exec: the pid written is the sleep's own.
        argv = ["sh", "-c", f"echo $$ > {probe_marker}; exec sleep 30"]
        text += f"final:\n  probes:\n    commands:\n      - {json.dumps(argv)}\n"
    return write(root / "env.yaml", text)


def _unfinished(root: Path, old: Path | None) -> list[Path]:
    versions = root / "env.d"
    if not versions.is_dir():
        return []
    return [p for p in versions.iterdir() if not p.name.startswith(".") and p != old]


def _signal_during_probe(root: Path, spec: Path, signum: int) -> tuple[int, str, int]:
    """Start a build, send ``signum`` while its probe sleeps; (exit code, stderr, the sleep's pid)."""
    marker = root / "probe.pid"
    proc = subprocess.Popen([sys.executable, "-m", "pinfold", "build", str(spec)], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (marker.is_file() and marker.read_text().strip()):
            assert proc.poll() is None, f"the build ended before its probe ran: {proc.communicate()}"
            assert time.monotonic() < deadline, "the probe never started"
            time.sleep(0.02)
        sleep_pid = int(marker.read_text())
        os.kill(proc.pid, signum)  # pinfold alone, as a service manager or a closed terminal would
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, err, sleep_pid


@pytest.mark.slow
def test_sigterm_during_a_build_ends_its_commands_and_keeps_the_environment(tmp_path: Path) -> None:
    from pinfold import build, load_spec

    spec = _project(tmp_path, probe_marker=None)
    old = build(load_spec(spec)).env_dir
    spec = _project(tmp_path, probe_marker=tmp_path / "probe.pid")
    code, err, sleep_pid = _signal_during_probe(tmp_path, spec, signal.SIGTERM)
    assert code == 143, err
    assert "interrupted; the previous environment is unchanged" in err
    assert gone(sleep_pid), "the probe's command outlived pinfold"
    assert (tmp_path / "env").resolve() == old
    assert _unfinished(tmp_path, old) == [], "the half-built environment was left behind"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT], ids=["SIGHUP", "SIGINT"])
def test_a_signal_during_a_first_build_leaves_no_environment(tmp_path: Path, signum: int) -> None:
    spec = _project(tmp_path, probe_marker=tmp_path / "probe.pid")
    code, err, sleep_pid = _signal_during_probe(tmp_path, spec, signum)
    assert code == (130 if signum == signal.SIGINT else 128 + signum), err
    assert "interrupted; the previous environment is unchanged" in err
    assert gone(sleep_pid)
    assert not (tmp_path / "env").is_symlink() and not (tmp_path / "env").exists()
    assert _unfinished(tmp_path, None) == []


def test_pinfold_itself_runs_isolated_from_the_callers_python_settings(tmp_path: Path) -> None:
    """A sitecustomize.py on the caller's PYTHONPATH runs in every Python that reads it; pinfold's
    own interpreter (the command bootstrap.sh writes) must not, as its subprocesses do not."""
    command = Path(sys.executable).with_name("pinfold")
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "ran"
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    # The marker proves the trap is real: a plain interpreter does run it.
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    assert marker.exists()
    marker.unlink()
    done = subprocess.run([command, "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("pinfold "), done
    assert not marker.exists()
