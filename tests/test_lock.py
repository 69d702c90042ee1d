"""`pinfold lock` end to end, with real pip-compile, pip, virtualenv and build backends.

The wheelhouse holds sdists the tests make themselves (a legacy ``setup_requires=['pbr']``
one, a ``pbr.build`` one, a setuptools one, one whose setup.py fails), wheels, and real
pbr and setuptools wheels. Wheel-only projects keep the cheap tests cheap: pip-compile
builds no sdist metadata for them and no build backend is asked anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from pinfold import SpecError, load_spec
from pinfold.interpreter import inspect_interpreter
from pinfold.locking import LockError, LockOptions, lock
from pinfold.locking.builddeps import Discovery, Needer
from pinfold.locking.needs import require_current_locks
from pinfold.locking.resolve import Source
from pinfold.locks import Pin, parse_lock
from pinfold.runner import Runner
from tests.artifacts import _NETWORK_ENV, copy_real, make_sdist, make_tree, make_wheel
from tests.conftest import CAN_UNSHARE, cli, installed, needs_unshare, write


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artifacts shared by the tests; each project copies what it uses."""
    wh = tmp_path_factory.mktemp("lock-wheelhouse")
    copy_real(wh, "pbr", "setuptools")
    make_sdist(wh, "legacy-proj", "1.0", backend="legacy-pbr")
    make_sdist(wh, "pbr-proj", "2.0", backend="pbr-backend")
    make_sdist(wh, "plain-sdist", "3.0", backend="setuptools")
    make_sdist(wh, "broken", "1.0", backend="setuptools", files={
        "setup.py": "raise RuntimeError('this backend is broken on purpose')\n",
        "broken/__init__.py": "",
    })
    # A build dependency that exists only as an sdist: it has build dependencies of its own.
    make_sdist(wh, "build-helper", "1.0", backend="setuptools")
    make_sdist(wh, "needs-helper", "1.0", backend="setuptools", files={
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=40.8.0", "build-helper"]\n'
                          'build-backend = "setuptools.build_meta"\n\n'
                          '[project]\nname = "needs-helper"\nversion = "1.0"\n\n'
                          '[tool.setuptools]\npackages = ["needs_helper"]\n',
        "needs_helper/__init__.py": "",
    })
    make_wheel(wh, "plain-wheel", "1.0", requires=["dep-a>=1"])
    make_wheel(wh, "dep-a", "1.0")
    make_wheel(wh, "other-lib", "1.0")
    make_wheel(wh, "wants-new-dep-a", "1.0", requires=["dep-a>=1.1"])
    return wh


def project(root: Path, wheelhouse: Path, needs: str, *, files: Sequence[str], build_lock: bool = True,
            extra: str = "") -> Path:
    """A project folder: env.yaml with ``needs`` (YAML text), no locks yet, a wheelhouse of ``files``."""
    (root / "wheelhouse").mkdir(parents=True)
    for pattern in files:
        for f in wheelhouse.glob(pattern):
            shutil.copy2(f, root / "wheelhouse" / f.name)
    return write(root / "env.yaml", (
        "path: env\n"
        "index:\n"
        "  find_links: [wheelhouse]\n"
        "requirements: requirements/runtime.txt\n"
        + ("build_requirements: requirements/build.txt\n" if build_lock else "")
        + f"needs: {needs}\n" + extra
    ))


