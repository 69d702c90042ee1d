"""Generated scripts (``scripts:``, ``bin_dir:``), end to end with real environments.

One environment is built per module from real wheels (Twisted's closure, zope.testrunner)
plus a small tool wheel with a console script; a project tree ``lib/`` reached only through
``extra_paths`` holds a module and a Twisted plugin folder. Every option is observed by
running the generated script.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pinfold import build, check, load_spec
from pinfold.cli import main
from pinfold.errors import ProbeError, SpecError
from pinfold.genscripts import MARK, generated_by_pinfold, render_launcher
from pinfold.index import ArtifactIndex
from pinfold.pipeline import _prune_launchers
from pinfold.runner import Runner
from pinfold.stages.base import Context
from pinfold.stages.s6_scripts import Scripts
from tests.artifacts import Artifact, copy_real, make_wheel
from tests.conftest import write

REAL = ("twisted", "attrs", "automat", "constantly", "hyperlink", "idna", "incremental",
        "packaging", "typing-extensions", "zope-interface", "zope-testrunner", "zope-exceptions",
        "setuptools")

APP = '''
import os, sys
def main(argv):
    print("args", argv)
    print("cwd", os.getcwd())
    print("path0", sys.path[0])
    print("var", os.environ.get("GREETING"))
    return 0
'''
PLUGIN = "from twisted.plugin import IPlugin\n"
REACTOR_PLUGIN = "from twisted.internet import reactor  # the offence\n"

SCRIPTS = """\
bin_dir: bin
scripts:
  - name: hello
    console_script: tool-hello
  - name: app
    entry_point: appmod:main
    extra_paths: [lib]
    environment: {GREETING: hi}
    working_directory: work
    initialization: |
      import os
      print("init", os.environ["GREETING"])
    arguments: '["fixed"] + sys.argv[1:]'
    probe: [--probe-arg]
  - interpreter: py
    extra_paths: [lib]
    initialization: |
      INITIALIZED = True
  - name: test
    test_runner:
      paths: [tests_tree]
      defaults: [-vv]
