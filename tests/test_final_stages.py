"""The final stages, end to end: Twisted plugin caches and the probes, with real Twisted.

The wheelhouse holds real Twisted (and its dependencies) plus small plugin packages the
tests write themselves: one whose plugin imports ``twisted.internet.reactor`` on import
(the seed bug's txpkgupload), one whose plugin raises, and an application with its own
plugin package (``pluginPackagePaths``), a console script and an extra wheel someone
could pip-install by hand. One good environment is built per module and shared by the
tests that only read it; a test that changes an environment works on its own copy
(:func:`copy_of`), so the tests pass in any order.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from pinfold import BuildError, BuildResult, build, check, load_spec
from pinfold.envdir import Environments
from pinfold.errors import ProbeError
from pinfold.index import ArtifactIndex
from pinfold.inside import script
from pinfold.inside.shared import BYTECODE_PLAN
from pinfold.manifest import Tokens, scan, write_manifest
from pinfold.plugincache import PluginPackages, check_freshness, strictly_newer_mtime_ns
from pinfold.probes import ProbeResult, environment
from pinfold.probes.environment import Expected, _compare
from pinfold.probes.report import junit_xml
from pinfold.record import STATE_FILE
from pinfold.render import probe_lines
from pinfold.results import Progress
from pinfold.runner import Runner, scrubbed_environ
from pinfold.stages import Context, Preflight
from pinfold.stages.s5_compile import _cache_plan
from pinfold.stages.s7_plugins import PluginCaches
from pinfold.target import Target, run_inside
from tests.artifacts import Artifact, copy_real, make_wheel
from tests.conftest import cli, write

TWISTED = ("twisted", "attrs", "automat", "constantly", "hyperlink", "idna", "incremental",
           "packaging", "typing-extensions", "zope-interface")
OFFENDER = "twisted.plugins.reactor_on_import"
BROKEN = "twisted.plugins.broken_on_import"

_MAKER = '''
from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IServiceMaker)
class Maker:
    """A twistd plugin."""

    tapname = "{name}"
    description = "test plugin {name}"
    options = None

    def makeService(self, options):
        raise NotImplementedError


maker = Maker()
'''

PLUGIN_FILES = {
    # Like txpkgupload 0.5: the reactor gets installed as a side effect of the import.
    "reactorplug": {"twisted/plugins/reactor_on_import.py":
                    "from twisted.internet import reactor  # noqa: the offence\n" + _MAKER.format(name="rp")},
    "brokenplug": {"twisted/plugins/broken_on_import.py": 'raise RuntimeError("broken on purpose")\n'},
    # An application with a plugin package of its own, found through pluginPackagePaths.
    "myapp": {
        "myapp/__init__.py": "def main():\n    print('hello from myapp')\n",
        "myapp/plugins/__init__.py": ("from twisted.plugin import pluginPackagePaths\n"
                                      "__path__.extend(pluginPackagePaths(__name__))\n"),
        "myapp/plugins/hello.py": _MAKER.format(name="hello"),
    },
}

# A consumer's bootstrap, written independently of pinfold's own probe: Ampoule's first
# two lines, with the plugin folders read-only. chmod does not stop root, so an audit
# hook refuses the writes as well.
CONSUMER = r"""
import os, sys
folders = {os.path.join(os.path.abspath(p), "twisted", "plugins") for p in sys.path}
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT
def refuse(event, args):
    if event == "open" and isinstance(args[0], str) and isinstance(args[2], int) and args[2] & WRITE:
        if os.path.dirname(os.path.abspath(args[0])) in folders:
            raise PermissionError(13, "read-only plugin folder", args[0])
sys.addaudithook(refuse)
from twisted.application import reactors
reactors.installReactor("poll")
print("installed", type(sys.modules["twisted.internet.reactor"]).__name__)
"""


@dataclass(frozen=True)
class Wheels:
    """The module's wheelhouse: Twisted's closure plus the test packages."""

    path: Path
    twisted: tuple[Artifact, ...]
    reactorplug: Artifact
    brokenplug: Artifact
    myapp: Artifact
    extra: Artifact


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    wh = tmp_path_factory.mktemp("wheelhouse")
    return Wheels(
        path=wh,
        twisted=tuple(copy_real(wh, *TWISTED)),
        reactorplug=make_wheel(wh, "reactorplug", "1.0", files=PLUGIN_FILES["reactorplug"],
                               requires=["twisted"]),
        brokenplug=make_wheel(wh, "brokenplug", "1.0", files=PLUGIN_FILES["brokenplug"]),
        myapp=make_wheel(wh, "myapp", "1.0", files=PLUGIN_FILES["myapp"], requires=["twisted"],
                         entry_points={"console_scripts": {"myapp-hello": "myapp:main"}}),
        extra=make_wheel(wh, "hand-installed", "0.1"),
    )


def project(root: Path, wh: Wheels, artifacts: Sequence[Artifact], final: str = "") -> Path:
    """env.yaml and a runtime lock (hashes from the artifacts) in ``root``; return env.yaml."""
    write(root / "runtime.txt", "".join(f"{a.pin()}\n" for a in artifacts))
    return write(root / "env.yaml", (
        "version: 1\n"
        "path: env\n"
        f"index:\n  find_links: [{wh.path}]\n"
        "requirements: runtime.txt\n"
    ) + final)


GOOD_FINAL = f"""\
final:
  probes:
    reactor: poll
    allow_reactor_import: [{OFFENDER}]
    imports: [twisted, myapp]
    scripts:
      - [myapp-hello]
    commands:
      - argv: [python, -c, "import myapp.plugins"]
        timeout: 60
