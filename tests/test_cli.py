"""The CLI as the only presenter: command table, exit codes, --json, and rendered text."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from pinfold.cli import _COMMANDS, _parser, exit_code_for, main
from pinfold.errors import BuildError, PinfoldError, Problem, SpecError
from pinfold.fetch import FetchReport
from pinfold.locking import CheckReport, LockChanges, LockError, LockReport, Move, StaleLockError
from pinfold.render import error_lines, fetch_lines, lock_check_lines, lock_lines, plan_lines
from tests.conftest import write

HASH = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the project folder: rendered paths are then relative."""
    monkeypatch.chdir(tmp_path)


def test_every_command_has_exactly_one_handler() -> None:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(_COMMANDS)


def test_exit_codes_come_from_one_table() -> None:
    assert exit_code_for(SpecError("bad")) == 2
    assert exit_code_for(StaleLockError("stale")) == 1
    assert exit_code_for(LockError("no")) == 1
    assert exit_code_for(BuildError("no")) == 1
    assert exit_code_for(PinfoldError("no")) == 1
    assert exit_code_for(KeyboardInterrupt()) == 130
    assert exit_code_for(ValueError("a bug")) == 1


def test_status_json_ok_agrees_with_the_exit_code(tmp_path: Path) -> None:
    (tmp_path / "wheelhouse").mkdir()
    write(tmp_path / "runtime.txt", f"six==1.16.0 --hash={HASH}\n")
    write(tmp_path / "env.yaml", "path: env\nindex: {find_links: [wheelhouse]}\nrequirements: runtime.txt\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["status", "--json"], stdout=out, stderr=err) == 1
    result = json.loads(out.getvalue())
    assert result["ok"] is False and result["exit_code"] == 1 and result["up_to_date"] is False
    assert err.getvalue() == f"{tmp_path / 'env'} needs a full build: there is no environment yet\n"
    out = io.StringIO()
    assert main(["plan", "--json"], stdout=out, stderr=io.StringIO()) == 0
    assert json.loads(out.getvalue())["ok"] is True


def test_lock_text(tmp_path: Path) -> None:
    runtime = LockChanges(added=("b==1",), removed=("c==2",), moved=(Move("a", "1", "2"),),
                          rehashed=("d==1 (1 -> 2 hashes)",))
    report = LockReport(runtime_path=tmp_path / "runtime.txt", build_path=tmp_path / "build.txt",
                        runtime=runtime, build=LockChanges(), runtime_pins=3, build_pins=1,
                        written=(tmp_path / "runtime.txt",), warnings=("careful",))
    assert lock_lines(report) == [
        "runtime lock runtime.txt (3 pins): changed",
        "  added    b==1",
        "  removed  c==2",
        "  moved    a 1 -> 2",
        "  rehashed d==1 (1 -> 2 hashes): the index holds other artifacts of it",
        "build lock build.txt (1 pin): unchanged",
        "warning: careful",
        "wrote runtime.txt",
    ]
    same = LockReport(runtime_path=tmp_path / "runtime.txt", build_path=None, runtime=LockChanges(),
                      build=LockChanges(), runtime_pins=1)
    assert lock_lines(same)[-1] == "the locks were already up to date; nothing was written"
    checked = CheckReport(paths=(tmp_path / "runtime.txt", tmp_path / "build.txt"))
    assert lock_check_lines(checked) == ["runtime.txt and build.txt match env.yaml's needs"]


def test_fetch_plan_and_error_text(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    assert fetch_lines(FetchReport(wheelhouse=wheelhouse, present=4)) == [
        "wheelhouse/ already holds every locked artifact (4 pins)"]
    assert fetch_lines(FetchReport(wheelhouse=wheelhouse, downloaded=("a.whl",), present=2)) == [
        "downloaded 1 artifacts into wheelhouse/ (2 were already there)"]
    from pinfold.changes import Plan

    plan = Plan(mode="update", reasons=("the runtime lock changed",), install=("a==2",), remove=("c",))
    assert plan_lines(Path("env"), plan, detailed=True) == [
        "env needs an update: the runtime lock changed",
        "  install a==2",
        "  remove  c",
        "  clone the current environment, apply the changes above, then re-run the final stages",
    ]
    exc = SpecError("env.yaml is invalid", [Problem("env.yaml:1:1", "bad")], tip="fix it")
    assert error_lines(exc) == ["error: env.yaml is invalid\n  env.yaml:1:1: bad", "tip: fix it"]


def test_a_problem_is_a_value() -> None:
    """Problem is a plain class (no dataclass on the no-op path): equal by value, hashable."""
    one, same, other = Problem("env.yaml:1:1", "bad"), Problem("env.yaml:1:1", "bad"), Problem("", "bad")
    assert one == same and hash(one) == hash(same) and one != other and len({one, same, other}) == 2
    assert str(one) == "env.yaml:1:1: bad" and str(other) == "bad" and one != ("env.yaml:1:1", "bad")
    assert repr(one) == "Problem(where='env.yaml:1:1', message='bad')"