"""


def _project(root: Path, wh: Path, pins: list[Artifact], scripts: str = SCRIPTS) -> Path:
    write(root / "runtime.txt", "".join(f"{a.pin()}\n" for a in pins))
    write(root / "lib" / "appmod.py", APP)
    write(root / "lib" / "twisted" / "plugins" / "libplug.py", PLUGIN)
    (root / "work").mkdir(exist_ok=True)
    write(root / "tests_tree" / "sample" / "__init__.py", "")
    write(root / "tests_tree" / "sample" / "tests.py",
          "import unittest\nclass T(unittest.TestCase):\n    def test_one(self):\n        pass\n")
    return write(root / "env.yaml", (
        "version: 1\npath: env\n"
        f"index:\n  find_links: [{wh}]\n"
        "requirements: runtime.txt\n"
        "final:\n  probes:\n    imports: [twisted]\n"
    ) + scripts)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Artifact]]:
    wh = tmp_path_factory.mktemp("wheelhouse")
    pins = [*copy_real(wh, *REAL),
            make_wheel(wh, "tool", "1.0",
                       files={"tool/__init__.py": "import sys\ndef main():\n    print('tool', sys.argv)\n"},
                       entry_points={"console_scripts": {"tool-hello": "tool:main"}})]
    root = tmp_path_factory.mktemp("project")
    env_yaml = _project(root, wh, pins)
    build(load_spec(env_yaml))
    return env_yaml, pins


def run(*argv: str | Path, cwd: Path | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, input=stdin,
                          timeout=120, check=False)


@pytest.mark.slow
def test_console_script_renamed(built: tuple[Path, list[Artifact]]) -> None:
    root = built[0].parent
    done = run(root / "env" / "bin" / "hello", "a", "b")
    assert done.returncode == 0, done.stderr
    assert "tool [" in done.stdout and "'a', 'b'" in done.stdout


@pytest.mark.slow
def test_entry_point_options(built: tuple[Path, list[Artifact]], tmp_path: Path) -> None:
    root = built[0].parent
    done = run(root / "env" / "bin" / "app", "x", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "init hi"                       # environment set before initialization
    assert "args ['fixed', 'x']" in lines               # arguments: an expression over sys.argv
    assert f"cwd {root / 'work'}" in lines              # working_directory
    assert f"path0 {root / 'lib'}" in lines             # extra_paths first on sys.path
    assert "var hi" in lines
    # The launcher in bin_dir goes through `path`; it carries pinfold's header.
    launcher = root / "bin" / "app"
    assert MARK in launcher.read_text()
    assert run(launcher, "y", cwd=tmp_path).stdout == done.stdout.replace("'x'", "'y'")
    text = (root / "env" / "bin" / "app").read_text()
    assert MARK in text and "env.d" not in text         # same spec, same bytes: no versioned path


@pytest.mark.slow
def test_interpreter(built: tuple[Path, list[Artifact]], tmp_path: Path) -> None:
    py = built[0].parent / "env" / "bin" / "py"
    lib = str(built[0].parent / "lib")
    done = run(py, "-c", "import sys, appmod; print(sys.argv, INITIALIZED, sys.path[:2])", "a")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"['-c', 'a'] True ['', {lib!r}]"
    write(tmp_path / "mod_x.py", "import sys\nprint('module', sys.argv[1:])\n")
    done = run(py, "-m", "mod_x", "q", cwd=tmp_path)
    assert done.stdout.strip() == "module ['q']", done.stderr
    script = write(tmp_path / "s.py", "import sys\nprint(sys.argv, sys.path[0])\n")
    done = run(py, script, "1", "2")
    assert done.stdout.strip() == f"[{str(script)!r}, '1', '2'] {tmp_path}", done.stderr
    done = run(py, stdin="print('from stdin', INITIALIZED)\n")
    assert done.stdout.strip() == "from stdin True", done.stderr
    done = run(py, "-i", "-c", "x = 41", stdin="print(x + 1)\n")
    assert "42" in done.stdout, done.stderr


@pytest.mark.slow
def test_test_runner(built: tuple[Path, list[Artifact]]) -> None:
    done = run(built[0].parent / "bin" / "test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 1 tests" in done.stdout
    assert "test_one" in done.stdout                    # defaults: -vv names each test


@pytest.mark.slow
def test_extra_paths_plugin_cache(built: tuple[Path, list[Artifact]]) -> None:
    assert (built[0].parent / "lib" / "twisted" / "plugins" / "dropin.cache").is_file()


@pytest.mark.slow
def test_launchers_survive_rebuild_and_rollback(built: tuple[Path, list[Artifact]]) -> None:
    env_yaml = built[0]
    root = env_yaml.parent
    before = (root / "env" / "bin" / "app").read_bytes()
    first = (root / "env").resolve()
    build(load_spec(env_yaml), fresh=True)
    assert (root / "env").resolve() != first
    assert (root / "env" / "bin" / "app").read_bytes() == before    # deterministic
    assert run(root / "bin" / "hello").returncode == 0
    assert main(["rollback", str(env_yaml)]) == 0
    assert (root / "env").resolve() == first
    assert run(root / "bin" / "hello").returncode == 0


@pytest.mark.slow
def test_script_change_alone_is_an_update(built: tuple[Path, list[Artifact]], tmp_path: Path) -> None:
    env_yaml = built[0]
    text = env_yaml.read_text()
    try:
        changed = text.replace('print("init", os.environ["GREETING"])', 'print("changed")')
        # ... and the interpreter is no longer asked for: its script and launcher go.
        changed = changed.replace("  - interpreter: py\n", "  - name: hi2\n    console_script: tool-hello\n")
        env_yaml.write_text(changed)
        result = build(load_spec(env_yaml))
        assert result.plan is not None and result.plan.mode == "update"
        assert run(env_yaml.parent / "bin" / "app", cwd=tmp_path).stdout.startswith("changed\n")
        assert not (env_yaml.parent / "env" / "bin" / "py").exists()
        assert not (env_yaml.parent / "bin" / "py").exists()
        assert run(env_yaml.parent / "bin" / "hi2").returncode == 0
    finally:
        env_yaml.write_text(text)
        build(load_spec(env_yaml))


#: ``script app``'s result when its own interpreter resolved it (its run proved nothing).
RESOLVED_APART = ("ok", "appmod:main resolves in a fresh interpreter (not called)")


def _failed_probes(spec_file: Path) -> set[str]:
    """The probes ``pinfold check`` fails on the environment of ``spec_file`` (it must fail)."""
    return {name for name, (status, _) in _check_results(spec_file).items() if status == "fail"}


def _check_results(spec_file: Path) -> dict[str, tuple[str, str]]:
    """Each probe's status and summary from a ``pinfold check`` that must fail."""
    with pytest.raises(ProbeError) as err:
        check(load_spec(spec_file, purpose="inspect"))
    return {r.name: (r.status, r.summary) for r in err.value.results}


