"""Hostile env.yaml and needs files: every one is a located message and exit 2, never a traceback.

Each case is one the loader met with an internal error, a hang or a wrong location before.
The CLI runs in-process; nothing in these tests starts pip or virtualenv.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pinfold import SpecError, load_spec
from pinfold.cli import main
from tests.conftest import write

HASH = "sha256:" + "ab" * 32

GOOD = """\
version: 1
path: env
index:
  find_links: [wheelhouse]
requirements: runtime.txt
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wheelhouse").mkdir()
    write(tmp_path / "runtime.txt", f"six==1.16.0 --hash={HASH}\n")


def problems(text: str, *, purpose: str = "build") -> list[str]:
    write(Path("env.yaml"), text)
    with pytest.raises(SpecError) as info:
        load_spec("env.yaml", purpose=purpose)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems] or [info.value.summary]


def cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    code = main(list(args), stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


#: Every command that reads env.yaml. `build` is the one that matters most: its no-op fast
#: path reads env.yaml on its own before the loader does; plan and lock share the loader.
EVERY_COMMAND = ("build", "plan", "lock")


def assert_bad_input(text: str, *expected: str, commands: tuple[str, ...] = ("build",)) -> None:
    """load_spec names each expected fragment; each of ``commands`` exits 2 with no internal error."""
    found = problems(text)
    for fragment in expected:
        assert any(fragment in p for p in found), (fragment, found)
    for command in commands:
        code, err = cli(command, "env.yaml")
        assert code == 2 and "internal error" not in err and "Traceback" not in err, (command, err)


@pytest.mark.parametrize(("line", "fragment"), [
    ("compile: !!bool maybe", "env.yaml:6:10: compile: expected true or false: 'maybe' is not a valid bool"),
    ("build_needs: [!!int abc]", "build_needs[0]: expected a string: 'abc' is not a valid int"),
    ("final: {probes: {commands: [{argv: [true], timeout: !!float fast}]}}",
     "timeout: expected a number of seconds: 'fast' is not a valid float"),
    ("python: !!timestamp yesterday", "the YAML tag !!timestamp is not supported"),
    ("installer: !custom x", "the YAML tag !custom is not supported"),
    ("installer: !!python/name:os.system ''", "the YAML tag !!python/name:os.system is not supported"),
    ("develop: !!set {a: null}", "the YAML tag !!set is not supported"),
])
def test_yaml_tags_are_located_problems(line: str, fragment: str) -> None:
    assert_bad_input(f"{GOOD}{line}\n", fragment, commands=EVERY_COMMAND)


def test_an_explicit_tag_on_the_version_is_located() -> None:
    assert_bad_input(GOOD.replace("version: 1", "version: !!int abc"),
                     "env.yaml:1:10: version: expected a whole number: 'abc' is not a valid int")


@pytest.mark.parametrize("key", ["path", "requirements", "build_requirements", "needs", "python"])
def test_a_nul_byte_in_a_path_is_named(key: str) -> None:
    text = "\n".join(ln for ln in GOOD.splitlines() if not ln.startswith(f"{key}:"))
    assert_bad_input(f'{text}\n{key}: "a\\0b"\n', f"{key}: the ")


def test_nul_bytes_in_list_items_are_named() -> None:
    text = GOOD.replace("[wheelhouse]", '[wheelhouse, "w\\0h"]') + 'develop: ["src\\0x"]\n'
    assert_bad_input(text, "index.find_links[1]: the path contains a NUL character",
                     "develop[0]: the path contains a NUL character")


def test_huge_strings_and_the_root_folder_as_path() -> None:
    assert_bad_input(GOOD.replace("path: env", f"path: {'x' * 1_000_000}"),
                     "path: the path is longer than 4096 bytes")
    assert_bad_input(GOOD.replace("path: env", f"path: {'x' * 300}"),
                     "path: the path has a name longer than 255")
    assert_bad_input(GOOD.replace("runtime.txt", "a/" * 3000 + "r.txt"),
                     "requirements: the path is longer than")
    assert_bad_input(GOOD.replace("path: env", "path: /"), "path: must be a folder of its own")


def test_symlink_loops_are_named(tmp_path: Path) -> None:
    os.symlink("loop-b", tmp_path / "loop-a")
    os.symlink("loop-a", tmp_path / "loop-b")
    assert_bad_input(GOOD.replace("runtime.txt", "loop-a/runtime.txt"),
                     "requirements: 'loop-a/runtime.txt': ")
    assert_bad_input(GOOD.replace("[wheelhouse]", "[loop-a]"), "index.find_links[0]: 'loop-a': ")
    write(tmp_path / "needs.in", "-r loop-a/more.in\nsix\n")
    assert_bad_input(GOOD + "needs: needs.in\n", "needs.in:1: cannot read")


def test_deep_nesting_is_refused_before_composing() -> None:
    # Far beyond Python's recursion limit: a composer that recursed would fail with RecursionError.
    depth = 2000
    assert_bad_input(GOOD + "final: " + "[" * depth + "]" * depth + "\n", "nested deeper than 64 levels")
    assert_bad_input(GOOD + "final:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)),
                     "nested deeper than 64 levels")


def test_needs_include_of_a_fifo_or_a_device_neither_hangs_nor_reads(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.in")
    write(tmp_path / "needs.in", "-r fifo.in\n-r /dev/zero\nsix\n")
    write(tmp_path / "env.yaml", GOOD + "needs: needs.in\n")
    # In a subprocess with a timeout: if the FIFO were opened, this would block for good.
    done = subprocess.run([sys.executable, "-m", "pinfold", "lock", "--check", "env.yaml"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "fifo.in: not a regular file" in done.stderr and "/dev/zero: not a regular file" in done.stderr


def test_an_empty_find_links_and_a_missing_file_index_are_named() -> None:
    assert_bad_input(GOOD.replace("[wheelhouse]", "[]"), "env.yaml:4:15: index.find_links: is an empty list")
    text = GOOD.replace("index:\n", "index:\n  url: file:///missing/simple/\n")
    assert_bad_input(text, "index.url: 'file:///missing/simple/': the folder /missing/simple does not exist")


def test_probe_timeouts_must_be_positive_and_finite() -> None:
    for value in ("-5", "0", ".nan", ".inf"):
        text = GOOD + f"final: {{probes: {{commands: [{{argv: [true], timeout: {value}}}]}}}}\n"
        assert_bad_input(text, "final.probes.commands[0].timeout: expected a positive number of seconds")


def test_locations_stay_right_after_an_invalid_item() -> None:
    found = problems(GOOD.replace("[wheelhouse]", '[5, "http://x/"]'))
    assert "env.yaml:4:16: index.find_links[0]: expected a string, got 5" in found, found
    assert any(p.startswith("env.yaml:4:19: index.find_links[1]: 'http://x/' is a URL") for p in found), found


def test_version_must_be_a_whole_number() -> None:
    assert problems(GOOD.replace("version: 1", "version: 1.0")) == [
        "env.yaml:1:10: version: expected a whole number, got 1.0"]


def test_path_may_not_be_an_input() -> None:
    assert_bad_input(GOOD.replace("path: env", "path: wheelhouse"),
                     "path: wheelhouse would hold a wheelhouse")
    assert_bad_input(GOOD.replace("path: env", "path: runtime.txt"), "path: runtime.txt would hold a lock")
    assert_bad_input(GOOD.replace("path: env", "path: wheelhouse/env"), "is inside the wheelhouse")


def test_inspect_reads_a_spec_whose_wheelhouse_and_lock_are_gone(tmp_path: Path) -> None:
    write(tmp_path / "env.yaml", GOOD + "python: /no/such/python\nneeds: [six]\n")
    (tmp_path / "wheelhouse").rmdir()
    (tmp_path / "runtime.txt").unlink()
    assert problems(GOOD + "python: /no/such/python\nneeds: [six]\n")  # strict: refused
    spec = load_spec(tmp_path / "env.yaml", purpose="inspect")
    assert spec.path == tmp_path / "env" and spec.requirements.pins == ()
    # Malformed keys are still refused: leniency is about what exists, not about what is written.
    assert problems(GOOD + "compile: maybe\n", purpose="inspect") == [
        "env.yaml:6:10: compile: expected true or false, got a string"]


def _old_python() -> str | None:
    """A Python older than pinfold's minimum target (3.10) from pyenv, if this machine has one."""
    import glob

    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9.*/bin/python3")))
    return found[-1] if found else None


@pytest.mark.skipif(_old_python() is None, reason="no Python 3.9 under ~/.pyenv/versions")
def test_a_target_older_than_the_minimum_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    old = _old_python()
    assert old is not None
    write(tmp_path / "env.yaml", GOOD + f"python: {old}\n")
    code, err = cli("build", "env.yaml")
    assert code == 2, err
    assert "is Python 3.9." in err and "pinfold builds environments for Python 3.10 or newer" in err, err
    assert not (tmp_path / "env").exists() and not (tmp_path / "env.d").exists()
