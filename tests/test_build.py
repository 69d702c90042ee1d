"""`pinfold build` and `pinfold fetch` end to end, with real pip, virtualenv and artifacts.

The wheelhouse holds sdists the tests make themselves (a legacy ``setup_requires=['pbr']``
one, a ``pbr.build`` one, a setuptools one), a wheel, and real pbr and setuptools wheels.
The build tests run once per installer backend (``installer: pip`` and ``installer: uv``):
both must keep the same guarantees.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinfold import BuildError, BuildResult, PreflightError, build, load_spec
from pinfold.errors import CommandError, PinfoldError
from pinfold.index import ArtifactIndex
from pinfold.inside import script
from pinfold.installers import installer_for
from pinfold.pyccache import cache_info, prune
from pinfold.record import read_digest, read_record
from pinfold.runner import Runner
from pinfold.spec import Spec
from pinfold.stages import Compile, Context, CreateFresh, Preflight
from pinfold.uptodate import up_to_date
from tests.artifacts import Artifact, copy_real, make_sdist, make_tree, make_wheel
from tests.conftest import cli, installed, installer_calls, needs_unshare, write


@dataclass(frozen=True)
class Wheelhouse:
    """A session's shared wheelhouse; tests copy it before changing anything."""

    path: Path
    runtime: tuple[Artifact, ...]
    build: tuple[Artifact, ...]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    wh = tmp_path_factory.mktemp("wheelhouse")
    pbr, setuptools = copy_real(wh, "pbr", "setuptools")
    runtime = (
        make_sdist(wh, "legacy-proj", "1.0", backend="legacy-pbr"),
        make_sdist(wh, "pbr-proj", "2.0", backend="pbr-backend"),
        make_sdist(wh, "plain-sdist", "3.0", backend="setuptools"),
        make_wheel(wh, "plain-wheel", "1.0"),
        pbr,
        setuptools,
    )
    return Wheelhouse(wh, runtime, (pbr, setuptools))


def lock_text(artifacts: tuple[Artifact, ...] | list[Artifact], via: dict[str, str] | None = None) -> str:
    lines = []
    for a in artifacts:
        lines.append(f"{a.name}=={a.version} \\\n    --hash=sha256:{a.sha256}\n")
        if via and a.name in via:
            lines.append(f"    # via {via[a.name]}\n")
    return "".join(lines)


BUILD_VIA = {"pbr": "legacy-proj==1.0, pbr-proj==2.0", "setuptools": "pbr, plain-sdist==3.0"}


def make_project(root: Path, wh: Wheelhouse, *, extra_yaml: str = "", runtime: str | None = None,
                 installer: str = "pip", build: str | None = None) -> Path:
    """A project folder: env.yaml, both locks, and its own copy of the wheelhouse."""
    shutil.copytree(wh.path, root / "wheelhouse")
    write(root / "runtime.txt", runtime if runtime is not None else lock_text(wh.runtime))
    write(root / "build.txt", build if build is not None else lock_text(wh.build, BUILD_VIA))
    return write(root / "env.yaml", (
        "version: 1\n"
        "path: env\n"
        f"installer: {installer}\n"
        "index:\n"
        "  find_links: [wheelhouse]\n"
        "requirements: runtime.txt\n"
        "build_requirements: build.txt\n"
    ) + extra_yaml)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uv_cache: Path) -> None:
    monkeypatch.chdir(tmp_path)
    # Never the user's uv cache: one for the test session, shared by its uv builds.
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(uv_cache))


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(params=["pip", "uv"])
def installer(request: pytest.FixtureRequest) -> str:
    """The installer backend under test: every guarantee must hold for both."""
    return str(request.param)


def pyc_files(env: Path, package: str) -> list[str]:
    site = next(env.glob("lib/python*/site-packages"))
    return sorted(p.name for p in (site / package).glob("__pycache__/*.pyc"))


def run_in(env: Path, code: str) -> str:
    done = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          check=True, cwd="/")
    return done.stdout.strip()


def offline_cli(spec: Path, *args: str, env: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
    """Run the real `pinfold` command under `unshare -n`: no network at all."""
    return subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "pinfold", *args, str(spec)],
        capture_output=True, text=True, env=env if env is not None else dict(os.environ), check=False,
    )