"""


def by_name(probes: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(p["name"]): p for p in probes}


def site_packages(env: Path) -> Path:
    return next(env.glob("lib/python*/site-packages"))


def consumer(env: Path, *, read_only: bool = True) -> subprocess.CompletedProcess[str]:
    """Run CONSUMER in ``env`` from a neutral folder, the plugin folder read-only if asked."""
    plugins = site_packages(env) / "twisted" / "plugins"
    mode = plugins.stat().st_mode
    code = CONSUMER if read_only else CONSUMER.replace("sys.addaudithook(refuse)", "")
    try:
        if read_only:
            plugins.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        return subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True,
                              cwd="/", env=scrubbed_environ(), check=False, timeout=120)
    finally:
        plugins.chmod(mode)


#: Every event the good build sent (its stage progress among them).
GOOD_EVENTS: list[object] = []


@pytest.fixture(scope="module")
def good(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildResult]:
    """The shared environment: every test package but the broken one, the offender allowed.

    Built from inside a "source checkout" with a ``twisted/plugins`` folder of its own:
    were the working directory on the stage's ``sys.path``, a cache would land there.
    """
    root = tmp_path_factory.mktemp("good")
    spec = project(root, wheels, [*wheels.twisted, wheels.reactorplug, wheels.myapp], GOOD_FINAL)
    checkout = write(root / "checkout" / "twisted" / "plugins" / "from_checkout.py", "").parent.parent.parent
    before = Path.cwd()
    os.chdir(checkout)
    try:
        result = build(load_spec(spec), on_event=GOOD_EVENTS.append)
    finally:
        os.chdir(before)
    assert list(checkout.rglob("dropin.cache")) == []
    before_tests = snapshot(result.env_dir)
    yield result
    # The tests share it only if none changes it: one that did must work on a copy_of() instead.
    after = snapshot(result.env_dir)
    changed = sorted(k for k in before_tests.keys() | after.keys() if before_tests.get(k) != after.get(k))
    assert changed == [], f"a test changed the shared environment: {changed[:10]}"


def snapshot(env: Path) -> dict[str, tuple[int, int, int]]:
    """Every file of ``env`` but bytecode: path -> (inode, size, mtime)."""
    out = {}
    for folder, dirs, files in os.walk(env):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            out[os.path.relpath(os.path.join(folder, name), env)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


@dataclass(frozen=True)
class Copy:
    """A project of its own with a copy of the good environment."""

    spec_file: Path
    env_dir: Path


def copy_of(good: BuildResult, dest: Path, *, deep: bool = False) -> Copy:
    """The good project (env.yaml, lock) in ``dest``, its environment cloned as a build update does.

    The clone is hard links (cheap): right for tests that add, delete or rename files, as
    pip and the plugin stage do, since that never reaches the shared environment. A test
    that changes files in place (their mtimes) asks for ``deep``: every file a copy of its own.
    """
    for name in ("env.yaml", "runtime.txt"):
        shutil.copy2(good.spec_file.parent / name, dest / name)
    envs = Environments(dest / "env")
    env_dir = envs.versions / good.env_dir.name
    envs.versions.mkdir(parents=True)
    envs.create(env_dir)  # pinfold's marker, as a build makes it
    envs.clone(good.env_dir, env_dir)
    # A clone holds no record until its build finishes: this one is finished as it stands,
    # with the manifest of its own tree (the clone rewrote the scripts that name its folder).
    write_manifest(env_dir, scan(env_dir, Tokens.of(env_dir, path=dest / "env", root=dest)))
    shutil.copy2(good.env_dir / STATE_FILE, env_dir / STATE_FILE)
    if deep:
        for folder, _, files in os.walk(env_dir):
            for name in files:
                path = Path(folder, name)
                if not path.is_symlink():
                    copied = path.with_name(f".{name}.copy")
                    shutil.copy2(path, copied)
                    os.replace(copied, path)
    envs.switch(env_dir)
    return Copy(dest / "env.yaml", env_dir)


#: The probes of GOOD_FINAL, in order, and how each ends on a good environment.
GOOD_PROBES = {"plugin-caches": "ok", "plugin-hygiene": "warn", "consumer-bootstrap": "ok", "pip-check": "ok",
               "lock": "ok", "import twisted": "ok", "import myapp": "ok", "script myapp-hello": "ok",
               "command python -c import myapp.plugins": "ok"}


#: The probes of `pinfold check` on it: the build's, and the files probe (the tree against the
#: manifest its build recorded) after the Twisted ones.
CHECK_PROBES = {**dict(list(GOOD_PROBES.items())[:3]), "files": "ok", **dict(list(GOOD_PROBES.items())[3:])}


def statuses(result: BuildResult) -> dict[str, str]:
    """Probe name -> status, in the order the probes ran."""
    return {r.name: r.status for r in result.outputs.probe_results}


# --- without pinfold: the seed bug ------------------------------------------------------


@pytest.mark.slow
def test_without_the_stage_install_reactor_fails_on_a_read_only_plugin_folder(
        wheels: Wheels, tmp_path: Path) -> None:
    """A plain pip install ships no dropin.cache: the first getPlugins() imports every plugin,
    the offender installs the default reactor, and installReactor('poll') fails."""
    env = tmp_path / "plain"
    runner = Runner()
    runner.run([sys.executable, "-m", "virtualenv", "--quiet", "--no-seed", "--no-periodic-update",
                "--python", sys.executable, env], what="virtualenv")
    runner.run([sys.executable, "-m", "pip", "--python", env / "bin" / "python", "install", "--no-index",
                "--find-links", wheels.path, "twisted", "reactorplug"], what="pip install")
    assert not (site_packages(env) / "twisted" / "plugins" / "dropin.cache").exists()

    for _ in range(2):  # read-only: it fails every time
        done = consumer(env)
        assert done.returncode != 0
        assert "ReactorAlreadyInstalledError" in done.stderr, done.stderr

    # Writable, it fails once and writes the cache as a side effect: "random" failures.
    first, second = consumer(env, read_only=False), consumer(env, read_only=False)
    assert "ReactorAlreadyInstalledError" in first.stderr
    assert second.returncode == 0, second.stderr


# --- the good environment -----------------------------------------------------------------


@pytest.mark.slow
def test_build_writes_fresh_caches_and_the_bootstrap_works_read_only(good: BuildResult) -> None:
    caches = good.outputs.plugin_caches
    assert caches is not None
    assert caches.packages == ("twisted.plugins", "myapp.plugins")
    written = {c.path.relative_to(site_packages(good.env_dir)).as_posix() for c in caches.caches}
    assert written == {"twisted/plugins/dropin.cache", "myapp/plugins/dropin.cache"}

    done = consumer(good.env_dir)
    assert done.returncode == 0, done.stderr
    assert "installed PollReactor" in done.stdout

    probes = {p.name: p for p in good.outputs.probe_results}
    assert probes["consumer-bootstrap"].status == "ok"
    assert "twisted.plugins.twisted_reactors" in str(probes["consumer-bootstrap"].summary)
    assert all(p.status == "ok" for n, p in probes.items() if n != "plugin-hygiene"), probes


@pytest.mark.slow
def test_hygiene_names_the_module_that_installs_the_reactor(good: BuildResult) -> None:
    hygiene = {p.name: p for p in good.outputs.probe_results}["plugin-hygiene"]
    assert hygiene.status == "warn"
    evidence = "\n".join(hygiene.evidence)
    assert f"{OFFENDER}: installs the reactor on import" in evidence
    assert "twisted/plugins/reactor_on_import.py:1" in evidence  # the import chain
    assert "allowed by final.probes.allow_reactor_import" in evidence
    assert any(OFFENDER in w for w in good.warnings)


@pytest.mark.slow
def test_the_plugins_stage_reports_each_module_it_imports(good: BuildResult) -> None:
    """The live line's `plugins: 12/40 modules`: each plugin module once to regenerate, once
    alone for the hygiene probe (forked from the same interpreter), counted up to the total."""
    steps = [e for e in GOOD_EVENTS if isinstance(e, Progress) and e.stage == "plugins"]
    caches = good.outputs.plugin_caches
    assert caches is not None
    modules = sum(c.modules for c in caches.caches)
    assert steps and {s.unit for s in steps} == {"modules"} and {s.total for s in steps} == {2 * modules}
    done = [s.done for s in steps]
    assert done == sorted(done) and done[-1] == 2 * modules, done
    items = [s.item for s in steps]
    assert f"imported {OFFENDER}" in items and f"imported {OFFENDER} alone" in items, items


@pytest.mark.slow
def test_the_build_shares_its_plugin_interpreter_and_check_gives_the_same_evidence(
        good: BuildResult) -> None:
    """A build gathers the hygiene and lock evidence in the plugins stage's interpreter and
    starts pip-check, consumer-bootstrap and the imports during that stage; `pinfold check`
    runs each probe alone, in the probes stage: the same results, evidence and summaries."""
    caches = good.outputs.plugin_caches
    assert caches is not None and caches.hygiene is not None and caches.distributions is not None
    built = {r.name: r for r in good.outputs.probe_results}
    checked = {r.name: r for r in check(load_spec(good.spec_file)).outputs.probe_results}
    shared = ("plugin-hygiene", "lock", "pip-check", "consumer-bootstrap", "import twisted", "import myapp")
    for name in shared:
        assert (built[name].status, built[name].summary, built[name].evidence) == (
            checked[name].status, checked[name].summary, checked[name].evidence), name


@pytest.mark.slow
def test_check_passes_and_writes_junit_listing_every_probe(good: BuildResult, tmp_path: Path) -> None:
    report = tmp_path / "reports" / "probes.xml"
    code, out, err = cli("check", str(good.spec_file), "--json", "--junit-xml", str(report))
    assert code == 0, err
    data = json.loads(out)
    names = [p["name"] for p in data["facts"]["probes"]]
    assert names == list(CHECK_PROBES)
    assert {p["name"]: p["status"] for p in data["facts"]["probes"]} == CHECK_PROBES
    seconds = [p["seconds"] for p in data["facts"]["probes"]]
    assert all(s > 0 for s in seconds), seconds  # every probe was timed
    assert "all probes passed" in err
    assert "WARN" in err and OFFENDER in err  # one line per probe, evidence under the warning

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == names
    assert [c.get("time") for c in cases] == [f"{s:.3f}" for s in seconds]  # the same timings
    assert suite.get("tests") == str(len(names)) and suite.get("failures") == "0"
    assert not any(c.find("failure") is not None for c in cases)


@pytest.mark.slow
def test_check_fails_when_a_package_was_pip_installed_by_hand(good: BuildResult, wheels: Wheels,
                                                               tmp_path: Path) -> None:
    mine = copy_of(good, tmp_path)
    pip = [sys.executable, "-m", "pip", "--python", str(mine.env_dir / "bin" / "python")]
    Runner().run([*pip, "install", "--no-index", "--find-links", wheels.path, "hand-installed"],
                 what="pip install by hand")
    code, out, err = cli("check", str(mine.spec_file), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    lock = by_name(data["probes"])["lock"]
    assert lock["status"] == "fail"
    assert any("not in the lock: hand-installed==0.1" in e for e in lock["evidence"]), lock
    assert "not in the lock: hand-installed==0.1" in err
    Runner().run([*pip, "uninstall", "--yes", "hand-installed"], what="pip uninstall")
    assert cli("check", str(mine.spec_file))[0] == 0  # uninstalled: passes again


@pytest.mark.slow
def test_check_fails_when_a_cache_was_deleted(good: BuildResult, tmp_path: Path) -> None:
    mine = copy_of(good, tmp_path)
    cache = site_packages(mine.env_dir) / "twisted" / "plugins" / "dropin.cache"
    kept = tmp_path / "dropin.cache"
    os.replace(cache, kept)  # a rename keeps the mtime, so putting it back restores freshness
    with pytest.raises(ProbeError) as caught:
        check(load_spec(mine.spec_file))
    os.replace(kept, cache)
    results = {r.name: r for r in caught.value.results}
    assert results["plugin-caches"].status == "fail"
    assert any(f"{cache}: missing" in e for e in results["plugin-caches"].evidence)
    # Without a cache, the bootstrap imports every plugin: exactly the seed bug.
    assert results["consumer-bootstrap"].status == "fail"
    assert "ReactorAlreadyInstalledError" in results["consumer-bootstrap"].summary
    assert {r.name: r.status for r in caught.value.results} == {
        **CHECK_PROBES, "plugin-caches": "fail", "consumer-bootstrap": "fail", "files": "fail"}
    assert statuses(check(load_spec(mine.spec_file))) == CHECK_PROBES  # put back: passes again


@pytest.mark.slow
@pytest.mark.parametrize("when", ["past", "future"])
def test_normalised_mtimes_still_give_fresh_caches(good: BuildResult, when: str, tmp_path: Path) -> None:
    """SOURCE_DATE_EPOCH-style trees: every file, caches included, set to one instant.

    With Twisted's ``>=`` that makes every module stale; regenerating must give caches
    strictly newer than their modules, also when the instant is later than now.
    """
    epoch = 1_577_836_800 if when == "past" else int(time.time()) + 86_400
    mine = copy_of(good, tmp_path, deep=True)  # utime changes an inode: hard links would share it
    for folder, _, files in os.walk(mine.env_dir):
        for name in files:
            os.utime(Path(folder, name), (epoch, epoch), follow_symlinks=False)
    spec = load_spec(mine.spec_file)
    runner = Runner()
    stale = check_freshness(runner, Target(mine.env_dir / "bin" / "python"), PluginPackages())
    assert len(stale.problems) == 2 and all("older than (or as old as)" in p.message for p in stale.problems)

    ctx = Context(spec=spec, runner=runner, index=ArtifactIndex(spec.index), env_dir=mine.env_dir)
    PluginCaches().run(ctx)
    fresh = check_freshness(runner, Target(mine.env_dir / "bin" / "python"), PluginPackages())
    assert fresh.problems == []
    assert ctx.outputs.plugin_caches is not None
    for cache in ctx.outputs.plugin_caches.caches:
        assert cache.path.stat().st_mtime >= epoch + 1
    assert consumer(mine.env_dir).returncode == 0
    # Regenerated in place, the caches hold the same bytes: the files probe finds no change.
    assert statuses(check(spec)) == CHECK_PROBES


@pytest.mark.slow
def test_a_cache_that_cannot_be_written_fails_the_stage(good: BuildResult, tmp_path: Path) -> None:
    """Twisted only logs "Unable to write to plugin cache" and goes on; the stage must fail."""
    mine = copy_of(good, tmp_path)
    folder = site_packages(mine.env_dir) / "myapp" / "plugins"
    cache = folder / "dropin.cache"
    cache.unlink()
    # chattr +i stops root too, which a chmod would not.
    frozen = shutil.which("chattr") and subprocess.run(["chattr", "+i", folder], capture_output=True,
                                                        check=False).returncode == 0
    try:
        if not frozen:
            pytest.skip("chattr +i is not available or not permitted here")
        spec = load_spec(mine.spec_file)
        ctx = Context(spec=spec, runner=Runner(), index=ArtifactIndex(spec.index), env_dir=mine.env_dir)
        with pytest.raises(BuildError) as caught:
            PluginCaches().run(ctx)
    finally:
        if frozen:  # else pytest could not remove tmp_path
            subprocess.run(["chattr", "-i", folder], check=True)
    problems = {p.where: p.message for p in caught.value.problems}
    assert "the cache was not written (Unable to write to plugin cache" in problems[str(cache)], problems


# --- builds that must fail ----------------------------------------------------------------


@pytest.mark.slow
def test_reactor_import_fails_the_build_by_default(wheels: Wheels, tmp_path: Path) -> None:
    spec = project(tmp_path, wheels, [*wheels.twisted, wheels.reactorplug])
    report = tmp_path / "junit.xml"
    code, out, err = cli("build", str(spec), "--json", "--junit-xml", str(report))
    assert code == 1
    data = json.loads(out)
    hygiene = by_name(data["probes"])["plugin-hygiene"]
    assert hygiene["status"] == "fail" and OFFENDER in str(hygiene["summary"])
    assert "plugin-hygiene" in data["error"]
    assert f"{OFFENDER}: installs the reactor on import" in err
    # The new environment was discarded: `path` was never switched to it.
    assert not (tmp_path / "env").exists()
    failed = [c.get("name") for c in ET.parse(report).getroot().iter("testcase")
              if c.find("failure") is not None]
    assert failed == ["plugin-hygiene"]


@pytest.mark.slow
def test_plugin_that_raises_on_import_fails_the_build_naming_it(wheels: Wheels, tmp_path: Path) -> None:
    spec = project(tmp_path, wheels, [*wheels.twisted, wheels.brokenplug])
    with pytest.raises(BuildError) as caught:
        build(load_spec(spec))
    assert not isinstance(caught.value, ProbeError)  # the plugin stage itself failed
    problems = {p.where: p.message for p in caught.value.problems}
    assert BROKEN in problems
    assert "RuntimeError: broken on purpose" in problems[BROKEN]
    assert "broken_on_import.py:1" in problems[BROKEN]
    assert not (tmp_path / "env").exists()


@pytest.mark.slow
def test_without_twisted_the_stage_and_twisted_probes_are_skipped(wheels: Wheels, tmp_path: Path) -> None:
    spec = project(tmp_path, wheels, [wheels.extra])
    result = build(load_spec(spec))
    stages = {s.name: s for s in result.stages}
    assert stages["plugins"].status == "skipped"
    assert "Twisted is not installed" in stages["plugins"].detail
    assert [p.name for p in result.outputs.probe_results] == ["pip-check", "lock"]


@pytest.mark.slow
def test_failing_user_probes_say_why(good: BuildResult) -> None:
    """An import that fails shows the interpreter's own error; a command past its timeout
    is killed and named as timed out, whatever it was doing."""
    python = Target(good.env_dir / "bin" / "python")
    missing = environment.import_module(Runner(), python, "no_such_module_here")
    assert missing.status == "fail" and "importing no_such_module_here failed" in missing.summary
    assert any("ModuleNotFoundError" in line for line in missing.evidence), missing.evidence
    slow = environment.command(Runner(), good.env_dir, ["python", "-c", "import time; time.sleep(60)"],
                               timeout=1, root=good.env_dir, script=False)
    assert slow.status == "fail" and "timed out after 1 s" in slow.summary, slow.summary
    assert "exit code" not in slow.summary


@pytest.mark.slow
def test_without_bytecode_the_final_stages_share_a_cache_outside_the_environment(
        wheels: Wheels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`compile: false`: every final stage passes, the environment gets no .pyc, and the
    bytecode folder the stages shared is gone afterwards."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    spec = project(tmp_path / "p", wheels, [*wheels.twisted, wheels.reactorplug, wheels.myapp],
                   "compile: false\n" + GOOD_FINAL)
    result = build(load_spec(spec))
    assert {s.name: s.status for s in result.stages}["plugins"] == "ok"
    assert all(p.status != "fail" for p in result.outputs.probe_results)
    assert list(result.env_dir.rglob("*.pyc")) == []
    assert list(temp.iterdir()) == []
    assert statuses(check(load_spec(spec))) == CHECK_PROBES
    assert list(result.env_dir.rglob("*.pyc")) == [] and list(temp.iterdir()) == []


@pytest.mark.slow
def test_without_bytecode_the_final_stages_start_from_the_bytecode_cache(
        wheels: Wheels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`compile: false` after a build with bytecode of the same artifacts: the compile stage
    offers the cached pycs to the final stages' folder outside the environment; an import
    there links the one it needs (checked like any link: a changed entry is not used) instead
    of compiling, nothing it does not import is linked, and the environment gets no .pyc."""
    monkeypatch.setenv("PINFOLD_CACHE_DIR", str(tmp_path / "cache"))
    dists = [*wheels.twisted, wheels.reactorplug, wheels.myapp]
    alone = build(load_spec(project(tmp_path / "cold", wheels, dists, "compile: false\n" + GOOD_FINAL)))
    assert {s.name: s.detail for s in alone.stages}["compile"] == "disabled (compile: false)"
    build(load_spec(project(tmp_path / "with", wheels, dists, GOOD_FINAL)))  # fills the cache
    entry = next((tmp_path / "cache").rglob("twisted/internet/__pycache__/defer.*.pyc"))
    seen: dict[str, object] = {}
    regenerate = PluginCaches.run

    def looked(stage: PluginCaches, ctx: Context) -> str:
        # The build's own bytecode folder, before the build removes it: the plan the compile
        # stage wrote, and what the plugins stage's imports placed there.
        detail = regenerate(stage, ctx)
        assert ctx.pycache is not None
        seen["plan"] = (ctx.pycache / BYTECODE_PLAN).is_file()
        seen["defer"] = {p.stat().st_ino for p in ctx.pycache.rglob("twisted/internet/defer.*.pyc")}
        return detail

    monkeypatch.setattr(PluginCaches, "run", looked)
    result = build(load_spec(project(tmp_path / "p", wheels, dists, "compile: false\n" + GOOD_FINAL)))
    assert seen == {"plan": True, "defer": {entry.stat().st_ino}}  # linked from the cache entry
    detail = {s.name: s.detail for s in result.stages}["compile"]
    offered = int(detail.split("(of up to ")[1].split(" ")[0])
    assert detail.startswith("compile: false, none in the environment") and offered > 100, detail
    assert all(p.status != "fail" for p in result.outputs.probe_results)
    assert list(result.env_dir.rglob("*.pyc")) == []
    # The same offer in a folder of the test's, then an import there: linked, not compiled.
    sites = sorted(result.env_dir.glob("lib/python*/site-packages"))
    spec = load_spec(tmp_path / "p" / "env.yaml")
    ctx = Context(spec=spec, runner=Runner(), index=ArtifactIndex(spec.index), env_dir=result.env_dir)
    Preflight().run(ctx)  # what the compile stage's plan is made from

    def import_defer(folder: Path) -> Path:
        folder.mkdir()
        (folder / BYTECODE_PLAN).write_text(json.dumps(_cache_plan(ctx, sites)))
        run_inside(Runner(), Target(result.env_dir / "bin" / "python", folder), "importer",
                   ["twisted.internet.defer"], what="import")
        return next(folder.rglob("twisted/internet/defer.*.pyc"))

    placed = import_defer(tmp_path / "outside")
    assert placed.stat().st_ino == entry.stat().st_ino  # the cache entry's file, linked
    linked = [p for p in (tmp_path / "outside").rglob("*.pyc") if p.stat().st_nlink > 1]
    assert 0 < len(linked) < offered / 2  # what the import needed, not every file
    assert not list((tmp_path / "outside").rglob("twisted/conch/*.pyc"))
    # A changed entry (other bytes under the name its manifest hashes) is never linked.
    changed = entry.with_name(entry.name + ".new")
    changed.write_bytes(entry.read_bytes()[:16] + b"\0" * 64)
    changed.replace(entry)
    compiled = import_defer(tmp_path / "again")
    assert compiled.stat().st_ino != entry.stat().st_ino and compiled.stat().st_nlink == 1
    assert compiled.read_bytes() != entry.read_bytes()
    assert list(result.env_dir.rglob("*.pyc")) == []


