"""`pinfold import`: Buildout trees (tests/buildout/<case>/) read, mapped and reported."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pinfold import load_spec
from pinfold.buildout import BuildoutError, import_buildout, read_buildout
from pinfold.buildout.config import condition
from pinfold.buildout.importer import Finding, nearest_version, sort_findings
from pinfold.buildout.remote import fetch_text
from pinfold.locking import LockError, lock
from tests.artifacts import copy_real, make_sdist, make_wheel
from tests.conftest import cli, write

CASES = Path(__file__).parent / "buildout"


def tree(tmp_path: Path, case: str) -> Path:
    shutil.copytree(CASES / case, tmp_path / case)
    return tmp_path / case


def test_launchpad_tree_maps_and_is_deterministic(tmp_path: Path) -> None:
    root = tree(tmp_path, "launchpad")
    code, _, err = cli("import", str(root / "buildout.cfg"))
    assert code == 0, err
    env = (root / "env.yaml").read_text()
    assert "download-cache/dist  # [buildout] download-cache (buildout.cfg:7)" in env
    assert "entry_point: \"twisted.scripts.twistd:run\"" in env and "- interpreter: py" in env
    assert "extra_paths: [lib]" in env and "defaults: [\"--tests-pattern\", \"^tests$\", \"-v\"]" in env
    needs = (root / "requirements" / "runtime.in").read_text()
    assert "--require-pins" in needs and "twisted  # [scripts]" in needs and "lpapp" not in needs
    cons = (root / "requirements" / "constraints.txt").read_text()
    assert 'zope.interface==8.7 ; python_version != "2.7"  # framework-versions.cfg:3' in cons
    assert 'zope.interface==4.1.0 ; python_version == "2.7"' in cons
    assert "oldthing-1.0-py2.7.egg" in err  # eggs in the cache are reported
    # [versions:python311] in versions.cfg: a marker on both pins, the conditional one winning.
    assert 'lazr.config==2.2.2 ; python_version != "3.11"  # versions.cfg:7' in cons
    assert 'lazr.config==2.2.3 ; python_version == "3.11"  # versions.cfg:15' in cons
    # [test] environment = testenv and initialization, on the test_runner script.
    assert "    environment:\n      LPCONFIG: testrunner\n      LP_PERSISTENT_TEST_SERVICES: \"0\"" in env
    assert "lpapp.CONFIG = 'testrunner-initialized'" in env
    spec = load_spec(root / "env.yaml", purpose="lock")
    assert [s.name for s in spec.scripts] == ["twistd-for-txpkgupload", "twistd-for-iharness", "py", "test"]
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert cli("import", str(root / "buildout.cfg"))[0] == 0  # same bytes: no --force needed
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_report_follows_the_files_in_reading_order(tmp_path: Path) -> None:
    """buildout.cfg first, then what it extends, each by line number (9 before 10)."""
    root = tree(tmp_path, "launchpad")
    result = import_buildout(read_buildout(root / "buildout.cfg"))
    files = ["buildout.cfg", "versions.cfg", "framework-versions.cfg"]
    places = []
    for f in result.findings:
        name, _, line = f.where.rpartition(":")
        places.append((files.index(name), int(line)))
    assert places == sorted(places) and len({p[0] for p in places}) == 3
    err = cli("import", "-v", str(root / "buildout.cfg"))[2]
    assert err.index("buildout.cfg:5:") < err.index("buildout.cfg:15:") < err.index("versions.cfg:")
    shuffled = [Finding("note", "b.cfg:2", "x"), Finding("note", "elsewhere", "y"),
                Finding("note", "a.cfg:10", "z"), Finding("note", "a.cfg:9", "w"),
                Finding("note", "a.cfg", "v"), Finding("note", "http://h:80/v.cfg:3", "u")]
    assert [f.message for f in sort_findings(shuffled, ["a.cfg", "b.cfg", "http://h:80/v.cfg"])] == \
        ["v", "w", "z", "x", "u", "y"]


def test_existing_env_yaml_needs_force(tmp_path: Path) -> None:
    root = tree(tmp_path, "package")
    write(root / "env.yaml", "version: 1\n")
    code, _, err = cli("import", str(root / "buildout.cfg"))
    assert code == 2 and "would overwrite env.yaml" in err
    assert (root / "env.yaml").read_text() == "version: 1\n"
    assert cli("import", "--force", str(root / "buildout.cfg"))[0] == 0


def test_a_part_that_cannot_be_mapped_is_exit_1_and_the_files_are_still_written(tmp_path: Path) -> None:
    """``parts = ... app`` with no ``[app]`` section: what could be mapped is written, the
    part is an error in the report, and the exit code says the import is incomplete."""
    root = tree(tmp_path, "package")
    cfg = root / "buildout.cfg"
    cfg.write_text(cfg.read_text().replace("parts = test py\n", "parts = test py app\n"))
    code, _, err = cli("import", str(cfg))
    assert code == 1, err
    assert "buildout.cfg:3: part app: no [app] section" in err, err
    assert (root / "env.yaml").is_file() and (root / "requirements" / "runtime.in").is_file()
    (root / "wheelhouse").mkdir()  # where the written env.yaml looks for artifacts
    assert sorted(s.name for s in load_spec(root / "env.yaml", purpose="lock").scripts) == ["py", "test"]
    code, out, _ = cli("import", "--json", str(cfg))  # the same bytes again: no --force needed
    data = json.loads(out)
    assert code == 1 and not data["ok"]
    assert {"level": "error", "where": "buildout.cfg:3", "message": "part app: no [app] section"}.items() \
        <= next(f for f in data["report"] if "app" in f["message"]).items()


def test_dry_run_prints_and_writes_nothing(tmp_path: Path) -> None:
    root = tree(tmp_path, "package")
    code, out, _ = cli("import", "--dry-run", str(root / "buildout.cfg"))
    assert code == 0 and "==> env.yaml <==" in out and not (root / "env.yaml").exists()
    code, out, _ = cli("import", "--dry-run", "--json", str(root / "buildout.cfg"))
    data = json.loads(out)
    assert data["ok"] and data["mapping"]["scripts"] == ["py", "test"]
    assert data["mapping"]["parts"] == {"py": "zc.recipe.egg", "test": "zc.recipe.testrunner"}


def test_invalid_versions_reported_with_nearest(tmp_path: Path) -> None:
    root = tree(tmp_path, "invalid")
    code, _, err = cli("import", str(root / "buildout.cfg"))
    assert code == 0
    assert "buildout.cfg:7: [versions] Twisted = 13.0.0-p2: not a PEP 440" in err
    assert "Twisted==13.0.0.post2" in err
    cons = (root / "requirements" / "constraints.txt").read_text()
    assert "# pytz==2009j" in cons and "ampoule==0.2.1  #" in cons
    assert nearest_version("1.4.0dev-gary-r102684") == "1.4.0.dev0+gary.r102684"


def test_syntax_error_located(tmp_path: Path) -> None:
    root = tree(tmp_path, "syntax")
    code, _, err = cli("import", str(root / "buildout.cfg"))
    assert code == 2 and "buildout.cfg:6: 'this line is not an option'" in err


def test_remote_extends_refused_then_fetched(tmp_path: Path) -> None:
    root = tree(tmp_path, "plone")
    code, _, err = cli("import", str(root / "buildout.cfg"))
    assert code == 2
    assert "buildout.cfg:3: extends https://dist.plone.org/release/6.0-latest/versions.cfg" in err
    assert not (root / "env.yaml").exists()
    served = tmp_path / "served"
    write(served / "versions.cfg", "[versions]\nZope = 5.8\nPillow = 9.0\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/versions.cfg"
        cfg_text = (root / "buildout.cfg").read_text().replace(
            "https://dist.plone.org/release/6.0-latest/versions.cfg", url)
        write(root / "buildout.cfg", cfg_text)
        cfg = read_buildout(root / "buildout.cfg", fetch=fetch_text)
    finally:
        server.shutdown()
        server.server_close()
    assert cfg.downloaded == [(url, "buildout.cfg:3")]
    result = import_buildout(cfg)
    cons = result.files["requirements/constraints.txt"]
    assert f"Zope==5.8  # {url}:2" in cons and "Plone==6.0.0  # buildout.cfg:13" in cons
    needs = result.files["requirements/runtime.in"]
    # eggs += / -= across files, ${buildout:eggs} through ${instance:eggs}: Pillow removed,
    # Zope[wsgi] kept with its extra, the develop tree my.app not a need.
    assert "Plone  #" in needs and "Zope[wsgi]" in needs and "Pillow" not in needs
    assert "my.app" not in needs.split("-c constraints.txt")[1].split("#")[0]
    env = result.files["env.yaml"]
    assert "- interpreter: zopepy" in env and "CHAMELEON_CACHE: " in env
    assert "zope_i18n_compile_mo_files: \"true\"" in env and "src/my.app" in env
    messages = "\n".join(f"{f.where}: {f.message}" for f in result.findings)
    assert "base.cfg:11: mr.developer source other.thing" in messages
    assert "part precompile (plone.recipe.command): no equivalent" in messages
    assert "part instance (plone.recipe.zope2instance)" in messages
    assert not result.failed


def test_reading_rules(tmp_path: Path) -> None:
    write(tmp_path / "base" / "base.cfg", "[buildout]\nparts = a\n\n[a]\nrecipe = zc.recipe.egg\n"
                                          "eggs = one\n    two\nx = 1\nx = 2\n")
    write(tmp_path / "buildout.cfg", "[buildout]\nextends = base/base.cfg\n\n[a]\neggs += three\n"
                                     "eggs -= one\nref = ${:x}/${buildout:directory}\n"
                                     "[a:windows]\neggs += winonly\n")
    cfg = read_buildout(tmp_path / "buildout.cfg")
    eggs = cfg.get("a", "eggs")
    assert eggs is not None and eggs.items() == [("two", "base/base.cfg:7"), ("three", "buildout.cfg:5")]
    ref = cfg.get("a", "ref")
    assert ref is not None and ref.text == f"2/{tmp_path}"
    assert any("set twice" in m for _, m, _ in cfg.notes)
    assert any("[a:windows] does not apply" in m for _, m, _ in cfg.notes)
    assert condition("python27 or windows").marker == '(python_version == "2.7") or (sys_platform == "win32")'
    write(tmp_path / "loop.cfg", "[buildout]\nextends = loop.cfg\n")
    with pytest.raises(BuildoutError, match="extends itself"):
        read_buildout(tmp_path / "loop.cfg")



@pytest.mark.slow
def test_package_all_the_way(tmp_path: Path) -> None:
    """import, lock against a wheelhouse, build, then run bin/test and bin/py."""
    import subprocess

    root = tree(tmp_path, "package")
    wh = root / "wheelhouse"
    copy_real(wh, "zope-testrunner", "zope-exceptions", "zope-interface", "setuptools")
    assert cli("import", str(root / "buildout.cfg"))[0] == 0
    code, _, err = cli("lock", str(root / "env.yaml"))
    assert code == 0, err
    code, _, err = cli("build", str(root / "env.yaml"))
    assert code == 0, err
    done = subprocess.run([str(root / "bin" / "test")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 1 tests" in done.stdout or "1 tests" in done.stdout
    done = subprocess.run([str(root / "bin" / "py"), "-c", "import mypkg; print(mypkg.MODE)"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "buildout", done.stderr


#: A Buildout that pins its egg but not the egg's dependency, except for Python 2.7.
PICKY = """[buildout]
parts = app
find-links = wheelhouse
allow-picked-versions = false

