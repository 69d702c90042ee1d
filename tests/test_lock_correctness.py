"""`pinfold lock` keeps its promises: a fixed point, independent of the working directory
and the umask, every needs option and ``build_needs`` taking effect, backends asked as
they will be at build time, and the refusals it documents.

The slow tests run real pip-compile, pip, virtualenv and build backends against one
wheelhouse of artifacts made here (a session fixture); a file:// simple index stands in
for the upstream index, so nothing reaches the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from pinfold.locking.writer import write_files
from pinfold.locks import Pin, parse_lock
from tests.artifacts import copy_real, make_sdist, make_tree, make_wheel
from tests.conftest import cli, write
from tests.test_lock import project

slow = pytest.mark.slow

#: A PEP 517 backend whose answer depends on its own installed version: 2.0 asks for
#: ``extra-a`` (get_requires_for_build_wheel), 1.0 asks for nothing. Enough of a backend
#: for pip-compile to read an sdist's metadata; nothing here builds a wheel.
_DYN_BACKEND = '''\
import email.parser
import pathlib

VERSION = {version!r}


def get_requires_for_build_wheel(config_settings=None):
    return ["extra-a"] if VERSION == "2.0" else []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = email.parser.Parser().parsestr(pathlib.Path("PKG-INFO").read_text())
    name, version = info["Name"], info["Version"]
    folder = pathlib.Path(metadata_directory) / f"{{name.replace('-', '_')}}-{{version}}.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\\nName: {{name}}\\nVersion: {{version}}\\n")
    return folder.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("dyn-backend builds no wheels")
'''


def _dyn_sdist(dest: Path, name: str, requirement: str) -> None:
    make_sdist(dest, name, "1.0", files={
        "pyproject.toml": f'[build-system]\nrequires = ["{requirement}"]\nbuild-backend = "dyn_backend"\n',
        f"{name.replace('-', '_')}/__init__.py": "",
    })


def _other_platform(dest: Path, name: str, version: str, tag: str) -> Path:
    """A wheel of ``name`` for another platform: other bytes (so another hash), tagged ``tag``."""
    module = name.replace("-", "_")
    made = make_wheel(dest / ".other", name, version, files={f"{module}/__init__.py": f"# {tag}\n"})
    target = dest / made.path.name.replace("py3-none-any", tag)
    made.path.replace(target)
    shutil.rmtree(dest / ".other")
    return target


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artifacts shared by the slow tests; each project copies what it uses."""
    wh = tmp_path_factory.mktemp("lock-correctness-wheelhouse")
    copy_real(wh, "setuptools")
    for version in ("1.0", "2.0"):
        make_wheel(wh, "dyn-backend", version, files={"dyn_backend.py": _DYN_BACKEND.format(version=version)})
    make_wheel(wh, "extra-a", "1.0")
    _dyn_sdist(wh, "uses-dyn", "dyn-backend")
    _dyn_sdist(wh, "holds-dyn-back", "dyn-backend<2")
    # The needs options: each package has versions or formats that one option tells apart.
    make_wheel(wh, "pre-pkg", "1.0")
    make_wheel(wh, "pre-pkg", "2.0rc1")
    make_wheel(wh, "ob", "1.0")
    make_sdist(wh, "ob", "2.0")
    make_wheel(wh, "nb", "1.0")
    make_sdist(wh, "nb", "1.0")
    make_wheel(wh, "cst", "1.0")
    make_wheel(wh, "cst", "2.0")
    make_wheel(wh, "pb", "1.0")
    make_sdist(wh, "pb", "2.0")
    # Two platforms' wheels of one version, for the fixed point.
    for name in ("dep-a", "dep-b"):
        make_wheel(wh, name, "1.0")
        _other_platform(wh, name, "1.0", "cp311-cp311-win_amd64")
    return wh


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def pins_of(lock: Path) -> dict[str, Pin]:
    """The pins of a lock file, by name."""
    return {str(name): pin for name, pin in parse_lock(lock)[0].by_name().items()}