@pytest.mark.slow
def test_the_outside_cache_holds_the_environment_only_and_is_read_back(good: BuildResult,
                                                                       tmp_path: Path) -> None:
    """An inside run with a bytecode folder writes the environment's bytecode there (not the
    standard library's, which has its own), and the next run reads it instead of compiling."""
    env_pyc = set(good.env_dir.rglob("*.pyc"))
    target = Target(good.env_dir / "bin" / "python", tmp_path / "pyc")
    data = run_inside(Runner(), target, "importer", ["twisted.internet.defer"], what="import")
    assert data["file"].startswith(str(good.env_dir.resolve()))
    cached = sorted((tmp_path / "pyc").rglob("*.pyc"))
    mirror = tmp_path / "pyc" / good.env_dir.resolve().relative_to("/")
    assert cached and all(p.is_relative_to(mirror) for p in cached)
    assert any(p.name.startswith("defer.") for p in cached)
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    run_inside(Runner(), target, "importer", ["twisted.internet.defer"], what="import")
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps  # read, not compiled again
    assert set(good.env_dir.rglob("*.pyc")) == env_pyc


# A plugin module that installs a finder making a distribution appear: in the process that
# imports it, importlib.metadata lists "ghost"; a fresh interpreter (the lock probe) does not.
GHOST_PLUGIN = """
import importlib.metadata as metadata
import sys


class _Ghost(metadata.Distribution):
    def read_text(self, filename):
        return "Metadata-Version: 2.1\\nName: ghost\\nVersion: 1.0\\n" if filename == "METADATA" else None

    def locate_file(self, path):
        return path


class _Finder:
    def find_spec(self, *args):
        return None

    def find_distributions(self, context=None):
        return iter([_Ghost()])


sys.meta_path.append(_Finder())
"""


