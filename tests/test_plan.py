"""What a build would do (pinfold.changes.make_plan) and what a lock change is (diff_pins).

Fast: the "finished environment" is a hand-made folder (bin/python linked to the running
interpreter, dist-info folders, pinfold.json); make_plan starts no pip, only one
``python -I -S`` run for the interpreter's identity.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pinfold import load_spec
from pinfold.changes import fingerprint, inputs_of, make_plan
from pinfold.envdir import Environments
from pinfold.locking.diff import diff_pins
from pinfold.locks import Pin, parse_lock
from pinfold.record import EnvRecord, PythonRecord, Watch
from pinfold.render import change_lines
from pinfold.results import Plan
from pinfold.runner import Runner
from pinfold.spec import Spec
from tests.conftest import write

A, B = "sha256:" + "aa" * 32, "sha256:" + "bb" * 32


def pins(tmp_path: Path, text: str) -> tuple[Pin, ...]:
    lock, problems = parse_lock(write(tmp_path / "lock.txt", text), shown="lock.txt")
    assert problems == []
    return lock.pins


# --- diff_pins ----------------------------------------------------------------------------


def test_diff_names_added_removed_moved_and_rehashed_pins(tmp_path: Path) -> None:
    old = pins(tmp_path, f"six==1.16.0 --hash={A}\nattrs==23.1.0 --hash={A}\nidna==3.4 --hash={A}\n"
                         f"pbr==6.0 --hash={A}\n")
    new = pins(tmp_path, f"six==1.17.0 --hash={A}\nidna==3.4 --hash={A} --hash={B}\n"
                         f"pbr==6.0 --hash={A}\nzope-interface==6.0 --hash={A}\n")
    changes = diff_pins(old, new)
    assert change_lines(changes) == [
        "added    zope-interface==6.0",
        "removed  attrs==23.1.0",
        "moved    six 1.16.0 -> 1.17.0",
        "rehashed idna==3.4 (1 -> 2 hashes): the index holds other artifacts of it",
    ]
    assert changes.to_json() == {"added": ["zope-interface==6.0"], "removed": ["attrs==23.1.0"],
                                 "moved": [{"name": "six", "from": "1.16.0", "to": "1.17.0"}],
                                 "rehashed": ["idna==3.4 (1 -> 2 hashes)"]}
    assert not changes.empty


def test_diff_of_equal_pins_is_empty(tmp_path: Path) -> None:
    same = pins(tmp_path, f"six==1.16.0 --hash={A}\n")
    changes = diff_pins(same, same)
    assert changes.empty and change_lines(changes) == []


# --- make_plan ----------------------------------------------------------------------------


def project(tmp_path: Path, runtime: str) -> Spec:
    (tmp_path / "wheelhouse").mkdir(exist_ok=True)
    write(tmp_path / "runtime.txt", runtime)
    write(tmp_path / "env.yaml", "version: 1\npath: env\nindex:\n  find_links: [wheelhouse]\n"
                                 "requirements: runtime.txt\n")
    return load_spec(tmp_path / "env.yaml")


def finished_env(spec: Spec, runner: Runner, *, installed: dict[str, str],
                 inputs: dict[str, str] | None = None) -> Path:
    """A finished environment of ``spec`` as a build leaves it: ``path`` -> env.d/<id>/.

    ``installed``: ``name==version`` -> its hash; each gets a dist-info folder.
    """
    envs = Environments(spec.path)
    env_dir = envs.versions / "20260101-000000000-abcdef"
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "bin" / "python").symlink_to(sys.executable)
    site = env_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for pin in installed:
        (site / f"{pin.replace('==', '-')}.dist-info").mkdir(parents=True)
    recorded = inputs if inputs is not None else inputs_of(spec, runner)
    envs.finish(env_dir, EnvRecord(
        fingerprint=fingerprint(recorded), inputs=recorded,
        watch=Watch(spec=str(spec.file), files={}, folders=(), python=spec.python),
        pinfold="test", spec=spec.file,
        python=PythonRecord(executable=sys.executable, version="3.11.7", abi="cpython-311",
                            markers={"python_version": "3.11", "sys_platform": "linux"}),
        installed=tuple(sorted(installed)),
        hashes={p.split("==")[0]: (h,) for p, h in installed.items()},
        plan=Plan(mode="full"),
    ))
    return env_dir


def test_without_an_environment_the_plan_is_a_full_build(tmp_path: Path) -> None:
    spec = project(tmp_path, f"six==1.16.0 --hash={A}\n")
    plan = make_plan(spec, Environments(spec.path), Runner())
    assert (plan.mode, plan.reasons, plan.current) == ("full", ("there is no environment yet",), None)


def test_nothing_changed_is_a_noop(tmp_path: Path) -> None:
    runner = Runner()
    spec = project(tmp_path, f"six==1.16.0 --hash={A}\n")
    env_dir = finished_env(spec, runner, installed={"six==1.16.0": A})
    plan = make_plan(spec, Environments(spec.path), runner)
    assert plan.to_json() == {"mode": "noop", "reasons": [], "install": [], "remove": [],
                              "current": str(env_dir)}
    assert make_plan(spec, Environments(spec.path), runner, fresh=True).reasons == ("--fresh",)


def test_a_runtime_lock_change_updates_only_the_pins_that_changed(tmp_path: Path) -> None:
    runner = Runner()
    old = project(tmp_path, f"six==1.16.0 --hash={A}\nattrs==23.1.0 --hash={A}\npbr==6.0 --hash={A}\n"
                            f"idna==3.4 --hash={A}\n")
    env_dir = finished_env(old, runner, installed={"six==1.16.0": A, "attrs==23.1.0": A, "pbr==6.0": A,
                                                   "idna==3.4": A})
    # six moves, attrs goes, pbr stays, idna gets another artifact, tomli does not apply here.
    new = project(tmp_path, f"six==1.17.0 --hash={A}\npbr==6.0 --hash={A}\nidna==3.4 --hash={B}\n"
                            f"tomli==2.0.1 ; python_version < \"3.11\" --hash={A}\n"
                            f"zope-interface==6.0 --hash={A}\n")
    plan = make_plan(new, Environments(new.path), runner)
    assert plan.to_json() == {
        "mode": "update", "reasons": ["the runtime lock changed"],
        "install": ["idna==3.4", "six==1.17.0", "zope-interface==6.0"],
        # A rehashed pin is removed first: pip would call the same version satisfied.
        "remove": ["attrs", "idna"],
        "current": str(env_dir),
    }


@pytest.mark.parametrize(("key", "reason"), [("python", "the interpreter changed"),
                                             ("build_requirements", "the build lock changed"),
                                             ("pinfold", "pinfold's version changed")])
def test_what_may_change_how_artifacts_are_built_means_a_full_build(tmp_path: Path, key: str,
                                                                     reason: str) -> None:
    runner = Runner()
    spec = project(tmp_path, f"six==1.16.0 --hash={A}\n")
    inputs = {**inputs_of(spec, runner), key: "something else"}
    env_dir = finished_env(spec, runner, installed={"six==1.16.0": A}, inputs=inputs)
    plan = make_plan(spec, Environments(spec.path), runner)
    assert (plan.mode, plan.reasons, plan.install, plan.current) == ("full", (reason,), (), env_dir)


def test_a_damaged_environment_is_rebuilt_in_full(tmp_path: Path) -> None:
    runner = Runner()
    spec = project(tmp_path, f"six==1.16.0 --hash={A}\nattrs==23.1.0 --hash={A}\n")
    env_dir = finished_env(spec, runner, installed={"six==1.16.0": A, "attrs==23.1.0": A})
    next(env_dir.glob("lib/python*/site-packages/attrs-23.1.0.dist-info")).rmdir()
    plan = make_plan(spec, Environments(spec.path), runner)
    assert (plan.mode, plan.reasons) == (
        "full", ("the current environment is damaged: attrs==23.1.0 no longer installed",))
    (env_dir / "bin" / "python").unlink()
    assert make_plan(spec, Environments(spec.path), runner).reasons == (
        "the current environment is damaged: its interpreter link is broken",)