WHEELS = ("plain_wheel-*", "dep_a-*", "other_lib-*")
SDIST_PROJECT = ("pbr-*", "setuptools-*", "legacy_proj-*", "pbr_proj-*", "plain_wheel-*", "dep_a-*",
                 "build_helper-*", "needs_helper-*")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def offline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real `pinfold` command under `unshare -n`: no network at all."""
    return subprocess.run(["unshare", "-n", sys.executable, "-m", "pinfold", *args], capture_output=True,
                          text=True, env=env if env is not None else dict(os.environ), check=False)


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def pins_of(lock: Path) -> dict[str, Pin]:
    """The pins of a lock file, by name."""
    return {str(name): pin for name, pin in parse_lock(lock)[0].by_name().items()}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (temporary files of a failed write would show up here)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@needs_unshare
def test_lock_offline_with_pbr_sdists_then_build_offline(tmp_path: Path, wheelhouse: Path) -> None:
    """The issue's main case: setup_requires=['pbr'] and a pbr.build sdist, all offline; and
    a build dependency that is an sdist itself, whose build dependencies are locked too."""
    spec = project(tmp_path, wheelhouse, "[legacy-proj, pbr-proj, plain-wheel, needs-helper]",
                   files=SDIST_PROJECT)
    done = offline("lock", "--json", str(spec))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["built_from_source"] == [
        "build-helper==1.0", "legacy-proj==1.0", "needs-helper==1.0", "pbr-proj==2.0"]
    assert result["runtime"]["added"] == ["dep-a==1.0", "legacy-proj==1.0", "needs-helper==1.0", "pbr==7.1.3",
                                          "pbr-proj==2.0", "plain-wheel==1.0", "setuptools==84.2.1"]
    assert "build lock requirements/build.txt (3 pins): changed" in done.stderr

    wh = tmp_path / "wheelhouse"
    assert not parse_lock(tmp_path / "requirements" / "build.txt")[1]
    pins = pins_of(tmp_path / "requirements" / "build.txt")
    assert sorted(pins) == ["build-helper", "pbr", "setuptools"]
    # Hashed from the wheelhouse's own files; `# via` names the sdists that need them.
    assert pins["pbr"].hashes == {sha256(next(wh.glob("pbr-*.whl")))}
    assert pins["setuptools"].hashes == {sha256(next(wh.glob("setuptools-*.whl")))}
    assert pins["pbr"].via == ("legacy-proj==1.0", "pbr-proj==2.0")
    assert pins["setuptools"].via == ("build-helper==1.0", "legacy-proj==1.0", "needs-helper==1.0", "pbr")
    assert pins["build-helper"].via == ("needs-helper==1.0",)
    runtime_text = (tmp_path / "requirements" / "runtime.txt").read_text()
    assert "pinfold lock" in runtime_text and str(tmp_path) not in runtime_text
    assert "legacy-proj==1.0 \\\n    --hash=sha256:" in runtime_text
    assert "    # via env.yaml:needs\n" in runtime_text

    # (Locking twice gives byte-identical files: see test_lock_upstream_downloads_into_the_wheelhouse.)
    assert cli("lock", "--check", str(spec))[0] == 0

    done = offline("build", str(spec))
    assert done.returncode == 0, done.stderr
    got = installed(tmp_path / "env")
    assert got == {"legacy-proj": "1.0", "pbr-proj": "2.0", "plain-wheel": "1.0", "dep-a": "1.0",
                   "needs-helper": "1.0", "pbr": "7.1.3", "setuptools": "84.2.1"}


@pytest.mark.slow
def test_missing_build_dependency_is_named_and_locks_stay(tmp_path: Path, wheelhouse: Path) -> None:
    spec = project(tmp_path, wheelhouse, "[plain-sdist]", files=("setuptools-*", "plain_sdist-*"))
    assert cli("lock", str(spec))[0] == 0
    assert [p.name for p in parse_lock(tmp_path / "requirements" / "build.txt")[0].pins] == ["setuptools"]
    before = snapshot(tmp_path / "requirements")
    next((tmp_path / "wheelhouse").glob("setuptools-*.whl")).unlink()
    code, _, err = cli("lock", "--upgrade", str(spec))
    assert code == 1, err
    assert "setuptools>=40.8.0 (build dependency of plain-sdist==3.0): not in wheelhouse/" in err
    assert "no lock was written" in err and "Traceback" not in err
    assert snapshot(tmp_path / "requirements") == before


@pytest.mark.slow
def test_upgrade_package_moves_one_pin_only(tmp_path: Path, wheelhouse: Path) -> None:
    spec = project(tmp_path, wheelhouse, "[plain-wheel, other-lib]", files=WHEELS, build_lock=False)
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    runtime = tmp_path / "requirements" / "runtime.txt"
    assert {p.name: str(p.version) for p in parse_lock(runtime)[0].pins} == {
        "dep-a": "1.0", "other-lib": "1.0", "plain-wheel": "1.0"}
    make_wheel(tmp_path / "wheelhouse", "dep-a", "1.1")
    make_wheel(tmp_path / "wheelhouse", "other-lib", "1.1")

    # Nothing asked to move: every pin stays, even with newer versions in the index.
    code, _, err = cli("lock", str(spec))
    assert code == 0 and "runtime lock requirements/runtime.txt (3 pins): unchanged" in err, err

    before = runtime.read_bytes()
    code, out, err = cli("lock", "--upgrade-package", "dep-a", "--dry-run", "--json", str(spec))
    assert code == 0, err
    assert json.loads(out)["runtime"]["moved"] == [{"name": "dep-a", "from": "1.0", "to": "1.1"}]
    assert runtime.read_bytes() == before and "dry run: nothing was written" in err

    code, _, err = cli("lock", "--upgrade-package", "dep a", str(spec))
    assert code == 2 and "--upgrade-package 'dep a': expected NAME or NAME==VERSION" in err, err
    assert "internal error" not in err and runtime.read_bytes() == before

    code, out, err = cli("lock", "--upgrade-package", "dep-a", "--json", str(spec))
    assert code == 0, err
    changes = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert changes == ["moved    dep-a 1.0 -> 1.1"]
    assert {p.name: str(p.version) for p in parse_lock(runtime)[0].pins} == {
        "dep-a": "1.1", "other-lib": "1.0", "plain-wheel": "1.0"}
    report = json.loads(out)["runtime"]
    assert report["added"] == report["removed"] == report["rehashed"] == []

    code, _, err = cli("lock", "--upgrade", str(spec))
    assert code == 0, err
    assert [line.strip() for line in err.splitlines() if line.startswith("  ")] == [
        "moved    other-lib 1.0 -> 1.1"]

    # A need added to env.yaml's inline list: --check (for CI) says so, exit 1.
    assert cli("lock", "--check", str(spec))[0] == 0
    spec.write_text(spec.read_text().replace("other-lib]", "other-lib, dep-a]"))
    code, _, err = cli("lock", "--check", str(spec))
    assert code == 1, err
    assert "stale: env.yaml's `needs` changed since `pinfold lock` wrote it (added dep-a)" in err


@pytest.mark.slow
def test_check_catches_needs_added_and_build_refuses(tmp_path: Path, wheelhouse: Path) -> None:
    needs_file = write(tmp_path / "requirements" / "runtime.in", "# what the app needs\nplain-wheel\n")
    spec = project(tmp_path, wheelhouse, "requirements/runtime.in", files=WHEELS, build_lock=False)
    assert cli("lock", str(spec))[0] == 0
    assert "    # via -r requirements/runtime.in\n" in (tmp_path / "requirements" / "runtime.txt").read_text()
    code, _, err = cli("lock", "--check", str(spec))
    assert code == 0 and "match env.yaml's needs" in err, err

    needs_file.write_text("plain-wheel\nother-lib>=1\n")
    code, out, err = cli("lock", "--check", "--json", str(spec))
    assert code == 1, err
    assert "requirements/runtime.txt: stale: env.yaml's `needs` changed since `pinfold lock` wrote it " \
           "(added other-lib>=1)" in err
    assert json.loads(out)["ok"] is False
    # build refuses the stale lock before anything is created (bad input: exit 2).
    code, _, err = cli("build", str(spec))
    assert code == 2 and "run `pinfold lock`" in err, err
    assert not (tmp_path / "env").exists()
    # The policy lives with the commands that install: load_spec itself reads a stale lock.
    with pytest.raises(SpecError, match="added other-lib>=1"):
        require_current_locks(load_spec(spec))

    assert cli("lock", str(spec))[0] == 0
    assert cli("lock", "--check", str(spec))[0] == 0
    needs_file.write_text("other-lib>=1\n")  # a need removed is stale too
    code, _, err = cli("lock", "--check", str(spec))
    assert code == 1 and "removed plain-wheel" in err, err


@pytest.mark.slow
def test_check_refuses_a_lock_without_a_needs_record(tmp_path: Path, wheelhouse: Path) -> None:
    spec = project(tmp_path, wheelhouse, "[dep-a]", files=WHEELS, build_lock=False)
    art = next((tmp_path / "wheelhouse").glob("dep_a-*.whl"))
    write(tmp_path / "requirements" / "runtime.txt", f"dep-a==1.0 --hash={sha256(art)}\n")
    # A hand-written lock that pins every need is accepted by build ...
    assert load_spec(spec).needs is not None
    # ... but --check cannot vouch for it.
    code, _, err = cli("lock", "--check", str(spec))
    assert code == 1 and "records no `needs`" in err, err


@pytest.mark.slow
def test_develop_tree_requirements_and_build_needs_are_locked(tmp_path: Path, wheelhouse: Path) -> None:
    tree = make_tree(tmp_path / "src", "my-app", "0.1", requires=["plain-wheel"])
    spec = project(tmp_path, wheelhouse, "[other-lib]", files=(*WHEELS, "setuptools-*"),
                   extra=f"develop: [{tree.relative_to(tmp_path)}]\n")
    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    runtime = pins_of(tmp_path / "requirements" / "runtime.txt")
    build = pins_of(tmp_path / "requirements" / "build.txt")
    # The tree's own dependencies are in the runtime lock, its build backend in the build lock.
    assert sorted(runtime) == ["dep-a", "other-lib", "plain-wheel"]
    assert runtime["plain-wheel"].via == ("src/my_app-0.1 (develop)",)
    assert sorted(build) == ["setuptools"] and build["setuptools"].via == ("src/my_app-0.1 (develop)",)
    assert cli("lock", "--check", str(spec))[0] == 0
    spec.write_text(spec.read_text().replace("develop: [src/my_app-0.1]\n", ""))
    code, _, err = cli("lock", "--check", str(spec))
    assert code == 1 and "removed -e src/my_app-0.1" in err, err


@pytest.mark.slow
def test_unsatisfiable_need_names_versions_and_index(tmp_path: Path, wheelhouse: Path) -> None:
    spec = project(tmp_path, wheelhouse, "['dep-a>=3']", files=WHEELS, build_lock=False)
    code, _, err = cli("lock", str(spec))
    assert code == 1, err
    assert "dep-a>=3 (needed by env.yaml:needs): wheelhouse/ holds only dep-a 1.0" in err
    assert not (tmp_path / "requirements").exists()


@pytest.mark.slow
def test_conflict_names_both_sides(tmp_path: Path, wheelhouse: Path) -> None:
    spec = project(tmp_path, wheelhouse, "[dep-a==1.0, wants-new-dep-a]",
                   files=(*WHEELS, "wants_new_dep_a-*"), build_lock=False)
    code, _, err = cli("lock", str(spec))
    assert code == 1, err
    assert ("conflict on dep-a: dep-a==1.0 (needed by env.yaml:needs) and "
            "dep-a>=1.1 (needed by wants-new-dep-a==1.0)") in err


@pytest.mark.slow
def test_failing_backend_names_the_sdist_and_its_message(tmp_path: Path, wheelhouse: Path) -> None:
    spec = project(tmp_path, wheelhouse, "[broken]", files=("setuptools-*", "broken-*"))
    code, _, err = cli("lock", str(spec))
    assert code == 1, err
    assert "broken==1.0: its build backend failed getting requirements to build wheel: " \
           "RuntimeError: this backend is broken on purpose" in err
    assert not (tmp_path / "requirements").exists()


@pytest.mark.slow
def test_discovery_names_a_failing_backend_and_its_message(tmp_path: Path, wheelhouse: Path) -> None:
    """Build-dependency discovery on its own: the hook fails, the error names sdist and message."""
    spec = load_spec(project(tmp_path, wheelhouse, "[broken]", files=("setuptools-*", "broken-*")),
                     purpose="lock")
    runner = Runner()
    discovery = Discovery(runner, Source.local(spec), inspect_interpreter(spec.python, runner),
                          tmp_path / "work")
    broken = next((tmp_path / "wheelhouse").glob("broken-*.tar.gz"))
    with pytest.raises(LockError) as info:
        discovery.run(Needer(label="broken==1.0", path=broken))
    assert str(info.value) == (
        "broken==1.0: its build backend (setuptools.build_meta) cannot report its build requirements "
        "(get_requires_for_build_wheel): RuntimeError: this backend is broken on purpose")
    plain = make_sdist(tmp_path / "more", "plain-sdist", "3.0")
    found = discovery.run(Needer(label="plain-sdist==3.0", path=plain.path))
    assert found.requires == ("setuptools>=40.8.0",) and found.environment == {"setuptools": "84.2.1"}


def test_needs_are_validated_with_locations(tmp_path: Path) -> None:
    (tmp_path / "wheelhouse").mkdir()
    write(tmp_path / "reqs.in", "ok-name\n--index-url http://example.invalid/simple\n")
    spec = write(tmp_path / "env.yaml", (
        "path: env\nindex: {find_links: wheelhouse}\nrequirements: runtime.txt\n"
        "needs:\n  - 'not a requirement!'\n  - 'x @ file:///tmp/x.whl'\n"
        "build_needs: reqs.in\n"))
    with pytest.raises(SpecError) as info:
        load_spec(spec, purpose="lock")
    text = str(info.value)
    assert "env.yaml:5:5: 'not a requirement!' is not a requirement" in text
    assert "env.yaml:6:5: 'x @ file:///tmp/x.whl' is a direct reference" in text
    assert "reqs.in:2: --index-url is not allowed here" in text


def test_lock_without_needs_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "wheelhouse").mkdir()
    spec = write(tmp_path / "env.yaml", "path: env\nindex: {find_links: wheelhouse}\n"
                                        "requirements: runtime.txt\n")
    code, _, err = cli("lock", str(spec))
    assert code == 2 and "needs: missing" in err, err
    with pytest.raises(SpecError):
        lock(load_spec(spec, purpose="lock"), options=LockOptions(dry_run=True))


@pytest.mark.slow
@needs_unshare
def test_callers_pip_settings_do_not_leak_into_lock(tmp_path: Path, wheelhouse: Path) -> None:
    """PIP_FIND_LINKS, PIP_INDEX_URL and a pip config file offering a newer dep-a change
    nothing: had any reached pip-compile, dep-a==2.0 would be in the lock."""
    spec = project(tmp_path / "p", wheelhouse, "[plain-wheel]", files=WHEELS, build_lock=False)
    leak = tmp_path / "leak"
    make_wheel(leak, "dep-a", "2.0")
    config = write(leak / "pip.conf", f"[global]\nfind-links = {leak}\nno-index = true\n")
    env = dict(os.environ, PIP_FIND_LINKS=str(leak), PIP_CONFIG_FILE=str(config),
               PIP_INDEX_URL=f"file://{leak}", PIP_UPGRADE="1", PIP_PRE="1")
    done = offline("lock", "-v", str(spec), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(pins_of(tmp_path / "p" / "requirements" / "runtime.txt")["dep-a"].version) == "1.0"
    assert str(leak) not in done.stderr


def simple_index(root: Path, artifacts: list[Path]) -> str:
    """A PEP 503 index of ``artifacts`` as file:// pages: an upstream that needs no network."""
    for f in artifacts:
        name = f.name.split("-")[0].replace("_", "-").lower()
        page = root / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        with page.open("a") as fh:
            fh.write(f'<a href="file://{f}#{sha256(f).replace(":", "=")}">{f.name}</a>\n')
    return f"file://{root}/"


