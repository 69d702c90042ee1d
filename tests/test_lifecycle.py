"""Environment lifecycle: no-op, one-pin updates, rollback, kill -9, concurrent builds, gc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pinfold import build, load_spec
from pinfold.record import read_digest
from pinfold.runner import Runner
from tests.artifacts import Artifact, copy_real, make_sdist, make_wheel
from tests.conftest import cli, installer_calls, write

pytestmark = pytest.mark.slow

TOOL = {"console_scripts": {"a-tool": "a_pkg:main"}}


def a_wheel(dest: Path, version: str) -> Artifact:
    code = f'__version__ = "{version}"\n\ndef main():\n    print("a-tool", __version__)\n'
    return make_wheel(dest, "a-pkg", version, files={"a_pkg/__init__.py": code}, entry_points=TOOL)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    # Its own cache folder: with a proven virtualenv template in a shared one, virtualenv
    # would not run and the "create" kill point would land in the install stage instead.
    monkeypatch.setenv("PINFOLD_CACHE_DIR", str(tmp_path / "cache"))
    wh = tmp_path / "wheelhouse"
    arts = [a_wheel(wh, "1.0"), make_wheel(wh, "b-pkg", "1.0"), make_wheel(wh, "c-pkg", "1.0")]
    a_wheel(wh, "2.0")
    write(tmp_path / "runtime.txt", "".join(a.pin() + "\n" for a in arts))
    return write(tmp_path / "env.yaml", "path: env\nindex: {find_links: wheelhouse}\n"
                                        "requirements: runtime.txt\n")


def set_pin(root: Path, name: str, artifact: Artifact | None) -> None:
    """Replace (or drop, with None) one pin of runtime.txt."""
    lines = [ln for ln in (root / "runtime.txt").read_text().splitlines() if not ln.startswith(f"{name}==")]
    if artifact is not None:
        lines.append(artifact.pin())
    (root / "runtime.txt").write_text("".join(ln + "\n" for ln in lines))


def tool_output(root: Path) -> str:
    done = subprocess.run([str(root / "env" / "bin" / "a-tool")], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def inodes(env: Path, package: str) -> dict[str, int]:
    site = next(env.resolve().glob("lib/python*/site-packages"))
    return {str(p.relative_to(site)): p.stat().st_ino for p in (site / package).rglob("*") if p.is_file()}


def test_one_pin_change_reinstalls_only_that_pin(project: Path) -> None:
    root = project.parent
    first = build(load_spec(project))
    assert tool_output(root) == "a-tool 1.0"
    b_before = inodes(root / "env", "b_pkg")

    set_pin(root, "a-pkg", a_wheel(root / "wheelhouse", "2.0"))
    code, out, _ = cli("plan", "--json")
    planned = json.loads(out)
    assert code == 0 and planned["mode"] == "update", planned
    assert planned["install"] == ["a-pkg==2.0"] and planned["remove"] == []
    code, out, err = cli("status", "--json")
    status = json.loads(out)
    assert code == 1 and "the runtime lock changed" in err and not status["up_to_date"]
    assert status["ok"] is False and status["exit_code"] == 1  # "ok" agrees with the exit code

    runner = Runner()
    second = build(load_spec(project), runner=runner)
    assert tool_output(root) == "a-tool 2.0"
    pip_calls = [argv for argv in installer_calls(runner) if "install" in argv]
    assert len(pip_calls) == 1 and "--no-deps" in pip_calls[0], pip_calls
    # The rest keep their files: same inodes as in the previous environment.
    assert inodes(root / "env", "b_pkg") == b_before
    # The previous environment is untouched (hard links are never written through).
    old_tool = first.env_dir / "bin" / "a-tool"
    assert subprocess.run([str(old_tool)], capture_output=True, text=True).stdout.strip() == "a-tool 1.0"
    assert str(first.env_dir) not in (second.env_dir / "bin" / "a-tool").read_text()

    # Dropping a pin removes just that distribution.
    set_pin(root, "c-pkg", None)
    third = build(load_spec(project))
    assert not list(next(third.env_dir.glob("lib/python*/site-packages")).glob("c_pkg*"))
    assert inodes(root / "env", "b_pkg") == b_before


def test_rollback_restores_the_previous_environment(project: Path) -> None:
    root = project.parent
    first = build(load_spec(project))
    set_pin(root, "a-pkg", a_wheel(root / "wheelhouse", "2.0"))
    build(load_spec(project))
    assert tool_output(root) == "a-tool 2.0"
    code, _, err = cli("rollback")
    assert code == 0, err
    assert (root / "env").resolve() == first.env_dir
    assert tool_output(root) == "a-tool 1.0"
    code, _, err = cli("check")
    assert code == 0, err
    # Nothing older to go back to.
    code, _, err = cli("rollback")
    assert code == 1 and "no earlier environment" in err


def test_gc_keeps_the_newest(project: Path) -> None:
    root = project.parent
    for version in ("2.0", "1.0", "2.0"):
        set_pin(root, "a-pkg", a_wheel(root / "wheelhouse", version))
        build(load_spec(project))
    assert len([p for p in (root / "env.d").iterdir() if not p.name.startswith(".")]) == 3
    code, out, err = cli("gc", "--keep", "1", "--json")
    assert code == 0, err
    assert len(json.loads(out)["removed"]) == 2
    assert [p.name for p in (root / "env.d").iterdir() if not p.name.startswith(".")] == [
        (root / "env").resolve().name]
    assert cli("gc", "--keep", "0")[0] == 2


def test_an_update_reuses_the_folders_of_the_environment_its_last_cleanup_let_go(project: Path) -> None:
    """Past `keep` (3), a build's cleanup keeps the folders of the environment it lets go
    (no environment any more: no rollback lands there); the next update moves them into its
    new directory and makes them match. The spare holds a-pkg 1.0, the update clones 3.0 and
    installs 2.0: its tree is the one a build from scratch makes."""
    root = project.parent
    built = [build(load_spec(project))]
    for version in ("2.0", "1.0", "3.0", "2.0"):
        if len(built) == 4:  # the second build's digest (a-pkg 2.0), read while it is there
            expected = read_digest(built[1].env_dir)
        set_pin(root, "a-pkg", a_wheel(root / "wheelhouse", version))
        built.append(build(load_spec(project)))
    create = next(s for s in built[-1].stages if s.name == "create")
    assert "folders reused from a retired environment" in create.detail, create.detail
    assert "folders reused" not in next(s.detail for s in built[-2].stages if s.name == "create")
    assert tool_output(root) == "a-tool 2.0"
    spares = [p.name for p in (root / "env.d").iterdir() if p.name.startswith(".spare-")]
    assert spares == [f".spare-{built[1].env_dir.name}"]  # the second build's, retired just now
    assert not built[0].env_dir.exists() and not built[1].env_dir.exists()
    code, _, err = cli("check")
    assert code == 0, err
    assert read_digest(built[-1].env_dir) == expected  # the second build's pins: the same tree
    fresh = build(load_spec(project), fresh=True)
    assert read_digest(fresh.env_dir) == expected
    code, _, err = cli("rollback")
    assert code == 0 and (root / "env").resolve() == built[-1].env_dir, err
    code, out, err = cli("gc", "--keep", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["removed"] == [] and len(json.loads(out)["spares"]) == 1, out
    assert not [p for p in (root / "env.d").iterdir() if p.name.startswith(".spare-")]


def start_build(spec: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pinfold", "build", *args, str(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the build ended before the kill point: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("the kill point was never reached")
        time.sleep(0.01)


def new_dirs(root: Path, old: Path) -> list[Path]:
    return [p for p in (root / "env.d").iterdir() if not p.name.startswith(".") and p != old]


def kill_and_recover(root: Path, spec: Path, old: Path, point: Callable[[], bool]) -> None:
    proc = start_build(spec)
    wait_for(point, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # pinfold and its pip, all at once
    proc.communicate()
    # `path` still runs the old environment's console scripts.
    assert (root / "env").resolve() == old
    assert tool_output(root) == "a-tool 1.0"
    done = subprocess.run([sys.executable, "-m", "pinfold", "build", str(spec)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert tool_output(root) == "a-tool 2.0"
    assert new_dirs(root, old) == [(root / "env").resolve()], "leftovers were not cleaned"


@pytest.mark.parametrize("point", ["create", "install", "final"])
def test_kill_9_leaves_the_last_good_environment(project: Path, point: str) -> None:
    root = project.parent
    old = build(load_spec(project)).env_dir
    marker = root / "reached"
    wh = root / "wheelhouse"
    # A change that forces a full build (a new build lock), with a slow step at the kill point.
    # Slow only the first time: the recovery build passes the same step quickly.
    slow = (f"import pathlib, time\nmark = pathlib.Path({str(marker)!r})\n"
            "if not mark.exists():\n    mark.touch()\n    time.sleep(60)\n")
    build_lock = [a.pin() for a in copy_real(wh, "setuptools")]
    extra = ""
    if point == "install":
        setup_py = slow + "from setuptools import setup\nsetup()\n"
        sdist = make_sdist(wh, "slow-build", "1.0", files={"setup.py": setup_py})
        set_pin(root, "slow-build", sdist)
    elif point == "final":
        extra = f"final:\n  probes:\n    commands:\n      - [python, -c, {json.dumps(slow)}]\n"
    write(root / "build.txt", "".join(p + "\n" for p in build_lock))
    write(project, project.read_text() + "build_requirements: build.txt\n" + extra)
    set_pin(root, "a-pkg", a_wheel(wh, "2.0"))
    if point == "create":
        def reached() -> bool:
            return any((d / "bin").exists() for d in new_dirs(root, old))
    else:
        def reached() -> bool:
            return marker.exists()
    kill_and_recover(root, project, old, reached)


def test_concurrent_builds_do_not_interleave(project: Path) -> None:
    root = project.parent
    procs = [start_build(project), start_build(project)]
    outputs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    stderr = "".join(err for _, err in outputs)
    assert stderr.count("built ") == 1 and "is up to date" in stderr, stderr
    assert "waiting for another build" in stderr, stderr
    assert len(new_dirs(root, Path())) == 1
    assert tool_output(root) == "a-tool 1.0"


def test_no_wait_fails_at_once_while_another_build_runs(project: Path) -> None:
    root = project.parent
    marker = root / "reached"
    slow = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(30)"
    probe = f"final:\n  probes:\n    commands:\n      - [python, -c, {json.dumps(slow)}]\n"
    write(project, project.read_text() + probe)
    first = start_build(project)
    try:
        wait_for(marker.exists, first)
        # A --no-wait that waited would return 0 once the first build ends, not 1 now.
        code, _, err = cli("build", "--no-wait")
        assert code == 1 and "another pinfold build" in err, err
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