def versions(lock: Path) -> dict[str, str]:
    return {name: str(pin.version) for name, pin in pins_of(lock).items()}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def simple_index(root: Path, artifacts: Sequence[Path]) -> str:
    """A PEP 503 index of ``artifacts`` as file:// pages: an upstream that needs no network."""
    for f in artifacts:
        name = canonicalize_name(f.name.split("-")[0])
        page = root / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        with page.open("a") as fh:
            fh.write(f'<a href="file://{f}#{sha256(f).replace(":", "=")}">{f.name}</a>\n')
    return f"file://{root}/"


# --- item 15: relocking is a fixed point ------------------------------------------------


@slow
def test_relock_after_fetch_keeps_every_platforms_hashes(tmp_path: Path, wheelhouse: Path) -> None:
    """lock --upstream hashes both platforms' wheels; fetch brings only the fitting one; a
    plain relock changes nothing (it used to drop the other platform's hash)."""
    files = sorted(f for pattern in ("dep_a-*", "dep_b-*") for f in wheelhouse.glob(pattern))
    upstream = simple_index(tmp_path / "upstream", files)
    spec = project(tmp_path / "p", wheelhouse, "[dep-a]", files=(), extra="build_needs: [dep-b]\n")
    code, _, err = cli("lock", "--upstream", upstream, str(spec))
    assert code == 0, err
    requirements = tmp_path / "p" / "requirements"
    all_hashes = {name: {sha256(f) for f in files if f.name.startswith(name)} for name in ("dep_a", "dep_b")}
    assert pins_of(requirements / "runtime.txt")["dep-a"].hashes == all_hashes["dep_a"]
    assert pins_of(requirements / "build.txt")["dep-b"].hashes == all_hashes["dep_b"]
    wh = tmp_path / "p" / "wheelhouse"
    code, _, err = cli("fetch", "--index-url", upstream, str(spec))
    assert code == 0, err
    fitting = ["dep_a-1.0-py3-none-any.whl", "dep_b-1.0-py3-none-any.whl"]
    assert sorted(p.name for p in wh.iterdir()) == fitting

    before = snapshot(requirements)
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    assert "nothing was written" in err and "rehashed" not in err
    assert snapshot(requirements) == before

    # A new artifact of a pin that stays is added; the old hashes stay with it.
    added = _other_platform(wh, "dep-a", "1.0", "cp311-cp311-macosx_11_0_arm64")
    assert cli("lock", str(spec))[0] == 0
    assert pins_of(requirements / "runtime.txt")["dep-a"].hashes == {*all_hashes["dep_a"], sha256(added)}
    # --upgrade-package says the pin starts afresh: only what the index holds now.
    added.unlink()
    code, _, err = cli("lock", "--upgrade-package", "dep-a", str(spec))
    assert code == 0, err
    assert pins_of(requirements / "runtime.txt")["dep-a"].hashes == {sha256(wh / fitting[0])}
    assert pins_of(requirements / "build.txt")["dep-b"].hashes == all_hashes["dep_b"]


# --- item 16: locks do not depend on the working directory ------------------------------


@slow
def test_relock_from_another_directory_is_byte_identical(tmp_path: Path, wheelhouse: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    inside = make_tree(root / "src", "my-app", "0.1", requires=["dep-a"])
    outside = make_tree(tmp_path / "libs", "lib-x", "0.1")
    write(root / "requirements" / "runtime.in", "dep-a\n")
    spec = project(root, wheelhouse, "requirements/runtime.in", files=("setuptools-*", "dep_a-*"),
                   extra="develop: [src/my_app-0.1, ../libs/lib_x-0.1]\n")
    assert inside.is_dir() and outside.is_dir()
    monkeypatch.chdir(root / "src")  # neither env.yaml's folder nor the lock's
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    runtime = (root / "requirements" / "runtime.txt").read_text()
    build = (root / "requirements" / "build.txt").read_text()
    # Paths relative to env.yaml's folder, as env.yaml names them, `..` included.
    assert "#     -e ../libs/lib_x-0.1\n#     -e src/my_app-0.1\n" in runtime
    assert "    #   -r requirements/runtime.in\n    #   src/my_app-0.1 (develop)\n" in runtime
    assert "    #   ../libs/lib_x-0.1 (develop)\n    #   src/my_app-0.1 (develop)\n" in build
    assert str(tmp_path) not in runtime + build

    before = snapshot(root / "requirements")
    for cwd in (root, Path("/")):
        monkeypatch.chdir(cwd)
        code, _, err = cli("lock", str(spec))
        assert code == 0 and "nothing was written" in err, err
        assert snapshot(root / "requirements") == before
        assert cli("lock", "--check", str(spec))[0] == 0


# --- item 20: a new lock's mode follows the umask ---------------------------------------


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)],
                         ids=["077", "022", "002"])