@pytest.mark.slow
def test_lock_upstream_downloads_into_the_wheelhouse(tmp_path: Path, wheelhouse: Path) -> None:
    """The online mode's path, against a file:// upstream index."""
    files = [f for pattern in ("setuptools-*", "plain_sdist-*", *WHEELS) for f in wheelhouse.glob(pattern)]
    upstream = simple_index(tmp_path / "upstream", files)
    spec = project(tmp_path / "p", wheelhouse, "[plain-sdist, plain-wheel]", files=())
    wh = tmp_path / "p" / "wheelhouse"

    # --dry-run downloads into a temporary folder, and writes nothing.
    dry = project(tmp_path / "dry", wheelhouse, "[plain-wheel]", files=())
    code, _, err = cli("lock", "--upstream", upstream, "--dry-run", str(dry))
    assert code == 0, err
    assert "added    plain-wheel==1.0" in err and "dry run: nothing was written" in err
    assert snapshot(tmp_path / "dry") == {"env.yaml": dry.read_bytes()}

    code, out, err = cli("lock", "--upstream", upstream, "--json", str(spec))
    assert code == 0, err
    assert sorted(json.loads(out)["downloaded"]) == sorted(p.name for p in wh.iterdir()) == [
        "dep_a-1.0-py3-none-any.whl", "plain_sdist-3.0.tar.gz", "plain_wheel-1.0-py3-none-any.whl",
        "setuptools-84.2.1-py3-none-any.whl"]
    assert pins_of(tmp_path / "p" / "requirements" / "build.txt")["setuptools"].via == ("plain-sdist==3.0",)
    # Locking again gives byte-identical files and writes none: offline this time, with that
    # index as env.yaml's own (local) index.url, and an sdist whose backend is asked again.
    before = snapshot(tmp_path / "p" / "requirements")
    spec.write_text(spec.read_text().replace("  find_links: [wheelhouse]\n", f"  url: {upstream}\n"))
    code, _, err = cli("lock", str(spec))
    assert code == 0 and "nothing was written" in err, err
    assert snapshot(tmp_path / "p" / "requirements") == before