@pytest.mark.slow
def test_the_lock_probe_of_a_build_lists_before_any_plugin_module_is_imported(
        wheels: Wheels, tmp_path: Path) -> None:
    """The plugins stage's interpreter imports a plugin module that adds a distribution finder;
    the distributions it hands the lock probe were listed before (by a process forked first
    thing), as a fresh interpreter sees them: the same as `pinfold check`."""
    ghost = make_wheel(wheels.path, "ghostplug", "1.0", requires=["twisted"],
                       files={"twisted/plugins/ghost_finder.py": GHOST_PLUGIN})
    spec = project(tmp_path, wheels, [*wheels.twisted, ghost], "final:\n  probes:\n    reactor: poll\n")
    result = build(load_spec(spec))
    caches = result.outputs.plugin_caches
    assert caches is not None and caches.distributions is not None  # listed in the build
    names = {canonicalize_name(d["name"]) for d in caches.distributions}
    assert "ghostplug" in names and "ghost" not in names, names
    lock = {r.name: r for r in result.outputs.probe_results}["lock"]
    assert lock.status == "ok", lock
    checked = {r.name: r for r in check(load_spec(spec)).outputs.probe_results}["lock"]
    assert (checked.status, checked.summary) == (lock.status, lock.summary)


@pytest.mark.slow
def test_without_fork_the_plugins_script_lists_first_and_leaves_hygiene_to_the_probe(
        good: BuildResult, tmp_path: Path) -> None:
    """Where os.fork is missing, regenerate.py lists the distributions itself (the same list
    as the build's forked lister) and gathers no hygiene findings (the probe runs hygiene.py)."""
    mine = copy_of(good, tmp_path)
    result = tmp_path / "result.json"
    no_fork = ("import os, runpy, sys; del os.fork; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    work = tmp_path / "work"
    work.mkdir()
    Runner().run([mine.env_dir / "bin" / "python", "-I", "-B", "-c", no_fork, script("_launch"),
                  script("regenerate"), result, "--hygiene", "60", "2", "--distributions"],
                 what="regenerating without fork", cwd=work, timeout=300)
    data = json.loads(result.read_text(encoding="utf-8"))
    assert data["errors"] == [] and data["hygiene"] is None
    assert len(data["caches"]) == 2 and data["packages"] == ["twisted.plugins", "myapp.plugins"]
    caches = good.outputs.plugin_caches
    assert caches is not None and caches.distributions is not None

    def listed(dists: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((d["name"], d["version"]) for d in dists)

    assert listed(data["distributions"]) == listed(caches.distributions)


# --- pure parts ---------------------------------------------------------------------------


def test_cache_mtime_is_the_whole_second_after_the_newest_module() -> None:
    ns = 1_000_000_000
    assert strictly_newer_mtime_ns(5 * ns, [2 * ns, 3 * ns + 1]) == 5 * ns  # already newer
    assert strictly_newer_mtime_ns(3 * ns, [3 * ns]) == 4 * ns  # equal: Twisted's >= says stale
    assert strictly_newer_mtime_ns(3 * ns + 5, [3 * ns + 2]) == 4 * ns  # same second: not enough
    assert strictly_newer_mtime_ns(10 * ns, [20 * ns + 7]) == 21 * ns  # modules in the future


def test_lock_comparison_names_every_difference(tmp_path: Path) -> None:
    tree = tmp_path / "src" / "my-app"
    tree.mkdir(parents=True)

    def dist(name: str, version: str, location: str, url: str = "") -> dict[str, Any]:
        return {"name": name, "version": version, "location": location, "editable": bool(url), "url": url}

    site = str(tmp_path / "site-packages")
    installed = {
        "twisted": [dist("twisted", "26.10.0", site)],
        "attrs": [dist("attrs", "25.0", site)],
        "extra": [dist("extra", "1.0", site)],
        # A develop tree shows up twice: the editable dist-info, and the egg-info in the tree.
        "my-app": [dist("my-app", "0.1", site, tree.as_uri()),
                   dist("my-app", "0.1", str(tree / "my_app.egg-info"))],
        "other": [dist("other", "2.0", site, (tmp_path / "elsewhere").as_uri())],
    }
    expected = Expected(versions={canonicalize_name(n): Version(v) for n, v in
                                  [("twisted", "26.10.0"), ("attrs", "26.1.0"), ("idna", "3.20")]},
                        origin=dict.fromkeys(map(canonicalize_name, ["twisted", "attrs", "idna"]), "lock:1"),
                        develop=(tree,))
    findings = _compare({canonicalize_name(k): v for k, v in installed.items()}, expected)
    assert sorted(findings) == sorted([
        "attrs: installed 25.0, expected 26.1.0 (lock:1)",
        "missing: idna==3.20 (lock:1)",
        f"not in the lock: extra==1.0 (in {site})",
        f"other is installed editable from {(tmp_path / 'elsewhere').as_uri()}, which is not a develop "
        "tree of the environment",
        f"not in the lock: other==2.0 (in {site})",
    ])


def test_junit_and_summary_list_every_probe_with_evidence() -> None:
    results = [
        ProbeResult(name="pip-check", status="ok", seconds=0.5, summary="fine"),
        ProbeResult(name="plugin-hygiene", status="warn", seconds=1.0, summary="1 warning",
                    evidence=("twisted.plugins.x: installs the reactor",)),
        ProbeResult(name="lock", status="fail", seconds=0.25, summary="1 difference",
                    evidence=("not in the lock: evil==1 \x1b[31m",)),
    ]
    root = ET.fromstring(junit_xml(results, suite="pinfold check env.yaml"))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == ["pip-check", "plugin-hygiene", "lock"]
    failure = cases["lock"].find("failure")
    assert failure is not None and failure.get("message") == "1 difference"
    assert "not in the lock: evil==1" in (failure.text or "")
    assert cases["plugin-hygiene"].find("failure") is None
    assert root.get("failures") == "1" and root.get("tests") == "3"

    errored = ET.fromstring(junit_xml([], suite="s", error="cannot build\n  details"))
    error = next(errored.iter("error"))
    assert error.get("message") == "cannot build" and "details" in (error.text or "")

    lines = probe_lines(results)
    assert [line.split()[0] for line in lines if not line.startswith("     ")] == ["ok", "WARN", "FAIL"]
    assert any("not in the lock: evil==1" in line for line in lines)
