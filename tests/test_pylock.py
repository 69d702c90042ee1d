"""PEP 751 ``pylock.toml``: read and validated, built from, written by `pinfold lock`, exported.

Real pip-compile, pip, uv, virtualenv and build backends; the artifacts are the tests' own
wheels and sdists, and the real setuptools wheel for the one sdist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.pylock import Pylock

from pinfold.locks import parse_lock
from tests.artifacts import Artifact, copy_real, make_sdist, make_wheel
from tests.conftest import cli, installed, write


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


PIP_ENV = {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def wheel_entry(a: Artifact, folder: str = "wheelhouse") -> str:
    return (f'wheels = [{{ name = "{a.path.name}", path = "{folder}/{a.path.name}", '
            f'hashes = {{ sha256 = "{a.sha256}" }} }}]\n')


@pytest.fixture
def two_wheels(tmp_path: Path) -> tuple[Artifact, Artifact]:
    wh = tmp_path / "wheelhouse"
    return make_wheel(wh, "dep-a", "1.0"), make_wheel(wh, "plain-wheel", "1.0", requires=["dep-a>=1"])


def good_pylock(tmp_path: Path, a: Artifact, b: Artifact) -> Path:
    return write(tmp_path / "pylock.toml", (
        'lock-version = "1.0"\ncreated-by = "hand"\n\n'
        f'[[packages]]\nname = "dep-a"\nversion = "1.0"\n{wheel_entry(a)}\n'
        f'[[packages]]\nname = "plain-wheel"\nversion = "1.0"\nmarker = \'python_version >= "3"\'\n'
        f'{wheel_entry(b)}\n[packages.tool.pinfold]\nvia = ["env.yaml:needs"]\n'))


# -- reading and validation ------------------------------------------------------------------


def test_reads_a_good_pylock_into_pins(tmp_path: Path, two_wheels: tuple[Artifact, Artifact]) -> None:
    a, b = two_wheels
    lock, problems = parse_lock(good_pylock(tmp_path, a, b))
    assert problems == []
    pins = {str(p.name): p for p in lock.pins}
    assert sorted(pins) == ["dep-a", "plain-wheel"]
    assert pins["dep-a"].hashes == {f"sha256:{a.sha256}"}
    assert str(pins["plain-wheel"].marker) == 'python_version >= "3"'
    assert pins["plain-wheel"].via == ("env.yaml:needs",)
    assert pins["plain-wheel"].requirement_line() == (
        f'plain-wheel==1.0 ; python_version >= "3" --hash=sha256:{b.sha256}')
    assert pins["dep-a"].line == 4  # its [[packages]] header
    assert pins["dep-a"].artifacts[0].location == str(a.path)


def test_missing_hashes_are_located(tmp_path: Path, two_wheels: tuple[Artifact, Artifact]) -> None:
    a, _ = two_wheels
    path = write(tmp_path / "pylock.toml", (
        'lock-version = "1.0"\ncreated-by = "hand"\n\n'
        f'[[packages]]\nname = "dep-a"\nversion = "1.0"\n{wheel_entry(a)}\n'
        f'[[packages]]\nname = "plain-wheel"\nversion = "1.0"\n'
        'wheels = [{ name = "plain_wheel-1.0-py3-none-any.whl",'
        ' path = "w/plain_wheel-1.0-py3-none-any.whl" }]\n'))
    _, problems = parse_lock(path)
    assert [str(p) for p in problems] == [
        "pylock.toml:9: packages[1].wheels[0].hashes: not a valid PEP 751 lock: Missing required value"]


def test_an_md5_only_artifact_and_an_unpinned_package_are_located(tmp_path: Path) -> None:
    path = write(tmp_path / "pylock.toml", (
        'lock-version = "1.0"\ncreated-by = "hand"\n\n'
        '[[packages]]\nname = "dep-a"\n'
        'wheels = [{ name = "dep_a-1.0-py3-none-any.whl", url = "https://x.invalid/dep_a-1.0-py3-none-any.whl",'
        ' hashes = { sha256 = "' + "0" * 64 + '" } }]\n\n'
        '[[packages]]\nname = "other"\nversion = "2"\n'
        'sdist = { name = "other-2.tar.gz", url = "https://x.invalid/other-2.tar.gz",'
        ' hashes = { md5 = "abc" } }\n'
        '\n[[packages]]\nname = "tree"\ndirectory = { path = "src/tree" }\n'))
    _, problems = parse_lock(path)
    assert [str(p) for p in problems] == [
        "pylock.toml:4: packages[0]: dep-a has no version: every package of a lock must be pinned",
        "pylock.toml:8: packages[1].sdist.hashes: other-2.tar.gz: no sha256, sha384 or sha512 hash "
        "(pip checks only those)",
        "pylock.toml:13: packages[2]: tree is a direct reference (vcs, directory or archive): a lock pins "
        "name==version from env.yaml's index; local trees go under `develop`"]


def test_bad_toml_is_located_and_env_yaml_refuses_it(tmp_path: Path) -> None:
    write(tmp_path / "requirements" / "pylock.toml",
          'lock-version = "1.0"\ncreated-by = "hand"\n\n[[packages]]\nname = "x"\nversion = 1.0.0\n')
    (tmp_path / "wheelhouse").mkdir()
    spec = write(tmp_path / "env.yaml", "path: env\nindex:\n  find_links: [wheelhouse]\n"
                                        "requirements: requirements/pylock.toml\n")
    code, _, err = cli("plan", str(spec))
    assert code == 2, err
    assert "requirements/pylock.toml:6:14: not valid TOML: Expected newline" in err


# -- pinfold lock writes pylocks, pinfold builds from them ---------------------------------------


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("pylock-wheelhouse")
    copy_real(wh, "setuptools")
    make_sdist(wh, "plain-sdist", "3.0", backend="setuptools")
    make_wheel(wh, "plain-wheel", "1.0", requires=["dep-a>=1"])
    make_wheel(wh, "dep-a", "1.0")
    make_wheel(wh, "other-lib", "1.0")
    return wh


def project(root: Path, artifacts: Path, needs: str, *, runtime: str, build: str | None = None,
            extra: str = "") -> Path:
    shutil.copytree(artifacts, root / "wheelhouse")
    return write(root / "env.yaml", (
        "path: env\nindex:\n  find_links: [wheelhouse]\n"
        f"requirements: {runtime}\n" + (f"build_requirements: {build}\n" if build else "")
        + f"needs: {needs}\n" + extra))


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_lock_writes_pylocks_then_build_from_them(tmp_path: Path, artifacts: Path, installer: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Both locks as pylock files, the build lock's setuptools fed to the sdist's build; a relock
    is byte-identical, `lock --check` reads the record in [tool.pinfold], a stale lock is refused."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "uv-cache"))
    spec = project(tmp_path, artifacts, "[plain-sdist, plain-wheel]", runtime="requirements/pylock.toml",
                   build="requirements/pylock.build.toml", extra=f"installer: {installer}\n")
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    runtime = tmp_path / "requirements" / "pylock.toml"
    build = tmp_path / "requirements" / "pylock.build.toml"
    for path in (runtime, build):
        Pylock.from_dict(tomllib.loads(path.read_text()))  # valid PEP 751
        assert str(tmp_path) not in path.read_text()
    data = tomllib.loads(runtime.read_text())
    assert [p["name"] for p in data["packages"]] == ["dep-a", "plain-sdist", "plain-wheel"]
    assert data["packages"][1]["sdist"]["path"] == "../wheelhouse/plain_sdist-3.0.tar.gz"
    assert data["tool"]["pinfold"]["needs"]["items"] == ["plain-sdist", "plain-wheel"]
    assert [p["name"] for p in tomllib.loads(build.read_text())["packages"]] == ["setuptools"]
    before = runtime.read_bytes(), build.read_bytes()

    code, _, err = cli("lock", str(spec))
    assert code == 0 and "nothing was written" in err, err
    assert (runtime.read_bytes(), build.read_bytes()) == before
    assert cli("lock", "--check", str(spec))[0] == 0

    code, _, err = cli("build", str(spec))
    assert code == 0, err
    assert installed(tmp_path / "env") == {"plain-sdist": "3.0", "plain-wheel": "1.0", "dep-a": "1.0"}

    spec.write_text(spec.read_text().replace("plain-wheel]", "plain-wheel, other-lib]"))
    code, _, err = cli("lock", "--check", str(spec))
    assert code == 1 and "added other-lib" in err, err
    code, _, err = cli("build", str(spec))
    assert code == 2 and "stale: env.yaml's `needs` changed" in err, err


# -- export: the same lock for plain pip and plain uv ----------------------------------------------


def venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "virtualenv", "-q", "--no-seed", str(path)], check=True)
    return path / "bin" / "python"


def freeze(python: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "list", "--format=freeze"],
                          capture_output=True, text=True, check=True, env={**os.environ, **PIP_ENV})
    return done.stdout


def uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


@pytest.mark.slow
def test_export_both_ways_and_plain_pip_and_uv_install_the_same(tmp_path: Path, artifacts: Path) -> None:
    spec = project(tmp_path, artifacts, "[plain-wheel]", runtime="requirements/runtime.txt")
    assert cli("lock", str(spec))[0] == 0
    req_lock = tmp_path / "requirements" / "runtime.txt"
    # A pin whose marker never holds: exported with it, installed by neither tool.
    other = next((tmp_path / "wheelhouse").glob("other_lib-*.whl"))
    from tests.test_lock import sha256

    req_lock.write_text(req_lock.read_text() + f'other-lib==1.0 ; python_version < "3" \\\n'
                                               f"    --hash={sha256(other)}\n")

    code, _, err = cli("export", "-o", str(tmp_path / "out" / "pylock.toml"), str(spec))
    assert code == 0 and "wrote out/pylock.toml" in err, err
    exported = tmp_path / "out" / "pylock.toml"
    first = exported.read_bytes()
    assert cli("export", "-o", str(exported), str(spec))[0] == 0
    assert exported.read_bytes() == first  # same lock, same bytes
    data = tomllib.loads(first.decode())
    assert data["packages"][0]["wheels"][0]["path"] == "../wheelhouse/dep_a-1.0-py3-none-any.whl"
    assert data["packages"][1]["marker"] == 'python_version < "3"'

    # Back again, through env.yaml naming the pylock: the requirements lock, byte for byte
    # (as pinfold writes it: sorted, so the pin added at the end above moves up).
    spec2 = write(tmp_path / "out" / "env.yaml", "path: env\nindex:\n  find_links: [../wheelhouse]\n"
                                                 "requirements: pylock.toml\nneeds: [plain-wheel]\n")
    code, text, err = cli("export", str(spec2))
    assert code == 0, err
    code, normal, err = cli("export", "--format", "requirements", str(spec))
    assert code == 0, err
    assert text == normal and 'other-lib==1.0 ; python_version < "3" \\\n' in text
    assert normal.splitlines()[:12] == req_lock.read_text().splitlines()[:12]  # header and record
    assert cli("lock", "--check", str(spec2))[0] == 0  # the record came along

    # Plain pip from the requirements file, plain pip and plain uv from the pylock: the same.
    pip = [sys.executable, "-m", "pip"]
    env = {**os.environ, **PIP_ENV}
    one, two, three = venv(tmp_path / "v1"), venv(tmp_path / "v2"), venv(tmp_path / "v3")
    subprocess.run([*pip, "--python", str(one), "install", "-q", "--find-links", str(tmp_path / "wheelhouse"),
                    "--require-hashes", "-r", str(req_lock)], check=True, env=env)
    subprocess.run([*pip, "--python", str(two), "install", "-q", "-r", str(exported)], check=True, env=env,
                   cwd=tmp_path)
    subprocess.run([uv(), "pip", "sync", "--python", str(three), "--offline", "--no-config",
                    "--cache-dir", str(tmp_path / "uv-cache"), "--preview-features", "pylock", str(exported)],
                   check=True, env={**os.environ, "UV_NO_CONFIG": "1"}, capture_output=True)
    assert freeze(one) == freeze(two) == freeze(three) == "dep-a==1.0\nplain-wheel==1.0\n"


def test_a_name_locked_once_per_target_reads_back(tmp_path: Path,
                                                  two_wheels: tuple[Artifact, Artifact]) -> None:
    """A lock for several targets pins a name once per target, under exclusive markers."""
    a, _ = two_wheels
    entry = wheel_entry(a)
    head = '[[packages]]\nname = "dep-a"\nversion = "1.0"\n'
    text = ('lock-version = "1.0"\ncreated-by = "hand"\n\n'
            f'{head}marker = \'python_version == "3.11"\'\n{entry}\n'
            f'{head}marker = \'python_version == "3.12"\'\n{entry}\n')
    lock, problems = parse_lock(write(tmp_path / "pylock.toml", text))
    assert problems == []
    assert [str(p.marker) for p in lock.pins] == ['python_version == "3.11"', 'python_version == "3.12"']
    # Without markers that tell them apart, the same name twice is ambiguous.
    _, problems = parse_lock(write(tmp_path / "pylock.toml", text.replace(
        "marker = 'python_version == \"3.12\"'\n", "")))
    assert [p.message for p in problems] == [
        "dep-a is locked twice (first as packages[0]) without markers that tell them apart"]