def test_a_new_lock_gets_the_mode_the_umask_gives(tmp_path: Path, umask: None, mask: int, mode: int) -> None:
    os.umask(mask)
    new = tmp_path / "requirements" / "runtime.txt"
    assert write_files([(new, "a==1\n")]) == [new]
    assert new.stat().st_mode & 0o7777 == mode
    assert [p.name for p in new.parent.iterdir()] == ["runtime.txt"]  # no temporary file left


@pytest.mark.parametrize("mask", [0o077, 0o022], ids=["077", "022"])
def test_a_rewritten_lock_keeps_its_mode(tmp_path: Path, umask: None, mask: int) -> None:
    old = write(tmp_path / "build.txt", "a==1\n")
    old.chmod(0o640)
    os.umask(mask)
    assert write_files([(old, "a==2\n")]) == [old]
    assert old.read_text() == "a==2\n" and old.stat().st_mode & 0o7777 == 0o640


# --- the needs options and build_needs, each with its effect ----------------------------


@slow
def test_each_needs_option_has_its_effect_on_the_lock(tmp_path: Path, wheelhouse: Path) -> None:
    """Without its option, each package would lock otherwise: pre-pkg 1.0, ob 2.0 (the sdist),
    nb from its wheel (no build dependency), cst 2.0, pb 2.0 (the sdist)."""
    write(tmp_path / "constraints.txt", "cst<2\n")
    write(tmp_path / "needs.in", "--pre\n--only-binary ob\n--no-binary nb\n-c constraints.txt\n"
                                 "pre-pkg\nob\nnb\ncst\n")
    spec = project(tmp_path, wheelhouse, "needs.in",
                   files=("setuptools-*", "pre_pkg-*", "ob-*", "nb-*", "cst-*"))
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    runtime = tmp_path / "requirements" / "runtime.txt"
    assert versions(runtime) == {"cst": "1.0", "nb": "1.0", "ob": "1.0", "pre-pkg": "2.0rc1"}
    wh = tmp_path / "wheelhouse"
    # --no-binary: only the sdist is hashed, and its build dependencies are in the build lock.
    assert pins_of(runtime)["nb"].hashes == {sha256(wh / "nb-1.0.tar.gz")}
    assert pins_of(tmp_path / "requirements" / "build.txt")["setuptools"].via == ("nb==1.0",)

    spec = project(tmp_path / "pb", wheelhouse, "['--prefer-binary', pb]", files=("pb-*",), build_lock=False)
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    assert versions(tmp_path / "pb" / "requirements" / "runtime.txt") == {"pb": "1.0"}


@slow
def test_build_needs_constrain_discovery(tmp_path: Path, wheelhouse: Path) -> None:
    """build_needs `dyn-backend<2` hold the backend back where it is asked, not only in the
    build lock: asked once, with 1.0, it asks for nothing more (2.0 would ask for extra-a)."""
    spec = project(tmp_path, wheelhouse, "[uses-dyn]", files=("dyn_backend-*", "extra_a-*", "uses_dyn-*"),
                   extra="build_needs: ['dyn-backend<2']\n")
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    assert versions(tmp_path / "requirements" / "build.txt") == {"dyn-backend": "1.0"}
    # One round of asking: an unconstrained discovery would have got 2.0 and been asked again.
    assert err.count("asking the build backends of") == 1, err