[versions]
lpapp = 1.0

[versions:python27]
lazr.delegates = 1.0

[app]
recipe = zc.recipe.egg
eggs = lpapp
"""


@pytest.mark.slow
def test_require_pins_refuses_picked_versions(tmp_path: Path) -> None:
    """allow-picked-versions = false: a runtime pin no `==` constraint pins for this
    interpreter (the python27 one does not count) fails the lock; the pin added, it passes."""
    root = tmp_path / "picky"
    make_wheel(root / "wheelhouse", "lpapp", "1.0", requires=["lazr.delegates"])
    for version in ("1.0", "2.1"):
        make_wheel(root / "wheelhouse", "lazr.delegates", version)
    write(root / "buildout.cfg", PICKY)
    assert cli("import", str(root / "buildout.cfg"))[0] == 0
    assert (root / "requirements" / "runtime.in").read_text().count("--require-pins") == 1
    with pytest.raises(LockError) as caught:
        lock(load_spec(root / "env.yaml", purpose="lock"))
    assert [(p.where, p.message) for p in caught.value.problems] == [("picked", "lazr-delegates==2.1")]
    code, _, err = cli("lock", str(root / "env.yaml"))
    assert code == 1 and "--require-pins: 1 version(s) would be picked" in err
    assert "picked: lazr-delegates==2.1" in err
    assert not (root / "requirements" / "runtime.txt").exists()  # nothing written
    write(root / "buildout.cfg", PICKY.replace("lpapp = 1.0\n", "lpapp = 1.0\nlazr.delegates = 2.1\n"))
    assert cli("import", "--force", str(root / "buildout.cfg"))[0] == 0
    code, _, err = cli("lock", str(root / "env.yaml"))
    assert code == 0, err
    runtime = (root / "requirements" / "runtime.txt").read_text()
    assert "lazr-delegates==2.1" in runtime and "lpapp==1.0" in runtime


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # A user's shell: none of the variables the scripts are expected to set.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LP")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.slow
def test_launchpad_all_the_way(tmp_path: Path) -> None:
    """The Launchpad-style tree: import, lock against its download-cache (real wheels and
    sdists, offline), build, then run bin/py, a twistd entry point and bin/test as
    Buildout's would run."""
    root = tree(tmp_path, "launchpad")
    cache = root / "download-cache" / "dist"
    copy_real(cache, "twisted", "attrs", "automat", "constantly", "hyperlink", "idna", "incremental",
              "typing-extensions", "zope-interface", "zope-testrunner", "zope-exceptions", "setuptools",
              "packaging")
    for version in ("2.2.2", "2.2.3"):  # Launchpad's cache holds sdists; versions.cfg picks one
        make_sdist(cache, "lazr.config", version)
    code, _, err = cli("import", str(root / "buildout.cfg"))
    assert code == 0, err
    code, _, err = cli("lock", str(root / "env.yaml"))
    assert code == 0, err  # --require-pins: every pin comes from the versions.cfg chain
    runtime = (root / "requirements" / "runtime.txt").read_text()
    wanted = "2.2.3" if sys.version_info[:2] == (3, 11) else "2.2.2"  # [versions:python311]
    assert f"lazr-config=={wanted}" in runtime and "twisted==26.10.0" in runtime
    code, _, err = cli("build", str(root / "env.yaml"))
    assert code == 0, err
    bin_dir = root / "bin"
    # bin/py: z3c.recipe.scripts' interpreter, with the part's initialization (and lpsite's
    # side effect, imported from extra-paths) done before the command runs.
    done = _run([str(bin_dir / "py"), "-c", "import os, sys, lazr_config; "
                 "print(os.environ['LPCONFIG'], os.environ['LPSITE'], sys.path.index(sys.argv[1]) >= 0, "
                 "lazr_config.__version__)", str(root / "lib")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["development", "loaded", "True", wanted]
    # An entry point: twistd with the same initialization (which imports lpsite from lib/).
    done = _run([str(bin_dir / "twistd-for-txpkgupload"), "--version"], tmp_path)
    assert done.returncode == 0 and "twistd (the Twisted daemon) 26.10.0" in done.stdout, done.stderr
    # bin/test: zope.testrunner over the develop tree with the part's defaults, its
    # environment section and initialization observed by the tests themselves.
    done = _run([str(bin_dir / "test")], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 4 tests with 0 failures, 0 errors" in done.stdout
    done = _run([str(bin_dir / "test"), "-t", "test_runner_environment"], tmp_path)
    assert done.returncode == 0 and "Ran 1 tests" in done.stdout, done.stdout + done.stderr