@pytest.mark.slow
@pytest.mark.network
def test_lock_upstream_then_build_offline(tmp_path: Path) -> None:
    """The online mode once against the real index: stevedore 3.5.2 from its sdist."""
    write(tmp_path / "requirements.in", "--no-binary stevedore\nstevedore==3.5.2\n")
    (tmp_path / "wheelhouse").mkdir()
    spec = write(tmp_path / "env.yaml", (
        "path: env\nindex: {find_links: wheelhouse}\nrequirements: runtime.txt\n"
        "build_requirements: build.txt\nneeds: requirements.in\n"))
    env = {**os.environ, **_NETWORK_ENV}
    done = subprocess.run([sys.executable, "-m", "pinfold", "lock", "--upstream", str(spec)], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    runtime = pins_of(tmp_path / "runtime.txt")
    build = pins_of(tmp_path / "build.txt")
    assert str(runtime["stevedore"].version) == "3.5.2" and len(runtime["stevedore"].hashes) == 1
    assert {"pbr", "setuptools"} <= set(build)
    assert "stevedore==3.5.2" in build["pbr"].via
    files = {p.name for p in (tmp_path / "wheelhouse").iterdir()}
    assert "stevedore-3.5.2.tar.gz" in files
    assert any(f.startswith("pbr-") for f in files) and any(f.startswith("setuptools-") for f in files)
    if CAN_UNSHARE:
        done = offline("build", str(spec))
        assert done.returncode == 0, done.stderr
        assert installed(tmp_path / "env")["stevedore"] == "3.5.2"
