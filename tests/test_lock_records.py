"""What a lock records of env.yaml, so that `lock --check` and builds see it go stale (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinfold import load_spec
from pinfold.locking.needs import record_items, render_record, stale_problems
from tests.conftest import write

HASH = "sha256:" + "ab" * 32
SPEC = ("path: env\nindex: {find_links: [wheelhouse]}\nrequirements: runtime.txt\nneeds: [six]\n"
        "targets:\n  - {python_version: '3.12', platform: linux-x86_64}\n")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wheelhouse").mkdir()


def test_the_targets_are_recorded_and_a_change_of_targets_is_stale(tmp_path: Path) -> None:
    write(tmp_path / "env.yaml", SPEC)
    write(tmp_path / "runtime.txt", "\n")
    spec = load_spec(tmp_path / "env.yaml", purpose="lock")
    items = record_items(spec, "needs")
    assert items == ["--target 3.12/linux-x86_64", "six"]
    record = "\n".join(render_record("needs", items or []))
    write(tmp_path / "runtime.txt", f"{record}\nsix==1.16.0 --hash={HASH}\n")
    assert stale_problems(load_spec(tmp_path / "env.yaml")) == []
    # Another target: the same needs, but the lock was resolved for other interpreters.
    write(tmp_path / "env.yaml", SPEC.replace("'3.12'", "'3.13'"))
    (problem,) = stale_problems(load_spec(tmp_path / "env.yaml"))
    assert "added --target 3.13/linux-x86_64; removed --target 3.12/linux-x86_64" in problem.message


@pytest.mark.slow
def test_lock_names_a_constraint_that_pins_nothing(tmp_path: Path) -> None:
    """Buildout's versions files pin a whole framework; what nothing needs is named, not an error."""
    from tests.artifacts import make_wheel
    from tests.conftest import cli

    make_wheel(tmp_path / "wheelhouse", "plain", "1.0")
    write(tmp_path / "constraints.txt", "plain==1.0\nnot-needed==2.0\n")
    write(tmp_path / "needs.in", "-c constraints.txt\nplain\n")
    write(tmp_path / "env.yaml", "path: env\nindex: {find_links: [wheelhouse]}\n"
                                 "requirements: runtime.txt\nneeds: needs.in\n")
    code, _, err = cli("lock", "env.yaml")
    assert code == 0, err
    assert "warning: constraint not-needed==2.0 pins nothing: no need asks for not-needed" in err
    assert "constraint plain==1.0" not in err


def test_the_resolvers_get_the_index_without_pip_installs_network_options() -> None:
    """pip-compile and `uv pip compile` refuse --timeout/--retries/--cert: those go as variables."""
    from pinfold.index import index_environ, index_flags
    from pinfold.locking.resolve import resolver_flags
    from pinfold.spec import IndexSpec

    index = IndexSpec(url="http://127.0.0.1:9/simple/", find_links=(Path("/w"),), timeout=5, retries=1,
                      cert=Path("/ca.pem"))
    assert resolver_flags(index_flags(index)) == ["--index-url", "http://127.0.0.1:9/simple/",
                                                  "--find-links", "/w"]
    assert {k: index_environ(index)[k] for k in ("PIP_TIMEOUT", "PIP_RETRIES", "PIP_CERT")} == {
        "PIP_TIMEOUT": "5", "PIP_RETRIES": "1", "PIP_CERT": "/ca.pem"}