@pytest.mark.slow
def test_probe_catches_removed_module(built: tuple[Path, list[Artifact]]) -> None:
    """The script's run fails, so ``script app`` resolves it apart, and says it does not resolve."""
    lib = built[0].parent / "lib"
    saved = (lib / "appmod.py").read_text()
    (lib / "appmod.py").unlink()
    try:
        found = _check_results(built[0])
        assert found["script app --probe-arg"][0] == "fail", found
        assert found["script app"][0] == "fail", found
        assert "appmod:main does not resolve" in found["script app"][1], found
    finally:
        write(lib / "appmod.py", saved)


@pytest.mark.slow
def test_a_failed_run_is_told_apart_from_a_script_that_does_not_resolve(
        built: tuple[Path, list[Artifact]]) -> None:
    """A script that resolves and fails when called: only its run fails (resolved apart)."""
    lib = built[0].parent / "lib"
    saved = (lib / "appmod.py").read_text()
    write(lib / "appmod.py", saved + "\ndef main(argv):\n    raise SystemExit(3)\n")
    try:
        found = _check_results(built[0])
        assert found["script app --probe-arg"][0] == "fail", found
        assert found["script app"] == RESOLVED_APART, found
    finally:
        write(lib / "appmod.py", saved)


@pytest.mark.slow
def test_hygiene_catches_reactor_importer_in_extra_paths(built: tuple[Path, list[Artifact]]) -> None:
    bad = built[0].parent / "lib" / "twisted" / "plugins" / "bad_reactor.py"
    write(bad, REACTOR_PLUGIN)
    try:
        assert "plugin-hygiene" in _failed_probes(built[0])
    finally:
        bad.unlink()


