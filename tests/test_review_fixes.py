"""Fixes from a review of src/: launchers of a shared ``bin_dir``, where a base file's error is
shown, located errors instead of tracebacks, leftovers that are not pinfold's, atomic writes."""

from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from pinfold import SpecError, load_spec
from pinfold.buildout import BuildoutError, read_buildout
from pinfold.envdir import Environments
from pinfold.genscripts import MARK, generated_by_pinfold, generated_for, write_script
from pinfold.paths import write_atomic
from tests.conftest import cli, write
from tests.test_extends import project

CASES = Path(__file__).parent / "buildout"


# -- 1. a shared bin_dir: each env.yaml removes only its own launchers ------------------------


def _launcher(path: Path, spec_file: Path, name: str) -> Path:
    return write(path, f"#!/bin/sh\n{MARK}{spec_file} (scripts: {name}); do not edit.\nexec true\n")


def test_launcher_of_another_env_yaml_is_not_this_ones(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "a" / "env.yaml", tmp_path / "b" / "env.yaml"
    own = _launcher(tmp_path / "bin" / "x", mine, "x")
    other = _launcher(tmp_path / "bin" / "y", theirs, "y")
    # Both are pinfold's (never replaced by a foreign file check) ...
    assert generated_by_pinfold(own) and generated_by_pinfold(other)
    # ... but only the first was written for `mine`: the only one its build may remove.
    assert generated_for(own, mine) and not generated_for(other, mine)
    # A prefix of another spec file's name is not that file.
    assert not generated_for(_launcher(tmp_path / "bin" / "z", Path(f"{mine}.old"), "z"), mine)
    assert not generated_for(tmp_path / "missing", mine)


def test_write_script_is_executable_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "bin" / "tool"
    target.parent.mkdir()
    assert write_script(target, "#!/bin/sh\nexit 0\n") is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert write_script(target, "#!/bin/sh\nexit 0\n") is False  # same bytes: not written again
    assert sorted(p.name for p in target.parent.iterdir()) == ["tool"]


def test_write_atomic_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = write(tmp_path / "victim", "keep\n")
    target = tmp_path / "tool"
    # The fixed temporary name the old writers used: a symlink there is not followed now.
    (tmp_path / ".tool.pinfold-tmp").symlink_to(victim)
    (tmp_path / ".tool.tmp").symlink_to(victim)
    write_atomic(target, b"new\n", mode=0o700)
    assert victim.read_text() == "keep\n" and target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


# -- 2. a syntax error in a base file's initialization is located in that file ---------------


def test_initialization_error_located_in_the_base_file(tmp_path: Path) -> None:
    base = ("version: 1\npath: ../env\nindex:\n  find_links: [../wheelhouse]\nrequirements: runtime.txt\n"
            "scripts:\n  - name: a\n    entry_point: m:f\n    initialization: |\n      ok = 1\n      if x\n")
    spec_file = project(tmp_path, "extends: config/base.yaml\n", base=base)
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "not valid Python" in text
    assert os.path.join("config", "base.yaml") + ":11:" in text, text
    assert "env.yaml:11" not in text


# -- 3. located errors (exit 2), not tracebacks -------------------------------------------


def test_import_over_a_non_utf8_env_yaml(tmp_path: Path) -> None:
    root = tmp_path / "package"
    shutil.copytree(CASES / "package", root)
    (root / "env.yaml").write_bytes(b"version: 1\n# \xff\xfe\n")
    code, _, err = cli("import", str(root / "buildout.cfg"))
    assert code == 2, err
    assert "would overwrite env.yaml" in err and "not UTF-8" in err
    assert (root / "env.yaml").read_bytes() == b"version: 1\n# \xff\xfe\n"


def test_nul_in_buildout_extends_is_located(tmp_path: Path) -> None:
    cfg = tmp_path / "buildout.cfg"
    cfg.write_text("[buildout]\nextends = base\x00.cfg\nparts =\n", encoding="utf-8")
    with pytest.raises(BuildoutError) as info:
        read_buildout(cfg)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "buildout.cfg:2" in text and "NUL" in text, text
    code, _, err = cli("import", str(cfg))
    assert code == 2 and "NUL" in err


def test_buildout_extends_naming_a_fifo_is_refused_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "base.cfg")
    cfg = write(tmp_path / "buildout.cfg", "[buildout]\nextends = base.cfg\nparts =\n")
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            read_buildout(cfg)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock the reader so that the test run ends
        with open(tmp_path / "base.cfg", "w"):
            pass
        pytest.fail("read_buildout blocked on a FIFO")
    assert isinstance(outcome[0], BuildoutError)
    text = "\n".join(str(p) for p in outcome[0].problems)
    assert "buildout.cfg:2" in text and "not a regular file" in text, text


# -- 4. leftovers: only pinfold's unfinished builds count -----------------------------------


def test_foreign_entries_are_not_leftovers(tmp_path: Path) -> None:
    envs = Environments(tmp_path / "env")
    envs.versions.mkdir()
    (envs.versions / "notes").mkdir()                 # someone's folder: cleanup never removes it
    write(envs.versions / "README", "mine\n")
    (envs.versions / "link").symlink_to(tmp_path)
    assert not envs.has_leftovers()
    unfinished = envs.new_dir()
    envs.create(unfinished)                           # a killed build: marked, no record
    assert envs.has_leftovers()
    envs.cleanup()
    assert not unfinished.exists() and not envs.has_leftovers()
    assert (envs.versions / "notes").is_dir()


@pytest.mark.slow
def test_failed_build_removes_no_launcher_and_others_are_kept(tmp_path: Path) -> None:
    """A real build: stale launchers go only once the new environment is switched in, and a
    launcher another env.yaml wrote into the shared bin_dir is never removed."""
    from pinfold import build
    from pinfold.errors import ProbeError
    from tests.artifacts import make_wheel

    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    tool = make_wheel(wh, "tool", "1.0", files={"tool/__init__.py": "def main():\n    print('tool')\n"},
                      entry_points={"console_scripts": {"tool-hello": "tool:main"}})
    write(tmp_path / "runtime.txt", f"{tool.pin()}\n")
    head = f"version: 1\npath: env\nindex:\n  find_links: [{wh}]\nrequirements: runtime.txt\nbin_dir: bin\n"
    env_yaml = write(tmp_path / "env.yaml", head + "scripts:\n  - {name: a, console_script: tool-hello}\n"
                     "  - {name: b, console_script: tool-hello}\n")
    other = _launcher(tmp_path / "bin" / "c", tmp_path / "elsewhere" / "env.yaml", "c")
    build(load_spec(env_yaml))
    assert (tmp_path / "bin" / "b").is_file()
    current = (tmp_path / "env").resolve()
    # b is no longer asked for, and the build fails at its probes: nothing is switched, so
    # the current environment's launcher b stays.
    env_yaml.write_text(head + "scripts:\n  - {name: a, console_script: tool-hello}\n"
                        "final:\n  probes:\n    imports: [no_such_module_anywhere]\n")
    with pytest.raises(ProbeError):
        build(load_spec(env_yaml))
    assert (tmp_path / "env").resolve() == current
    assert generated_for(tmp_path / "bin" / "b", env_yaml)
    # The same change, built: b goes, the other env.yaml's c stays.
    env_yaml.write_text(head + "scripts:\n  - {name: a, console_script: tool-hello}\n")
    build(load_spec(env_yaml))
    assert not (tmp_path / "bin" / "b").exists()
    assert (tmp_path / "bin" / "a").is_file() and other.is_file()
