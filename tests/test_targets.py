"""Locks for another target: env.yaml's ``python`` and ``targets`` decide, not pinfold's interpreter.

pinfold runs on its tool Python (3.11 here); the other interpreters are pyenv's
(``$(pyenv root)/versions/3.*/bin/python3``), skipped where missing. The wheelhouse is
made by the tests: ``app`` needs ``old-only`` and ``dep-a<2`` below Python 3.12, and
``fast`` has a pure wheel plus a cp312-only wheel that only a 3.12 target may choose.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pinfold.locks import Pin, parse_lock
from tests.artifacts import make_wheel
from tests.conftest import cli, write


def _pyenv_pythons() -> dict[str, str]:
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    found = {}
    for exe in sorted(Path(root).glob("versions/3.*/bin/python3")):
        minor = ".".join(exe.parent.parent.name.split(".")[:2])
        found[minor] = str(exe)
    return found


PYTHONS = _pyenv_pythons()
CP312 = "fast-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"


def python(minor: str) -> str:
    """pyenv's Python ``minor``, or a skip saying it is missing."""
    if minor not in PYTHONS:
        pytest.skip(f"no Python {minor} on this machine (looked in $(pyenv root)/versions/{minor}.*)")
    return PYTHONS[minor]


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("targets-wheelhouse")
    make_wheel(wh, "dep-a", "1.0")
    make_wheel(wh, "dep-a", "2.0")
    make_wheel(wh, "old-only", "1.0")
    make_wheel(wh, "app", "1.0", requires=['old-only; python_version < "3.12"',
                                           'dep-a<2; python_version < "3.12"', "dep-a"])
    pure = make_wheel(wh, "fast", "1.0")
    # The same files under a cp312 tag: pip and uv prefer it on 3.12 and must not take it elsewhere.
    shutil.copy(pure.path, wh / CP312)
    return wh


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def project(root: Path, wheelhouse: Path, head: str) -> Path:
    shutil.copytree(wheelhouse, root / "wheelhouse")
    return write(root / "env.yaml", head + (
        "path: env\n"
        "index:\n  find_links: [wheelhouse]\n"
        "requirements: runtime.txt\n"
        "needs: [app, fast]\n"
        "compile: false\n"
        "final:\n  probes:\n    imports: [app, dep_a, fast]\n"
    ))


def pins(path: Path) -> list[Pin]:
    lock, problems = parse_lock(path)
    assert not problems
    return list(lock.pins)


def versions(path: Path) -> dict[str, str]:
    return {f"{p.name}" + (f" ; {p.marker}" if p.marker else ""): str(p.version) for p in pins(path)}


# Not 3.9 as an interpreter: pinfold's interpreter probe imports its packaging (26.4) and its
# pip (26.3) runs inside the target, and both need Python 3.10. A 3.9 *pair* locks (below).
@pytest.mark.slow
@pytest.mark.parametrize("minor", ["3.10", "3.12", "3.13"])
def test_lock_for_another_python(tmp_path: Path, wheelhouse: Path, minor: str) -> None:
    """pinfold on 3.11 locks for env.yaml's python: its markers and wheel tags decide."""
    exe = python(minor)
    spec = project(tmp_path, wheelhouse, f"python: {exe}\n")
    code, out, err = cli("lock", "--json", str(spec))
    assert code == 0, err
    runtime = tmp_path / "runtime.txt"
    old = minor == "3.10"
    assert versions(runtime) == ({"app": "1.0", "dep-a": "1.0", "fast": "1.0", "old-only": "1.0"} if old
                                 else {"app": "1.0", "dep-a": "2.0", "fast": "1.0"})
    fast = next(p for p in pins(runtime) if p.name == "fast")
    # Every artifact of the pin is hashed (here both files have the same bytes: one hash).
    assert len(fast.hashes) == 1
    assert cli("lock", "--check", str(spec))[0] == 0
    before = runtime.read_bytes()
    assert cli("lock", str(spec))[0] == 0
    assert runtime.read_bytes() == before  # a fixed point
    code, out, err = cli("build", "--json", str(spec))
    assert code == 0, err
    assert json.loads(out)["ok"], out
    assert (tmp_path / "env").exists()