@pytest.mark.slow
def test_foreign_launcher_refused(built: tuple[Path, list[Artifact]],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    env_yaml = built[0]
    mine = env_yaml.parent / "bin" / "hello"
    saved = mine.read_text()
    mine.write_text("#!/bin/sh\necho mine\n")
    current = (env_yaml.parent / "env").resolve()
    env_yaml.write_text(env_yaml.read_text() + "# touched\n")
    try:
        assert main(["build", str(env_yaml)]) == 2
        assert "not written by pinfold" in capsys.readouterr().err
        assert mine.read_text() == "#!/bin/sh\necho mine\n"
        assert (env_yaml.parent / "env").resolve() == current
    finally:
        env_yaml.write_text(env_yaml.read_text().replace("# touched\n", ""))
        mine.write_text(saved)


@pytest.mark.slow
def test_console_script_nobody_provides(built: tuple[Path, list[Artifact]], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    wh = Path(load_spec(built[0]).index.find_links[0])
    env_yaml = _project(tmp_path, wh, built[1], "scripts:\n  - {name: x, console_script: no-such-script}\n")
    assert main(["build", str(env_yaml)]) == 2
    err = capsys.readouterr().err
    assert "env.yaml:10:5" in err and "no-such-script" in err
    assert not (tmp_path / "env").exists()


@pytest.mark.parametrize(("scripts", "where", "message"), [
    ("  - {name: a, entry_point: 'nocolon'}\n", ":10:", "is not module:callable"),
    ("  - {name: a, entry_point: 'm:f'}\n  - {name: a, console_script: x}\n", ":11:", "generated twice"),
    ("  - name: a\n    entry_point: m:f\n    initialization: |\n      ok = 1\n      if x\n",
     ":14:", "not valid Python"),
    ("  - {name: python, entry_point: 'm:f'}\n", ":10:", "environment's own files"),
    ("  - {console_script: twistd}\n", ":10:", "pip already writes 'twistd'"),
    ("  - {name: a, entry_point: 'm:f', arguments: 'sys.argv['}\n", ":10:", "not valid Python"),
])
def test_bad_input_located(tmp_path: Path, scripts: str, where: str, message: str) -> None:
    wh = tmp_path / "wh"
    wh.mkdir()
    env_yaml = _project(tmp_path, wh, [], "scripts:\n" + scripts)
    with pytest.raises(SpecError) as err:
        load_spec(env_yaml)
    text = "\n".join(str(p) for p in err.value.problems)
    assert message in text and where in text, text


def test_the_scripts_stage_removes_its_own_stale_launchers_and_never_a_foreign_file(tmp_path: Path) -> None:
    """The stage a build runs, on an environment folder without pip: in ``bin_dir`` a launcher
    pinfold wrote for a script no longer asked for goes, a file it did not write stays."""
    wh = tmp_path / "wh"
    wh.mkdir()
    scripts = "bin_dir: bin\nscripts:\n  - {name: app, entry_point: 'appmod:main'}\n"
    spec = load_spec(_project(tmp_path, wh, [], scripts))
    env_dir = tmp_path / "env.d" / "one"
    (env_dir / "bin").mkdir(parents=True)
    launchers = tmp_path / "bin"
    foreign = write(launchers / "old-tool", f"#!/bin/sh\n# Generated by something else, not {MARK}\n")
    stale = write(launchers / "gone", render_launcher(spec, spec.scripts[0]))
    assert not generated_by_pinfold(foreign) and generated_by_pinfold(stale)  # the premise
    stage = Scripts()
    ctx = Context(spec=spec, runner=Runner(), index=ArtifactIndex(spec.index), env_dir=env_dir)
    assert stage.problems(ctx) == []
    stage.run(ctx)
    # The stage only names it: removing it waits for the switch (a failed build keeps it).
    assert ctx.stale_launchers == [stale] and stale.exists()
    assert _prune_launchers(ctx.stale_launchers) == []
    assert foreign.read_text() == f"#!/bin/sh\n# Generated by something else, not {MARK}\n"
    assert not stale.exists(), "a stale launcher pinfold wrote was left behind"
    assert sorted(p.name for p in launchers.iterdir()) == ["app", "old-tool"]
    assert generated_by_pinfold(launchers / "app") and generated_by_pinfold(env_dir / "bin" / "app")


# Imported alone by the hygiene probe (the caches exist then, not while they are regenerated),
# it waits for a probe the plugins stage starts early: that stage can only end after it.
WAITING_PLUGIN = '''
import os, time
LOG = {log!r}
if os.path.exists(os.path.join(os.path.dirname(__file__), "dropin.cache")):
    deadline = time.monotonic() + 30  # the probe gives it 60 s
    while not (os.path.exists(LOG) and os.path.getsize(LOG)) and time.monotonic() < deadline:
        time.sleep(0.01)
    ran = os.path.exists(LOG) and os.path.getsize(LOG)
    with open(LOG, "a") as fh:
        fh.write("alone, after an early probe\\n" if ran else "alone first\\n")
'''


@pytest.mark.slow
def test_a_script_that_cannot_start_is_resolved_apart(built: tuple[Path, list[Artifact]]) -> None:
    """A run that cannot start proves nothing about the entry point: ``script app`` resolves it."""
    script = (built[0].parent / "env" / "bin" / "app").resolve()
    mode = script.stat().st_mode
    script.chmod(mode & ~0o111)
    try:
        found = _check_results(built[0])
        assert found["script app --probe-arg"][0] == "fail", found
        assert found["script app"] == RESOLVED_APART, found
    finally:
        script.chmod(mode)


@pytest.mark.slow
def test_the_plugins_stage_starts_the_script_and_command_probes_once_the_caches_are_final(
        built: tuple[Path, list[Artifact]], tmp_path: Path) -> None:
    """The scripts stage runs before the plugins stage, which starts the generated scripts'
    probes and the commands with the imports, as soon as every cache is final (while its
    hygiene children still run); each runs once, and the probes stage reports it."""
    pins = built[1]
    log = tmp_path / "ran.log"
    record = f'open({str(log)!r}, "a").write(repr(sys.argv[1:]) + "\\n")'
    scripts = SCRIPTS.replace('      print("init", os.environ["GREETING"])\n',
                              f'      print("init", os.environ["GREETING"])\n      {record}\n')
    root = tmp_path / "project"
    mine = _project(root, pins[0].path.parent, pins, scripts)
    text = mine.read_text().replace("    imports: [twisted]\n", "    imports: [twisted]\n"
                                    f"    commands: [[sh, -c, 'echo command >> {log}']]\n")
    mine.write_text(text)
    write(root / "lib" / "twisted" / "plugins" / "waits.py", WAITING_PLUGIN.format(log=str(log)))
    result = build(load_spec(mine))
    names = [s.name for s in result.stages]
    assert names.index("scripts") < names.index("plugins") < names.index("probes"), names
    probes = {p.name: p.status for p in result.outputs.probe_results}
    assert probes["script app"] == probes["script app --probe-arg"] == "ok", probes
    assert probes[f"command sh -c echo command >> {log}"] == "ok", probes
    summaries = {p.name: p.summary for p in result.outputs.probe_results}
    assert summaries["script app"] == ("appmod:main resolves: `app --probe-arg` imported and called it "
                                    "in a fresh interpreter (exit 0)"), summaries
    lines = log.read_text().splitlines()
    # Each probe ran once: the probes stage reported what the plugins stage started. The
    # script's run stood for its resolve too (no run of the resolve's own, which logs "[]").
    assert sorted(lines) == sorted(["['--probe-arg']", "command", "alone, after an early probe"]), lines
