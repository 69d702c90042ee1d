"""Pre-flight's judgement of artifacts whose hash is not in the lock (fast: no pip, no virtualenv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinfold import PreflightError, load_spec
from pinfold.index import ArtifactIndex
from pinfold.interpreter import inspect_interpreter
from pinfold.preflight import preflight
from pinfold.runner import Runner
from tests.artifacts import make_sdist, make_wheel
from tests.conftest import write


def project(tmp_path: Path, *pins: str) -> Path:
    write(tmp_path / "runtime.txt", "".join(f"{p}\n" for p in pins))
    write(tmp_path / "build.txt", "")
    return write(tmp_path / "env.yaml", "path: env\nindex: {find_links: [wheelhouse]}\n"
                                        "requirements: runtime.txt\nbuild_requirements: build.txt\n")


def check(spec_file: Path) -> None:
    spec = load_spec(spec_file)
    preflight(spec, inspect_interpreter(spec.python, Runner()), ArtifactIndex(spec.index))


def test_a_wheel_the_lock_leaves_out_beside_its_locked_sdist_is_named_as_such(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sdist = make_sdist(tmp_path / "wheelhouse", "only-sdist", "1.0")
    wheel = make_wheel(tmp_path / "wheelhouse", "only-sdist", "1.0")
    # What `--no-binary only-sdist` locks: the sdist's hash alone.
    with pytest.raises(PreflightError) as info:
        check(project(tmp_path, sdist.pin()))
    (problem,) = info.value.problems
    assert problem.where == f"wheelhouse/{wheel.path.name}"
    assert problem.message.endswith("the file was changed or replaced, or the lock leaves it out "
                                    "(e.g. `--no-binary`): remove it"), problem.message
    wheel.path.unlink()
    check(tmp_path / "env.yaml")  # the sdist alone passes


def test_a_changed_artifact_with_no_good_one_left_says_fetch(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    wheel = make_wheel(tmp_path / "wheelhouse", "plain", "1.0")
    spec_file = project(tmp_path, wheel.pin())
    wheel.path.write_bytes(wheel.path.read_bytes() + b"changed")
    with pytest.raises(PreflightError) as info:
        check(spec_file)
    (problem,) = info.value.problems
    assert problem.message.endswith("the file was changed or replaced: remove it and run `pinfold fetch`")