@pytest.mark.slow
def test_targets_one_lock_for_several_pythons(tmp_path: Path, wheelhouse: Path) -> None:
    """`targets`: one lock, markers where the targets differ, each build picks its artifact,
    and a build for another interpreter is refused naming the targets."""
    py311, py312 = python("3.11"), python("3.12")
    spec = project(tmp_path, wheelhouse, f"python: {py312}\ntargets: [{py311}, {py312}]\n")
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    runtime = tmp_path / "runtime.txt"
    assert versions(runtime) == {
        "app": "1.0", "fast": "1.0",
        'dep-a ; python_version == "3.11"': "1.0", 'dep-a ; python_version == "3.12"': "2.0",
        'old-only ; python_version == "3.11"': "1.0"}
    assert cli("lock", "--check", str(spec))[0] == 0
    before = runtime.read_bytes()
    assert cli("lock", str(spec))[0] == 0
    assert runtime.read_bytes() == before

    code, _, err = cli("build", str(spec))
    assert code == 0, err
    assert (tmp_path / "env").exists()

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(runtime, other / "runtime.txt")
    spec311 = project(other, wheelhouse, f"python: {py311}\ntargets: [{py311}, {py312}]\n")
    code, _, err = cli("build", str(spec311))
    assert code == 0, err

    if "3.13" in PYTHONS:
        refused = tmp_path / "refused"
        refused.mkdir()
        shutil.copy(runtime, refused / "runtime.txt")
        spec313 = project(refused, wheelhouse, f"python: {PYTHONS['3.13']}\ntargets: [{py311}, {py312}]\n")
        code, _, err = cli("build", str(spec313))
        assert code != 0
        assert "is not one of env.yaml's targets" in err and py311 in err and py312 in err, err


@pytest.mark.slow
def test_cp312_wheel_chosen_only_on_312(tmp_path: Path, wheelhouse: Path) -> None:
    """Pre-flight picks the artifact that fits the interpreter it builds for."""
    from pinfold import load_spec
    from pinfold.index import ArtifactIndex
    from pinfold.interpreter import inspect_interpreter
    from pinfold.preflight import preflight
    from pinfold.runner import Runner

    py311, py312 = python("3.11"), python("3.12")
    spec_file = project(tmp_path, wheelhouse, f"python: {py312}\ntargets: [{py311}, {py312}]\n")
    assert cli("lock", str(spec_file))[0] == 0
    spec = load_spec(spec_file)
    for exe, want in ((py311, "fast-1.0-py3-none-any.whl"), (py312, CP312)):
        report = preflight(spec, inspect_interpreter(exe, Runner()), ArtifactIndex(spec.index))
        assert report.chosen["fast==1.0"].filename == want


@pytest.mark.slow
def test_targets_pairs_lock_without_the_interpreters(tmp_path: Path, wheelhouse: Path) -> None:
    """(version, platform) pairs: resolved by markers and tags alone, no such interpreter needed."""
    aarch = "fast-1.0-cp313-cp313-manylinux_2_28_aarch64.whl"
    spec = project(tmp_path, wheelhouse, (
        "targets:\n"
        "  - {python_version: '3.9', platform: linux-x86_64}\n"
        "  - {python_version: '3.13', platform: manylinux_2_28_aarch64}\n"))
    make_wheel(tmp_path / "x", "fast", "1.0", files={"fast/__init__.py": "AARCH = 1\n"})
    shutil.copy(next((tmp_path / "x").glob("*.whl")), tmp_path / "wheelhouse" / aarch)
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    runtime = tmp_path / "runtime.txt"
    assert versions(runtime) == {
        "app": "1.0", "fast": "1.0",
        'dep-a ; python_version == "3.9" and platform_machine == "x86_64"': "1.0",
        'dep-a ; python_version == "3.13" and platform_machine == "aarch64"': "2.0",
        'old-only ; python_version == "3.9" and platform_machine == "x86_64"': "1.0"}
    fast = next(p for p in pins(runtime) if p.name == "fast")
    assert len(fast.hashes) == 2  # the pure wheel and the aarch64 one
    # pinfold (3.11 on x86_64) is neither target: a build for it is refused.
    code, _, err = cli("build", str(spec))
    assert code != 0 and "3.9/linux-x86_64, 3.13/manylinux_2_28_aarch64" in err, err


def test_targets_invalid_are_located(tmp_path: Path, wheelhouse: Path) -> None:
    spec = project(tmp_path, wheelhouse, (
        "targets:\n"
        "  - {python_version: '3.12', platform: windows}\n"
        "  - {python_version: 'three'}\n"
        "  - /no/such/python\n"))
    code, _, err = cli("lock", str(spec))
    assert code == 2
    assert "targets[0].platform: 'windows' is not a platform" in err
    assert "targets[1].platform: missing" in err
    assert "targets[2]: '/no/such/python' is not an executable file" in err
