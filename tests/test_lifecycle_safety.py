"""Environments on disk under real builds: only pinfold's own folders are ever removed,
killed builds' leftovers go with the next build (a no-op too), and a project reached
through a symlinked directory keeps working console scripts across updates and gc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pinfold import build, load_spec
from pinfold.envdir import MARKER
from tests.artifacts import Artifact, make_wheel
from tests.conftest import cli, write
from tests.test_lifecycle import new_dirs, set_pin, start_build, wait_for

pytestmark = pytest.mark.slow


def tool_wheel(dest: Path, name: str, version: str) -> Artifact:
    """A wheel with one console script, ``<name>-tool``, that prints its name and version."""
    module = name.replace("-", "_")
    code = f'def main():\n    print("{name}", "{version}")\n'
    return make_wheel(dest, name, version, files={f"{module}/__init__.py": code},
                      entry_points={"console_scripts": {f"{name}-tool": f"{module}:main"}})


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    wh = tmp_path / "wheelhouse"
    arts = [tool_wheel(wh, "a-pkg", "1.0"), make_wheel(wh, "b-pkg", "1.0")]
    write(tmp_path / "runtime.txt", "".join(a.pin() + "\n" for a in arts))
    return write(tmp_path / "env.yaml", "path: env\nindex: {find_links: wheelhouse}\n"
                                        "requirements: runtime.txt\n")


def a_tool(root: Path) -> str:
    done = subprocess.run([str(root / "env" / "bin" / "a-pkg-tool")], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


@pytest.mark.parametrize("kind", ["full", "update"])
def test_a_killed_builds_folder_is_removed_by_the_next_noop_build(project: Path, kind: str) -> None:
    """The next build removes a killed build's folder even when it has nothing to build."""
    root = project.parent
    old = build(load_spec(project)).env_dir
    original = project.read_text()
    if kind == "full":
        # --fresh: a full build of the same inputs, killed while virtualenv creates its folder.
        proc = start_build(project, "--fresh")

        def reached() -> bool:
            return any((d / "bin").exists() for d in new_dirs(root, old))
    else:
        # An update (a hard-link clone), killed while its probe runs.
        marker = root / "reached"
        slow = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
        probe = f"final:\n  probes:\n    commands:\n      - [python, -c, {json.dumps(slow)}]\n"
        write(project, original + probe)
        proc = start_build(project)
        reached = marker.exists
    wait_for(reached, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert len(new_dirs(root, old)) == 1
    write(project, original)  # what `path` was built from: the next build is a no-op
    done = subprocess.run([sys.executable, "-m", "pinfold", "build", str(project)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "is up to date" in done.stderr and "warning" not in done.stderr, done.stderr
    assert new_dirs(root, old) == [], "the killed build's folder was left behind"
    assert (root / "env").resolve() == old and a_tool(root) == "a-pkg 1.0"
    # Cleaned once, the no-op is the fast one again: nothing left to hand over.
    code, out, err = cli("build", "--json")
    assert code == 0 and json.loads(out)["up_to_date"] is True, err


def test_builds_and_gc_remove_only_what_is_provably_pinfolds(project: Path) -> None:
    root = project.parent
    wh = root / "wheelhouse"
    first = build(load_spec(project)).env_dir
    # The previous pinfold wrote no marker: its environments must still be collected.
    (first / MARKER).unlink()
    write(root / "env.d" / "project" / "notes.txt", "precious")
    write(root / "env.d" / "unfinished-by-hand" / "pyvenv.cfg", "home = /usr/bin\n")
    set_pin(root, "a-pkg", tool_wheel(wh, "a-pkg", "2.0"))
    second = build(load_spec(project))
    assert second.plan is not None and second.plan.mode == "update"
    named = "\n".join(second.warnings)
    assert f"{root / 'env.d' / 'project'} is not a build of pinfold's" in named, named
    assert f"{root / 'env.d' / 'unfinished-by-hand'} looks like an unfinished build" in named, named
    assert a_tool(root) == "a-pkg 2.0" and (second.env_dir / MARKER).is_file()
    # The update's clone has a marker of its own (the earlier environment had none to copy).
    assert (second.env_dir / MARKER).read_text().endswith(f" {second.env_dir.name}\n")
    set_pin(root, "a-pkg", tool_wheel(wh, "a-pkg", "3.0"))
    third = build(load_spec(project))
    code, out, err = cli("gc", "--keep", "1", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert sorted(result["removed"]) == sorted([str(first), str(second.env_dir)])
    assert any("project" in w for w in result["warnings"]), result
    assert "warning: " in err and "project" in err
    assert (root / "env.d" / "project" / "notes.txt").read_text() == "precious"
    assert (root / "env.d" / "unfinished-by-hand" / "pyvenv.cfg").is_file()
    assert sorted(p.name for p in new_dirs(root, Path())) == sorted(
        [third.env_dir.name, "project", "unfinished-by-hand"])
    assert a_tool(root) == "a-pkg 3.0"


def test_a_project_behind_a_symlinked_directory_keeps_working_scripts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``current -> releases/X``: two updates and a gc later, every console script still runs."""
    release = tmp_path / "releases" / "X"
    wh = release / "wheelhouse"
    arts = {name: tool_wheel(wh, name, "1.0") for name in ("a-pkg", "b-pkg")}
    write(release / "runtime.txt", "".join(a.pin() + "\n" for a in arts.values()))
    write(release / "env.yaml", "path: env\nindex: {find_links: wheelhouse}\nrequirements: runtime.txt\n")
    (tmp_path / "current").symlink_to(Path("releases") / "X")
    monkeypatch.chdir(tmp_path)
    spec_file = tmp_path / "current" / "env.yaml"
    first = build(load_spec(spec_file))
    for name in ("a-pkg", "b-pkg"):  # two updates, each moving one pin
        set_pin(release, name, tool_wheel(wh, name, "2.0"))
        done = build(load_spec(spec_file))
        assert done.plan is not None and done.plan.mode == "update", done.plan
    code, out, err = cli("gc", "--keep", "2", "--json", str(spec_file))
    assert code == 0, err
    assert json.loads(out)["removed"] == [str(first.env_dir)] and not first.env_dir.exists()
    env = tmp_path / "current" / "env"
    current = env.resolve()
    ran = {}
    for script in sorted((env / "bin").iterdir()):
        if script.is_symlink() or not script.is_file() or script.read_bytes()[:2] != b"#!":
            continue
        interpreter = Path(script.read_text().splitlines()[0][2:].split()[0])
        assert interpreter.exists(), f"{script.name}: {interpreter} is gone"
        assert os.path.realpath(interpreter.parent) == str(current / "bin"), (script.name, interpreter)
        run = subprocess.run([str(script)], capture_output=True, text=True, check=False)
        assert run.returncode == 0, (script.name, run.stderr)
        ran[script.name] = run.stdout.strip()
    assert ran == {"a-pkg-tool": "a-pkg 2.0", "b-pkg-tool": "b-pkg 2.0"}