@pytest.mark.slow
@needs_unshare
def test_hermetic_build_offline(tmp_path: Path, wheelhouse: Wheelhouse, installer: str) -> None:
    spec = make_project(tmp_path, wheelhouse, installer=installer)
    done = offline_cli(spec, "build", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and not result["up_to_date"]
    assert [s["name"] for s in result["stages"]][:5] == [
        "preflight", "create", "install", "develop", "compile"]
    assert f"with {installer}" in result["stages"][2]["detail"]
    env = tmp_path / "env"
    assert env.is_symlink()
    assert installed(env) == {"legacy-proj": "1.0", "pbr-proj": "2.0", "plain-sdist": "3.0",
                              "plain-wheel": "1.0", "pbr": "7.1.3", "setuptools": "84.2.1"}
    assert run_in(env, "import legacy_proj, pbr_proj, plain_sdist, plain_wheel; print('ok')") == "ok"
    # One line per stage with its duration, on stderr.
    assert "[install]" in done.stderr and "s  " in done.stderr
    # Byte-compiled once by the compile stage, wheels and sdist builds alike.
    tag = sys.implementation.cache_tag
    for package in ("legacy_proj", "plain_sdist", "plain_wheel"):
        assert pyc_files(env, package) == [f"__init__.{tag}.pyc"], package


@pytest.mark.slow
def test_compile_false_leaves_no_bytecode(tmp_path: Path, wheelhouse: Wheelhouse,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """pip installs with --no-compile: with `compile: false` nothing writes a .pyc."""
    monkeypatch.setenv("PINFOLD_CACHE_DIR", str(tmp_path / "cache"))  # empty: nothing to link outside
    spec_file = make_project(tmp_path, wheelhouse, extra_yaml="compile: false\n")
    result = build(load_spec(spec_file))
    skipped = {s.name: s.detail for s in result.stages if s.status == "skipped"}
    assert skipped["compile"] == "disabled (compile: false)"
    site = next((tmp_path / "env").glob("lib/python*/site-packages"))
    assert not list(site.rglob("*.pyc"))


def test_a_file_that_does_not_compile_is_a_warning(tmp_path: Path) -> None:
    """Real packages ship Python 2 test data: like pip, that does not fail the build."""
    write(tmp_path / "good.py", "x = 1\n")
    write(tmp_path / "bad.py", "print 'python 2'\n")
    done = subprocess.run([sys.executable, "-I", str(script("compile")), str(tmp_path)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.splitlines()[0].startswith(f"FAILED {tmp_path / 'bad.py'}: "), done.stdout
    assert "compiled 1 of 2 files" in done.stdout
    assert [p.name.split(".")[0] for p in (tmp_path / "__pycache__").iterdir()] == ["good"]


def test_compile_replaces_hard_linked_bytecode(tmp_path: Path) -> None:
    """An update clones with hard links: recompiling a stale .pyc must give it a new inode
    (py_compile writes a temporary file and renames it), never write through the link."""
    old, new = tmp_path / "old", tmp_path / "new"
    write(old / "mod.py", "x = 1\n")
    command = [sys.executable, "-I", "-S", str(script("compile"))]  # what the compile stage runs
    subprocess.run([*command, str(old)], check=True)
    pyc = next(old.glob("__pycache__/mod.*.pyc"))
    before = pyc.read_bytes()
    for src in (old / "mod.py", pyc):
        (new / src.relative_to(old)).parent.mkdir(parents=True, exist_ok=True)
        os.link(src, new / src.relative_to(old))
    # The update installs a new version of the module (a new file, as pip and uv do),
    # within the same second: the .pyc header's size, not its mtime, tells it is stale.
    (new / "mod.py").unlink()
    write(new / "mod.py", "x = 2  # changed\n")
    mtime = (old / "mod.py").stat().st_mtime
    os.utime(new / "mod.py", (mtime, mtime))
    subprocess.run([*command, str(new)], check=True)
    new_pyc = new / pyc.relative_to(old)
    assert new_pyc.stat().st_ino != pyc.stat().st_ino
    assert pyc.read_bytes() == before and pyc.stat().st_nlink == 1
    assert new_pyc.read_bytes() != before


@pytest.mark.slow
@pytest.mark.parametrize("compiled", [True, False], ids=["compile", "no-compile"])
def test_uv_cache_edited_through_an_environment_is_caught(tmp_path: Path, wheelhouse: Wheelhouse,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        compiled: bool) -> None:
    """uv hard-links installed files out of its cache: a file edited in place in one
    environment changes the cache, and the next build must refuse it, not install it
    (with ``compile: false`` too, where no compile stage runs alongside the check)."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "own-uv-cache"))  # poisoned on purpose
    wheel = [a for a in wheelhouse.runtime if a.name == "plain-wheel"]
    spec = load_spec(make_project(tmp_path, wheelhouse, installer="uv", runtime=lock_text(wheel),
                                  extra_yaml="" if compiled else "compile: false\n"))
    first = build(spec)
    install = next(s.detail for s in first.stages if s.name == "install")
    if compiled:  # beside the compile stage, which reports it
        assert install.endswith("their RECORD check goes on in the background, beside the compile stage")
    else:  # in place: nothing to overlap
        assert install.endswith(" installed files match their wheels' RECORD")
    module = next(first.env_dir.glob("lib/python*/site-packages/plain_wheel/__init__.py"))
    with module.open("r+b") as fh:  # in place, as an editor that keeps hard links writes
        fh.write(b"#")
    with pytest.raises(BuildError) as info:
        build(spec, fresh=True)
    assert "installed files differ from the wheels they came from" in str(info.value)
    assert "plain_wheel/__init__.py: its sha256 differs from the RECORD of its wheel" in str(info.value)
    assert (tmp_path / "env").resolve() == first.env_dir
    assert [p.name for p in (tmp_path / "env.d").iterdir() if p.is_dir()] == [first.env_dir.name]


def _uv_project(root: Path, wheels: list[Artifact]) -> Spec:
    """A uv project in ``root`` whose lock pins ``wheels`` (built into ``root/wheelhouse``)."""
    write(root / "runtime.txt", lock_text(wheels))
    return load_spec(write(root / "env.yaml", (
        "version: 1\npath: env\ninstaller: uv\nindex:\n  find_links: [wheelhouse]\n"
        "requirements: runtime.txt\n")))


@pytest.mark.slow
def test_uv_record_check_runs_alongside_compile_and_checks_shipped_bytecode_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh uv build checks its files against their RECORDs while the compile stage works,
    except the ``__pycache__`` files a wheel ships: the compile stage replaces one that is
    not valid for its source, so those are checked before it starts. A tampered one in uv's
    cache fails the build, where a check after the compile would have read the new file."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "own-uv-cache"))  # poisoned on purpose
    tag = sys.implementation.cache_tag
    shipped = make_wheel(tmp_path / "wheelhouse", "shipped", "1.0", files={
        "shipped/__init__.py": "VALUE = 1\n",
        f"shipped/__pycache__/__init__.{tag}.pyc": "not bytecode: compile replaces it\n",
    })
    spec = _uv_project(tmp_path, [shipped])
    first = build(spec)
    stages = {s.name: s.detail for s in first.stages}
    assert "their RECORD check goes on in the background, beside the compile stage" in stages["install"]
    assert "; meanwhile " in stages["compile"]
    assert "installed files match their wheels' RECORD" in stages["compile"]
    pyc = next(first.env_dir.glob(f"lib/python*/site-packages/shipped/__pycache__/__init__.{tag}.pyc"))
    assert pyc.read_bytes() != b"not bytecode: compile replaces it\n"  # the compile stage's own
    cached = [f for f in (tmp_path / "own-uv-cache").rglob(f"__init__.{tag}.pyc")
              if f.read_bytes() == b"not bytecode: compile replaces it\n"]
    assert len(cached) == 1
    with cached[0].open("r+b") as fh:  # in place: every later install hard-links this file
        fh.write(b"N")
    with pytest.raises(BuildError) as info:
        build(spec, fresh=True)
    assert f"shipped/__pycache__/__init__.{tag}.pyc: its sha256 differs from the RECORD" in str(info.value)
    assert (tmp_path / "env").resolve() == first.env_dir
    assert [p.name for p in (tmp_path / "env.d").iterdir() if p.is_dir()] == [first.env_dir.name]


@pytest.mark.slow
def test_no_code_of_the_environment_runs_before_its_record_check_passed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compile stage starts an interpreter of the environment while uv's RECORD check may
    still run: a ``.pth`` file changed in uv's cache must fail the build without its code
    ever running (the compiler starts without site processing)."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "own-uv-cache"))  # poisoned on purpose
    wheel = make_wheel(tmp_path / "wheelhouse", "with-pth", "1.0", files={
        "with_pth/__init__.py": "VALUE = 1\n", "with_pth.pth": "import os\n"})
    spec = _uv_project(tmp_path, [wheel])
    first = build(spec)
    marker = tmp_path / "the-pth-ran"
    pth = next(first.env_dir.glob("lib/python*/site-packages/with_pth.pth"))
    with pth.open("r+b") as fh:  # in place: uv's cached file, which the next build links
        fh.write(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n".encode())
    with pytest.raises(BuildError, match=r"with_pth\.pth: its sha256 differs from the RECORD"):
        build(spec, fresh=True)
    assert not marker.exists()
    assert (tmp_path / "env").resolve() == first.env_dir


def test_a_check_left_running_is_settled_or_abandoned(tmp_path: Path) -> None:
    """``Context.start_check`` runs the check in a thread of its own; ``settle`` waits for it
    and gives its verdict (its error too), ``abandon`` waits for it without one."""
    write(tmp_path / "runtime.txt", "")
    (tmp_path / "wheelhouse").mkdir()
    spec = load_spec(write(tmp_path / "env.yaml", (
        "version: 1\npath: env\nindex:\n  find_links: [wheelhouse]\nrequirements: runtime.txt\n")))
    ctx = Context(spec=spec, runner=Runner(), index=ArtifactIndex(spec.index), env_dir=tmp_path / "built")
    release, ran = threading.Event(), threading.Event()

    def blocked() -> str:
        release.wait(60)
        ran.set()
        return "12 installed files match their wheels' RECORD"

    ctx.start_check(blocked)
    pending = ctx.pending_check
    assert pending is not None and not pending.done()  # not run in place: it waits for us
    release.set()
    assert ctx.settle() == "12 installed files match their wheels' RECORD"
    assert ctx.pending_check is None and ctx.settle() is None

    def failing() -> str:
        raise BuildError("installed files differ from the wheels they came from")

    ctx.start_check(failing)
    with pytest.raises(BuildError, match="installed files differ"):
        ctx.settle()
    assert ctx.pending_check is None
    release.clear()
    ran.clear()
    ctx.start_check(blocked)
    threading.Timer(0.2, release.set).start()
    ctx.abandon()
    assert ran.is_set() and ctx.pending_check is None


@pytest.mark.slow
def test_a_failed_check_is_the_error_when_the_compile_fails_too(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The compile stage failing while uv's RECORD check is pending (here: its compiler timed
    out) still waits for the check, and a file that differs from its wheel is what is
    reported; with nothing that differs, the compile's own failure is."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "own-uv-cache"))  # poisoned on purpose
    shipped = make_wheel(tmp_path / "wheelhouse", "shipped", "1.0",
                         files={"shipped/__init__.py": "VALUE = 1\n"})
    spec = _uv_project(tmp_path, [shipped])
    for tampered in (False, True):
        ctx = _created(spec, tmp_path / f"built-{tampered}")
        pending = installer_for(spec, ctx.runner, preflight=ctx.preflight).install_lock(ctx.env_python)
        assert pending is not None
        if tampered:
            source = next(ctx.env_dir.glob("lib/python*/site-packages/shipped/__init__.py"))
            with source.open("r+b") as fh:
                fh.write(b"#")
        ctx.start_check(pending)
        ctx.runner = Runner(timeout=0.001)  # no compiler starts that fast
        with pytest.raises(PinfoldError) as info:
            Compile().run(ctx)
        if tampered:
            assert "shipped/__init__.py: its sha256 differs from the RECORD" in str(info.value)
        else:
            assert isinstance(info.value, CommandError) and "byte-compiling" in str(info.value)
        assert ctx.pending_check is None


def _created(spec: Spec, env_dir: Path) -> Context:
    """A build's context after its pre-flight and create stages, the real ones, at ``env_dir``."""
    ctx = Context(spec=spec, runner=Runner(), index=ArtifactIndex(spec.index), env_dir=env_dir)
    Preflight().run(ctx)
    CreateFresh().run(ctx)
    return ctx


@pytest.mark.slow
def test_uv_leaves_no_check_of_bytecode_to_run_after_the_compile(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract the overlap rests on, step by step: uv's install returns only once the
    ``__pycache__`` files a wheel ships are checked, and the check it hands back reads none of
    them, so a ``.pyc`` replaced meanwhile (as the compile stage does) is no failure."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "own-uv-cache"))
    tag = sys.implementation.cache_tag
    shipped = make_wheel(tmp_path / "wheelhouse", "shipped", "1.0", files={
        "shipped/__init__.py": "VALUE = 1\n", f"shipped/__pycache__/__init__.{tag}.pyc": "shipped\n"})
    spec = _uv_project(tmp_path, [shipped])
    ctx = _created(spec, tmp_path / "built")
    uv = installer_for(spec, ctx.runner, preflight=ctx.preflight)
    pending = uv.install_lock(ctx.env_python)
    assert pending is not None
    pyc = next(ctx.env_dir.glob(f"lib/python*/site-packages/shipped/__pycache__/__init__.{tag}.pyc"))
    replaced = pyc.with_name("new.tmp")
    replaced.write_bytes(b"what the compile stage wrote\n")
    replaced.replace(pyc)  # a new file, as py_compile writes it
    assert pending().endswith(" installed files match their wheels' RECORD")
    source = pyc.parent.parent / "__init__.py"
    with source.open("r+b") as fh:  # what it does read, it checks
        fh.write(b"#")
    with pytest.raises(BuildError, match=r"shipped/__init__\.py: its sha256 differs"):
        pending()
    # Shipped bytecode changed in uv's cache: the install itself fails, before any compile.
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "other-uv-cache"))
    second = _created(spec, tmp_path / "again")
    assert installer_for(spec, second.runner, preflight=second.preflight).install_lock(second.env_python)
    cached = [f for f in (tmp_path / "other-uv-cache").rglob(f"__init__.{tag}.pyc")
              if f.read_bytes() == b"shipped\n"]
    assert len(cached) == 1
    with cached[0].open("r+b") as fh:
        fh.write(b"S")
    third = _created(spec, tmp_path / "third")
    with pytest.raises(BuildError, match=rf"__pycache__/__init__\.{tag}\.pyc: its sha256 differs"):
        installer_for(spec, third.runner, preflight=third.preflight).install_lock(third.env_python)


@pytest.mark.slow
def test_uv_cache_is_warm_for_a_project_in_a_new_folder(tmp_path: Path, wheelhouse: Wheelhouse,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two checkouts of one project in different folders, one wheelhouse: the second build finds
    the sdists already built in uv's cache (uv keys it by the index page's location)."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "own-uv-cache"))
    shared = tmp_path / "wheelhouse"
    shutil.copytree(wheelhouse.path, shared)
    built: dict[str, list[str]] = {}
    for name in ("release-1", "release-2"):
        root = tmp_path / name
        make_project(root, wheelhouse, installer="uv")
        (root / "env.yaml").write_text((root / "env.yaml").read_text().replace(
            "find_links: [wheelhouse]", f"find_links: [{shared}]"))
        lines: list[str] = []
        build(load_spec(root / "env.yaml"), runner=Runner(on_output=lines.append))
        built[name] = sorted(line.split()[1] for line in lines if line.strip().startswith("Built "))
    assert built["release-1"] == ["legacy-proj==1.0", "pbr-proj==2.0", "plain-sdist==3.0"], built
    assert built["release-2"] == [], built


@pytest.mark.slow
def test_missing_build_dependency_is_named_before_anything_is_created(
    tmp_path: Path, wheelhouse: Wheelhouse, installer: str
) -> None:
    spec_file = make_project(tmp_path, wheelhouse, installer=installer)
    next((tmp_path / "wheelhouse").glob("pbr-*.whl")).unlink()
    code, _, err = cli("build", str(spec_file))
    assert code == 1, err
    assert "pbr==7.1.3 (build dependency of legacy-proj==1.0, pbr-proj==2.0): not in wheelhouse/" in err
    # pbr is a runtime pin too (pbr projects need it at run time): named once as such.
    assert "  pbr==7.1.3: not in wheelhouse/" in err
    assert "Traceback" not in err
    assert not (tmp_path / "env").exists() and not (tmp_path / "env.d").exists()


@pytest.mark.slow
def test_unlocked_build_dependency_fails_closed(tmp_path: Path, wheelhouse: Wheelhouse,
                                                installer: str) -> None:
    """pbr is in the wheelhouse (a runtime pin) but not in the build lock: building the pbr
    sdists must fail, never take pbr unpinned. pip 26.3 refuses it by itself; uv 0.13.9
    would install it, so pinfold's uv backend hides it from build environments."""
    setuptools = [a for a in wheelhouse.build if a.name == "setuptools"]
    spec_file = make_project(tmp_path, wheelhouse, installer=installer, build=lock_text(setuptools))
    with pytest.raises(BuildError) as info:
        build(load_spec(spec_file))
    text = str(info.value)
    assert "installing the runtime lock failed" in text, text
    if installer == "uv":
        assert "a build dependency is not locked" in text, text
        assert "pbr (build dependency of " in text and ": not in the build lock build.txt" in text, text
    else:
        assert isinstance(info.value, CommandError), text
        assert "pbr" in info.value.output and "must have their versions pinned" in info.value.output, text
    assert not (tmp_path / "env").exists()


@pytest.mark.slow
def test_tampered_wheel_is_refused_with_both_hashes(tmp_path: Path, wheelhouse: Wheelhouse,
                                                    installer: str) -> None:
    spec_file = make_project(tmp_path, wheelhouse, installer=installer)
    wheel = next((tmp_path / "wheelhouse").glob("plain_wheel-*.whl"))
    original = next(a for a in wheelhouse.runtime if a.name == "plain-wheel").sha256
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    with pytest.raises(PreflightError) as info:
        build(load_spec(spec_file))
    text = str(info.value)
    assert f"wheelhouse/{wheel.name}: hash mismatch for plain-wheel==1.0" in text
    assert f"the lock expects sha256:{original}" in text
    import hashlib

    assert f"the file has sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}" in text
    assert not (tmp_path / "env.d").exists()


@pytest.mark.slow
@needs_unshare
def test_callers_pip_settings_do_not_leak(tmp_path: Path, wheelhouse: Wheelhouse, installer: str) -> None:
    """PIP_FIND_LINKS, PIP_INDEX_URL, a pip config file and their uv counterparts (UV_*,
    a uv.toml) pointing at another wheelhouse with another version change nothing. Had
    any of them reached pip or uv, the constraint `plain-wheel==2.0` would have made the
    install fail or install 2.0."""
    spec = make_project(tmp_path, wheelhouse, installer=installer)
    leak = tmp_path / "leak"
    make_wheel(leak, "plain-wheel", "2.0")
    make_wheel(leak, "intruder", "1.0")
    constraints = write(leak / "constraints.txt", "plain-wheel==2.0\n")
    simple = leak / "simple" / "plain-wheel"
    simple.mkdir(parents=True)
    write(simple / "index.html", '<a href="../../plain_wheel-2.0-py3-none-any.whl">w</a>\n')
    config = write(leak / "pip.conf", f"[global]\nfind-links = {leak}\nconstraint = {constraints}\n"
                                      f"index-url = file://{leak}/simple\n")
    uv_toml = write(leak / "uv.toml", f'find-links = ["{leak}"]\nno-build-isolation = true\n'
                                      f'[pip]\nconstraint = ["{constraints}"]\n'
                                      f'extra-index-url = ["file://{leak}/simple"]\n')
    env = dict(os.environ, PIP_FIND_LINKS=str(leak), PIP_INDEX_URL=f"file://{leak}/simple",
               PIP_CONFIG_FILE=str(config), PIP_CONSTRAINT=str(constraints), PIP_EXTRA_INDEX_URL=
               f"file://{leak}/simple", PIP_NO_BUILD_ISOLATION="1", PIP_REQUIRE_HASHES="1",
               UV_INDEX_URL=f"file://{leak}/simple", UV_DEFAULT_INDEX=f"file://{leak}/simple",
               UV_EXTRA_INDEX_URL=f"file://{leak}/simple", UV_FIND_LINKS=str(leak),
               UV_CONSTRAINT=str(constraints), UV_CONFIG_FILE=str(uv_toml), UV_NO_BUILD_ISOLATION="1",
               UV_CACHE_DIR=str(leak / "uv-cache"), UV_NO_VERIFY_HASHES="1", UV_LINK_MODE="symlink")
    done = offline_cli(spec, "build", "-v", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert installed(tmp_path / "env")["plain-wheel"] == "1.0"
    assert "intruder" not in installed(tmp_path / "env")
    assert str(leak) not in done.stderr
    assert not (leak / "uv-cache").exists()


@pytest.mark.slow
def test_develop_tree_is_installed_editable(tmp_path: Path, wheelhouse: Wheelhouse, installer: str) -> None:
    tree = make_tree(tmp_path / "src", "my-app", "0.1", requires=["plain-wheel"])
    spec_file = make_project(tmp_path, wheelhouse, installer=installer,
                             extra_yaml=f"develop:\n  - {tree.relative_to(tmp_path)}\n")
    result = build(load_spec(spec_file))
    assert [s.name for s in result.stages if s.status == "ok"][:5] == [
        "preflight", "create", "install", "develop", "compile"]
    # The compile stage compiles the environment, never the user's checkout (checked before
    # anything imports from the tree: an import writes __pycache__ there, as Python does).
    assert not list(tree.rglob("*.pyc"))
    where = run_in(tmp_path / "env", "import my_app; print(my_app.__file__)")
    assert where.startswith(str(tree)), where


@pytest.mark.slow
def test_update_moves_and_drops_pins(tmp_path: Path, wheelhouse: Wheelhouse, installer: str) -> None:
    """The update path (hard-link clone, install_pins, uninstall) with either backend; the
    moved pin is byte-compiled, the previous environment keeps its own files."""
    spec_file = make_project(tmp_path, wheelhouse, installer=installer)
    first = build(load_spec(spec_file))
    newer = make_wheel(tmp_path / "wheelhouse", "plain-wheel", "2.0")
    kept = [a for a in wheelhouse.runtime if a.name not in ("plain-wheel", "plain-sdist")]
    write(tmp_path / "runtime.txt", lock_text([*kept, newer]))
    runner = Runner()
    second = build(load_spec(spec_file), runner=runner)
    assert second.plan is not None and second.plan.mode == "update", second.plan
    assert f"update with {installer}: +plain-wheel==2.0 -plain-sdist" in second.stages[2].detail
    assert installed(tmp_path / "env")["plain-wheel"] == "2.0"
    assert "plain-sdist" not in installed(tmp_path / "env")
    assert run_in(tmp_path / "env", "import plain_wheel; print(plain_wheel.__version__)") == "2.0"
    assert pyc_files(tmp_path / "env", "plain_wheel") == [f"__init__.{sys.implementation.cache_tag}.pyc"]
    assert installed(first.env_dir)["plain-wheel"] == "1.0" and "plain-sdist" in installed(first.env_dir)
    assert run_in(first.env_dir, "import plain_wheel; print(plain_wheel.__version__)") == "1.0"


@pytest.fixture()
def simple_index(tmp_path: Path, wheelhouse: Wheelhouse) -> Iterator[str]:
    """A PEP 503 simple index of the wheelhouse, served over HTTP on 127.0.0.1."""
    root = tmp_path / "served"
    files = root / "files"
    shutil.copytree(wheelhouse.path, files)
    for a in (*wheelhouse.runtime, *wheelhouse.build):
        page = root / "simple" / a.name / "index.html"
        write(page, f'<a href="../../files/{a.path.name}#sha256={a.sha256}">{a.path.name}</a>\n')
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_build_from_a_local_simple_index(tmp_path: Path, wheelhouse: Wheelhouse, simple_index: str,
                                         installer: str) -> None:
    spec_file = make_project(tmp_path / "p", wheelhouse, installer=installer)
    text = spec_file.read_text().replace("  find_links: [wheelhouse]\n", f"  url: {simple_index}\n")
    spec_file.write_text(text)
    shutil.rmtree(tmp_path / "p" / "wheelhouse")
    result = build(load_spec(spec_file))
    assert not result.up_to_date
    assert installed(tmp_path / "p" / "env")["legacy-proj"] == "1.0"


@pytest.mark.slow
def test_second_build_is_a_noop_without_pip(tmp_path: Path, wheelhouse: Wheelhouse, installer: str) -> None:
    spec = load_spec(make_project(tmp_path, wheelhouse, installer=installer))
    first_runner = Runner()
    first = build(spec, runner=first_runner)
    assert installer_calls(first_runner), first_runner.history
    runner = Runner()
    second = build(spec, runner=runner)
    assert second.up_to_date and second.env_dir == first.env_dir
    assert not installer_calls(runner), runner.history
    assert not any("pip" in " ".join(argv) for argv in runner.history), runner.history


@pytest.mark.slow
def test_a_build_from_a_wheelhouse_folder_loads_no_url_or_lock_machinery(tmp_path: Path,
                                                                         wheelhouse: Wheelhouse) -> None:
    """Structural, not timed: a full build from a folder never imports what only a URL index
    (urllib.request and with it http.client and ssl, html.parser), `pinfold lock` (its
    `lock` step, `build`) or a pylock.toml (packaging.pylock) needs."""
    spec_file = make_project(tmp_path, wheelhouse)
    heavy = ("urllib.request", "http.client", "ssl", "html.parser", "netrc", "pinfold.locking.run",
             "build", "packaging.pylock")
    probe = ("import sys; from pinfold.cli import main; code = main(['build', sys.argv[1]]); "
             f"print(code, sorted(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe, str(spec_file)], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr
    assert "is up to date" not in done.stderr


@pytest.mark.slow
def test_noop_fast_path_answers_only_when_nothing_it_watches_changed(tmp_path: Path,
                                                                     wheelhouse: Wheelhouse) -> None:
    """`pinfold build` with nothing changed skips validation (no interpreter run while its files
    are as stamped, no pipeline imported); any watched change hands the decision back to the
    full path and its messages."""
    tree = make_tree(tmp_path / "src", "devtree", "0.1")
    spec_file = make_project(tmp_path, wheelhouse,
                             extra_yaml=f"develop: [{tree.relative_to(tmp_path)}]\n")
    first = build(load_spec(spec_file))
    runner = Runner()
    quick = up_to_date(spec_file, runner)
    assert quick is not None and quick.env_dir == first.env_dir
    # This interpreter (pinfold's own venv python) is known by its files: it is not started.
    assert json.loads((first.env_dir / "pinfold.json").read_text())["watch"]["interpreter"]
    assert runner.history == []
    slow = build(load_spec(spec_file))

    def timeless(result: BuildResult) -> dict[str, object]:
        return {k: v for k, v in result.to_json().items() if k != "seconds"}

    assert slow.up_to_date and timeless(quick) == timeless(slow)
    # The CLI renders the fast path's own answer (no result types imported): the same document.
    code, out, _ = cli("build", "--json", str(spec_file))
    shown = json.loads(out)
    assert code == 0 and shown.pop("seconds") >= 0 and shown.pop("ok") is True
    assert shown.pop("schema") == "pinfold/build/1" and shown.pop("digest") == read_digest(first.env_dir)
    assert shown == timeless(slow) and shown["up_to_date"] is True

    # Structural, not timed: the CLI's no-op never imports the pipeline, the spec, packaging,
    # rich (the live progress display), the manifest or subprocess (it starts nothing), nor the
    # record's and results' types, `dataclasses` (it reads pinfold.json as JSON) or `typing`.
    probe = ("import sys; from pinfold.cli import main; code = main(['build', sys.argv[1]]); "
             "print(code, sorted(m for m in ('pinfold.pipeline', 'pinfold.spec', 'packaging', 'rich', "
             "'pinfold.manifest', 'subprocess', 'pinfold.record', 'pinfold.results', 'dataclasses', "
             "'typing') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-I", "-c", probe, str(spec_file)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr
    assert "is up to date" in done.stderr

    def changed(edit: Callable[[], object], undo: Callable[[], object]) -> bool:
        edit()
        try:
            return up_to_date(spec_file, Runner()) is None
        finally:
            undo()  # the exact bytes again: the next change starts from a no-op

    def append(path: Path, text: str) -> tuple[Callable[[], object], Callable[[], object]]:
        before = path.read_bytes()
        return (lambda: path.write_bytes(before + text.encode()), lambda: path.write_bytes(before))

    def rename(path: Path) -> tuple[Callable[[], object], Callable[[], object]]:
        away = path.with_name(path.name + ".away")
        return (lambda: path.rename(away), lambda: away.rename(path))

    state_file = first.env_dir / "pinfold.json"
    state = state_file.read_text()
    recorded = json.loads(state)
    # Another interpreter answered the build, and no stamp says this one is it.
    recorded["inputs"]["python"] = "another interpreter"
    del recorded["watch"]["interpreter"]
    other_python = json.dumps(recorded)
    dist_info = next(first.env_dir.glob("lib/python*/site-packages/plain_wheel-*.dist-info"))
    for name, (edit, undo) in {
        "env.yaml": append(spec_file, "# a comment\n"),
        "runtime lock": append(tmp_path / "runtime.txt", "# a comment\n"),
        "build lock": append(tmp_path / "build.txt", "# a comment\n"),
        "develop tree metadata": append(tree / "pyproject.toml", "# a comment\n"),
        "wheelhouse folder": rename(tmp_path / "wheelhouse"),
        "develop tree": rename(tree),
        "installed distribution": rename(dist_info),
        "interpreter": (lambda: state_file.write_text(other_python), lambda: state_file.write_text(state)),
    }.items():
        assert changed(edit, undo), name
        assert up_to_date(spec_file, Runner()) is not None, f"{name}: not restored"

    # A record the full path's reader cannot read is not up to date by the fast path either:
    # edited, its checksum no longer holds, and the reader's own checks decide.
    good = json.loads(state)
    assert up_to_date(spec_file, Runner()) is not None
    for name, broken in {
        "not JSON": "{", "a list": "[1, 2]", "a newer schema": {**good, "schema": 99},
        "a schema as text": {**good, "schema": "2"},
        "no hashes": {k: v for k, v in good.items() if k != "hashes"},
        "installed as text": {**good, "installed": "plain_wheel==1.0"},
        "the interpreter as a number": {**good, "inputs": {**good["inputs"], "python": 3}},
        "folders as text": {**good, "watch": {**good["watch"], "folders": "/"}},
        # Parts the fast path does not use, edited by hand: the reader refuses them, so it does.
        "the fingerprint as a number": {**good, "fingerprint": 5},
        "the develop trees' states as a list": {**good, "watch": {**good["watch"], "develop": []}},
        "packed as text": {**good, "packed": "x"},
        "the digest as a number": {**good, "digest": 7},
    }.items():
        state_file.write_text(broken if isinstance(broken, str) else json.dumps(broken))
        assert read_record(first.env_dir) is None and up_to_date(spec_file, Runner()) is None, name
    state_file.write_text(json.dumps({**good, "pinfold": "0.0.1"}))  # readable, by another pinfold
    assert read_record(first.env_dir) is not None and up_to_date(spec_file, Runner()) is None
    state_file.write_text(state)

    # A stamp that no longer holds (one of its files has another identity): the interpreter is
    # asked, answers as recorded, and it is still a no-op.
    restamped = json.loads(state)
    binary = next(p for p, ident in restamped["watch"]["interpreter"].items() if ident)
    restamped["watch"]["interpreter"][binary][4] -= 1  # its ctime
    state_file.write_text(json.dumps(restamped))
    runner = Runner()
    assert up_to_date(spec_file, runner) is not None and len(runner.history) == 1, runner.history
    state_file.write_text(state)

    # A watched folder gone: the full path says what is wrong, exactly as without the fast path.
    (tmp_path / "wheelhouse").rename(tmp_path / "elsewhere")
    code, _, err = cli("build", str(spec_file))
    assert code == 2 and "index.find_links" in err and "does not exist" in err, err


@pytest.mark.slow
def test_noop_asks_an_interpreter_whose_link_moved(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    """``python: ./py``, a link to the interpreter: the no-op starts none while it is as stamped;
    moved to another interpreter, the fast path asks that one and hands over to the full path."""
    base = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    others = [p for p in sorted(base.parent.parent.parent.glob("3.1[0-9]*/bin/python3.1[0-9]"))
              if p.resolve() != base and p.is_file()]
    if not others:
        pytest.skip("no second interpreter beside pinfold's own to move the link to")
    spec_file = make_project(tmp_path, wheelhouse, extra_yaml="python: ./py\n")
    (tmp_path / "py").symlink_to(base)
    first = build(load_spec(spec_file))
    runner = Runner()
    assert up_to_date(spec_file, runner) is not None and runner.history == []
    (tmp_path / "py").unlink()
    (tmp_path / "py").symlink_to(others[-1])
    runner = Runner()
    assert up_to_date(spec_file, runner) is None and len(runner.history) == 1
    (tmp_path / "py").unlink()
    (tmp_path / "py").symlink_to(base)
    assert up_to_date(spec_file, Runner()) is not None
    assert build(load_spec(spec_file)).env_dir == first.env_dir


@pytest.mark.slow
def test_failed_build_keeps_the_previous_environment(tmp_path: Path, wheelhouse: Wheelhouse,
                                                     installer: str) -> None:
    spec_file = make_project(tmp_path, wheelhouse, installer=installer)
    first = build(load_spec(spec_file))
    # An sdist whose build fails: pip fails inside the install stage.
    broken = make_sdist(tmp_path / "wheelhouse", "broken-build", "1.0",
                        files={"setup.py": "raise SystemExit('this sdist cannot be built')\n"})
    with (tmp_path / "runtime.txt").open("a") as fh:
        fh.write(broken.pin() + "\n")
    with pytest.raises(BuildError) as info:
        build(load_spec(spec_file))
    assert "this sdist cannot be built" in str(info.value)
    assert (tmp_path / "env").resolve() == first.env_dir
    assert sorted(p.name for p in (tmp_path / "env.d").iterdir() if not p.name.startswith(".")) == [
        first.env_dir.name]
    assert run_in(tmp_path / "env", "import legacy_proj; print('still here')") == "still here"


def test_an_interpreter_that_cannot_run_is_named_with_what_to_do(tmp_path: Path,
                                                                 wheelhouse: Wheelhouse) -> None:
    broken = write(tmp_path / "broken-python", "#!/bin/sh\necho 'no such Python' >&2\nexit 3\n")
    broken.chmod(0o755)
    spec_file = make_project(tmp_path, wheelhouse, extra_yaml=f"python: {broken}\n")
    code, _, err = cli("build", str(spec_file))
    assert code == 1, err
    assert f"cannot run the target interpreter {broken}" in err
    assert "set `python` in env.yaml" in err and "no such Python" in err
    assert "Traceback" not in err
    assert not (tmp_path / "env").exists() and not (tmp_path / "env.d").exists()


def test_existing_plain_directory_is_refused_untouched(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    spec_file = make_project(tmp_path, wheelhouse)
    (tmp_path / "env").mkdir()
    keep = write(tmp_path / "env" / "mine.txt", "user data")
    code, _, err = cli("build", str(spec_file))
    assert code == 2, err
    assert "is not a pinfold environment" in err
    assert keep.read_text() == "user data"


@pytest.mark.slow
def test_fetch_downloads_exactly_the_locked_artifacts(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    """Fetch from an upstream index (a local file:// one here), then build offline."""
    upstream = tmp_path / "upstream"
    for a in (*wheelhouse.runtime, *wheelhouse.build):
        write(upstream / a.name / "index.html",
              f'<a href="file://{a.path}#sha256={a.sha256}">{a.path.name}</a>\n')
    spec_file = make_project(tmp_path / "p", wheelhouse)
    shutil.rmtree(tmp_path / "p" / "wheelhouse")
    (tmp_path / "p" / "wheelhouse").mkdir()
    code, out, err = cli("fetch", str(spec_file), "--index-url", f"file://{upstream}", "--json")
    assert code == 0, err
    got = sorted(json.loads(out)["downloaded"])
    assert got == sorted(a.path.name for a in wheelhouse.runtime)
    code, out, err = cli("fetch", str(spec_file), "--index-url", f"file://{upstream}", "--json")
    assert code == 0 and json.loads(out)["downloaded"] == [], err
    if shutil.which("unshare"):
        from tests.conftest import CAN_UNSHARE

        if CAN_UNSHARE:
            assert offline_cli(spec_file, "build").returncode == 0


@pytest.mark.slow
@pytest.mark.network
def test_fetch_from_the_real_index_then_build_offline(tmp_path: Path) -> None:
    """The online mode once against the real index: stevedore 3.5.2 from its sdist."""
    from pinfold.locks import parse_lock

    repo = Path(__file__).resolve().parent.parent
    runtime, _ = parse_lock(repo / "requirements" / "runtime.txt")
    build_lock, _ = parse_lock(repo / "requirements" / "build.txt")
    wanted = {"stevedore", "pbr", "setuptools"}
    pins = [p for p in runtime.pins if p.name in wanted]
    write(tmp_path / "runtime.txt", "".join(p.requirement_line() + "\n" for p in pins))
    write(tmp_path / "build.txt", "".join(p.requirement_line() + "\n" for p in build_lock.pins))
    (tmp_path / "wheelhouse").mkdir()
    spec_file = write(tmp_path / "env.yaml", "path: env\nindex: {find_links: wheelhouse}\n"
                                             "requirements: runtime.txt\nbuild_requirements: build.txt\n")
    from tests.artifacts import _NETWORK_ENV

    env = {**os.environ, **_NETWORK_ENV}
    done = subprocess.run([sys.executable, "-m", "pinfold", "fetch", str(spec_file)], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "wheelhouse").iterdir()) == [
        "pbr-7.1.3-py2.py3-none-any.whl", "setuptools-84.2.1-py3-none-any.whl", "stevedore-3.5.2.tar.gz"]
    from tests.conftest import CAN_UNSHARE

    if CAN_UNSHARE:
        done = offline_cli(spec_file, "build")
        assert done.returncode == 0, done.stderr
        assert installed(tmp_path / "env")["stevedore"] == "3.5.2"


def pip_commands(runner: Runner) -> list[str]:
    """The pip subcommands (install, wheel, ...) a build ran."""
    return [argv[argv.index(a) + 1] for argv in installer_calls(runner)
            for a in argv if Path(a).name == "__pip-runner__.py"]


@pytest.mark.slow
def test_pip_builds_each_sdist_once_per_build_lock(tmp_path: Path, wheelhouse: Wheelhouse,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """pip: the wheels of the sdists are built once, kept in pinfold's wheel cache and installed
    from there by later builds (same bytes: same digest); a cached wheel whose bytes changed
    is not used but built again."""
    monkeypatch.setenv("PINFOLD_CACHE_DIR", str(tmp_path / "cache"))
    spec_file = make_project(tmp_path, wheelhouse, installer="pip")
    runner = Runner()
    first = build(load_spec(spec_file), runner=runner)
    assert pip_commands(runner)[:2] == ["wheel", "install"], runner.history
    entries = sorted((tmp_path / "cache" / "wheels").glob("*/src-*"))
    assert len(entries) == 3, entries  # legacy-proj, pbr-proj, plain-sdist
    info = cache_info()
    assert info.wheels == 3 and info.wheel_bytes > 0 and info.size > info.pyc_bytes + info.digest_bytes
    runner = Runner()
    second = build(load_spec(spec_file), runner=runner, fresh=True)
    assert "wheel" not in pip_commands(runner), runner.history
    assert installed(second.env_dir) == installed(first.env_dir)
    first_record, second_record = read_record(first.env_dir), read_record(second.env_dir)
    assert first_record is not None and second_record is not None
    assert first_record.digest == second_record.digest
    # A cached wheel changed behind pinfold's back: not offered, built again, entry replaced.
    (wheel,) = (w for e in entries for w in e.glob("plain_sdist-*.whl"))
    tampered = wheel.read_bytes() + b"\0"
    wheel.write_bytes(tampered)
    runner = Runner()
    third = build(load_spec(spec_file), runner=runner, fresh=True)
    assert pip_commands(runner)[:2] == ["wheel", "install"], runner.history
    assert installed(third.env_dir)["plain-sdist"] == "3.0"
    third_record = read_record(third.env_dir)
    assert third_record is not None and third_record.digest == first_record.digest
    assert wheel.read_bytes() != tampered  # the entry was written anew
    # `pinfold cache prune` bounds the wheels too.
    prune(0)
    assert cache_info().wheels == 0 and not list((tmp_path / "cache" / "wheels").glob("*/src-*"))