@slow
def test_backend_is_asked_again_with_the_locks_versions(tmp_path: Path, wheelhouse: Path) -> None:
    """uses-dyn alone gets dyn-backend 2.0 (which asks for extra-a), but holds-dyn-back pins
    the lock to 1.0: asked again with 1.0, the backend asks for nothing, so extra-a goes."""
    spec = project(tmp_path, wheelhouse, "[uses-dyn, holds-dyn-back]",
                   files=("dyn_backend-*", "extra_a-*", "uses_dyn-*", "holds_dyn_back-*"))
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    assert versions(tmp_path / "requirements" / "build.txt") == {"dyn-backend": "1.0"}
    assert err.count("asking the build backends of") == 2, err
    assert "asking the build backends of 1 sdist(s) for their build requirements: uses-dyn==1.0" in err


# --- refusals -----------------------------------------------------------------------------


def _other_python() -> str | None:
    """An interpreter of another minor version than pinfold's own, from pyenv."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for python in sorted(root.glob("versions/3.*/bin/python3")):
        major, minor = (int(part) for part in python.parent.parent.name.split(".")[:2])
        # pinfold's minimum target is 3.10: its probe and pip run inside the target.
        if (major, minor) != sys.version_info[:2] and (major, minor) >= (3, 10):
            return str(python)
    return None


def test_lock_resolves_for_another_target_python(tmp_path: Path) -> None:
    """env.yaml's python decides, not pinfold's (tests/test_targets.py covers the markers and tags)."""
    python = _other_python()
    if python is None:
        pytest.skip("no pyenv interpreter of another minor version than pinfold's own (>= 3.10)")
    art = make_wheel(tmp_path / "wheelhouse", "dep-a", "1.0")
    spec = write(tmp_path / "env.yaml", f"path: env\npython: {python}\nindex: {{find_links: wheelhouse}}\n"
                                        "requirements: requirements/runtime.txt\nneeds: [dep-a]\n")
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    written = (tmp_path / "requirements" / "runtime.txt").read_text()
    assert f"dep-a==1.0 \\\n    --hash=sha256:{art.sha256}" in written


def test_build_refuses_a_hand_written_lock_that_misses_a_need(tmp_path: Path) -> None:
    wh = tmp_path / "wheelhouse"
    art = make_wheel(wh, "dep-a", "1.0")
    make_wheel(wh, "other-lib", "1.0")
    write(tmp_path / "requirements" / "runtime.txt", f"{art.pin()}\n")  # no record: by hand
    spec = write(tmp_path / "env.yaml", "path: env\nindex: {find_links: wheelhouse}\n"
                                        "requirements: requirements/runtime.txt\nneeds: [dep-a, other-lib]\n")
    code, _, err = cli("build", str(spec))
    assert code == 2, err
    assert "requirements/runtime.txt: does not match env.yaml's `needs`: other-lib is not pinned" in err
    assert "run `pinfold lock`" in err and "internal error" not in err
    assert not (tmp_path / "env").exists() and not (tmp_path / "env.d").exists()
    # A pin at a version the need excludes is refused the same way.
    spec.write_text(spec.read_text().replace("[dep-a, other-lib]", "['dep-a>=2']"))
    code, _, err = cli("build", str(spec))
    assert code == 2 and "dep-a>=2 does not match the pin dep-a==1.0" in err, err


@slow
def test_upstream_failure_keeps_the_downloaded_artifacts(tmp_path: Path, wheelhouse: Path) -> None:
    """The runtime lock's artifacts are downloaded before the build lock fails: they stay."""
    files = sorted(wheelhouse.glob("dep_a-1.0-py3-none-any.whl"))
    upstream = simple_index(tmp_path / "upstream", files)
    spec = project(tmp_path / "p", wheelhouse, "[dep-a]", files=(), extra="build_needs: [not-upstream]\n")
    code, _, err = cli("lock", "--upstream", upstream, str(spec))
    assert code == 1, err
    assert "not-upstream (needed by env.yaml:build_needs): not in " in err and "no lock was written" in err
    assert [p.name for p in (tmp_path / "p" / "wheelhouse").iterdir()] == ["dep_a-1.0-py3-none-any.whl"]
    assert not (tmp_path / "p" / "requirements").exists()
