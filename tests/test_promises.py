"""README promises that had no test of their own: the CLI's options, the defaults, the final
stages' options, and what happens to ``path`` when a build is cut short.

Two kinds of project: a tiny one (one wheel, no Twisted, a build takes about two seconds),
written afresh for each test because nearly every test here changes it, and a Twisted one,
built once per module and shared by the tests that only read it (``pinfold check`` included);
the one Twisted test that needs other settings builds its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinfold import BuildResult, build, load_spec
from pinfold.record import STATE_FILE
from tests.artifacts import Artifact, copy_real, make_sdist, make_wheel
from tests.conftest import cli, installed, write
from tests.test_final_stages import _MAKER, TWISTED, site_packages
from tests.test_runner import gone

INTERRUPTED = "interrupted; the previous environment is unchanged"


def finished(root: Path) -> list[Path]:
    """The finished environments in ``root/env.d``, oldest first."""
    versions = root / "env.d"
    return sorted(p for p in versions.iterdir() if not p.name.startswith(".") and (p / STATE_FILE).is_file())


def unfinished(root: Path) -> list[Path]:
    versions = root / "env.d"
    return [p for p in versions.iterdir() if not p.name.startswith(".") and not (p / STATE_FILE).is_file()]


# --- the tiny project -----------------------------------------------------------------------


def tiny(root: Path, *, final: str = "", build_lock: bool = False) -> Path:
    """One wheel (``b-pkg``) in the project's own wheelhouse; return env.yaml.

    ``build_lock`` adds a build lock with setuptools, so that a later update may pin an sdist
    without that being a full build (a new build lock is one).
    """
    wh = root / "wheelhouse"
    wheel = make_wheel(wh, "b-pkg", "1.0")
    write(root / "runtime.txt", wheel.pin() + "\n")
    text = "path: env\nindex: {find_links: wheelhouse}\nrequirements: runtime.txt\n"
    if build_lock:
        write(root / "build.txt", "".join(a.pin() + "\n" for a in copy_real(wh, "setuptools")))
        text += "build_requirements: build.txt\n"
    return write(root / "env.yaml", text + final)


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_traceback_shows_the_python_traceback_of_an_error_and_only_then(in_tmp: Path) -> None:
    code, _, err = cli("build", "missing.yaml")
    assert code == 2, err
    assert "error: missing.yaml: no such file" in err
    assert "Traceback" not in err

    code, _, err = cli("build", "missing.yaml", "--traceback")
    assert code == 2, err
    assert "Traceback (most recent call last):" in err
    assert "pinfold.errors.SpecError: missing.yaml: no such file" in err
    assert "error: missing.yaml: no such file" in err  # the message still follows
    assert list(in_tmp.iterdir()) == []


def test_check_without_an_environment_says_so_and_creates_nothing(in_tmp: Path) -> None:
    spec = tiny(in_tmp)
    before = sorted(p.name for p in in_tmp.iterdir())
    code, out, err = cli("check", str(spec), "--json")
    assert code == 1, err
    assert f"error: there is no environment at {in_tmp / 'env'} yet" in err
    assert "tip: run `pinfold build` first" in err
    assert json.loads(out)["ok"] is False
    assert sorted(p.name for p in in_tmp.iterdir()) == before  # no env, no env.d


@pytest.mark.slow
def test_verbose_streams_pip_output_indented_and_only_then(in_tmp: Path) -> None:
    spec = tiny(in_tmp)
    code, _, err = cli("build", "-v", str(spec))
    assert code == 0, err
    lines = err.splitlines()
    assert "    Successfully installed b-pkg-1.0" in lines, err
    assert any(line.startswith("    Processing ") and "b_pkg-1.0-py3-none-any.whl" in line
               for line in lines), err

    code, _, err = cli("build", "--fresh", str(spec))
    assert code == 0, err
    assert "Successfully installed" not in err and "Processing " not in err, err
    assert "[install]" in err  # the stage lines are there, pip's own are not


@pytest.mark.slow
def test_builds_keep_the_newest_three_environments(in_tmp: Path) -> None:
    """README, "Environments on disk": "Builds keep the newest three environments"."""
    spec = load_spec(tiny(in_tmp))
    built = [build(spec).env_dir]
    built += [build(spec, fresh=True).env_dir for _ in range(3)]
    assert len(set(built)) == 4
    assert finished(in_tmp) == built[1:]  # the oldest went, the newest three stay
    assert (in_tmp / "env").resolve() == built[-1]
    assert unfinished(in_tmp) == []


@pytest.mark.slow
def test_rollback_and_check_work_after_the_wheelhouse_was_deleted(in_tmp: Path) -> None:
    spec = tiny(in_tmp)
    first = build(load_spec(spec)).env_dir
    second = build(load_spec(spec), fresh=True).env_dir
    for wheel in (in_tmp / "wheelhouse").iterdir():
        wheel.unlink()
    (in_tmp / "wheelhouse").rmdir()
    code, _, err = cli("build", str(spec))
    assert code == 2 and "does not exist" in err, err  # a build does need it

    code, out, err = cli("rollback", str(spec), "--json")
    assert code == 0, err
    assert json.loads(out) == {"schema": "pinfold/rollback/1", "ok": True, "from": str(second),
                               "to": str(first)}
    assert (in_tmp / "env").resolve() == first
    code, _, err = cli("check", str(spec))
    assert code == 0, err
    assert "all probes passed" in err


@pytest.mark.slow
def test_a_probe_command_that_leaves_a_background_process_does_not_hold_up_the_build(
        in_tmp: Path) -> None:
    """The background ``sleep`` keeps the command's stdout open. The build must finish
    without waiting for it (a runner that did would pass the command's 10 s timeout and fail
    the probe), and must not leave it running either."""
    pidfile = in_tmp / "sleep.pid"
    argv = ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; echo hi"]
    spec = tiny(in_tmp, final=f"final:\n  probes:\n    commands:\n"
                              f"      - argv: {json.dumps(argv)}\n        timeout: 10\n")
    code, out, err = cli("build", str(spec), "--json")
    assert code == 0, err
    probes = {p["name"]: p for p in json.loads(out)["facts"]["probes"]}
    assert probes[f"command {' '.join(argv)}"]["status"] == "ok", probes
    pid = int(pidfile.read_text())
    assert gone(pid), "the probe's background process outlived the build"


@pytest.mark.slow
def test_ctrl_c_during_an_update_keeps_the_previous_environment(in_tmp: Path) -> None:
    """SIGINT while the update's pip builds a new pin: exit 130, `path` unchanged, nothing
    left behind, the builder ended, and the old environment still passes `pinfold check`."""
    spec = tiny(in_tmp, build_lock=True)
    old = build(load_spec(spec)).env_dir
    marker = in_tmp / "setup.pid"
    # Slow only the first time its setup.py runs: long enough to be interrupted.
    slow = (f"import os, pathlib, time\nmark = pathlib.Path({str(marker)!r})\n"
            "if not mark.exists():\n    mark.write_text(str(os.getpid()))\n    time.sleep(60)\n"
            "from setuptools import setup\nsetup()\n")
    sdist = make_sdist(in_tmp / "wheelhouse", "slow-build", "1.0", files={"setup.py": slow})
    with (in_tmp / "runtime.txt").open("a") as fh:
        fh.write(sdist.pin() + "\n")
    code, out, _ = cli("plan", str(spec), "--json")
    assert code == 0 and json.loads(out)["mode"] == "update", out

    proc = subprocess.Popen([sys.executable, "-m", "pinfold", "build", str(spec)], cwd=in_tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (marker.is_file() and marker.read_text()):
            assert proc.poll() is None, f"the build ended before pip built the sdist: {proc.communicate()}"
            assert time.monotonic() < deadline, "pip never built the sdist"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGINT)  # pinfold alone, as Ctrl-C's handler sees it first
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert INTERRUPTED in err
    assert gone(int(marker.read_text())), "the sdist's build outlived pinfold"
    assert (in_tmp / "env").resolve() == old
    assert finished(in_tmp) == [old] and unfinished(in_tmp) == []
    assert "slow-build" not in installed(in_tmp / "env")
    code, _, err = cli("check", str(spec))
    assert code == 0, err


# --- the Twisted project: plugin packages, reactors, disabled stages ------------------------

#: A plugin package found automatically: its ``__init__`` calls pluginPackagePaths.
AUTO = {"autoplugs/__init__.py": ("from twisted.plugin import pluginPackagePaths\n"
                                  "__path__.extend(pluginPackagePaths(__name__))\n"),
        "autoplugs/auto_one.py": _MAKER.format(name="auto")}
#: Two plugin packages whose ``__init__`` does not: found only when listed in
#: ``final.plugin_caches.packages`` (the first is, the second is not).
LISTED = {"listedplugs/__init__.py": "", "listedplugs/listed_one.py": _MAKER.format(name="listed")}
UNLISTED = {"unlistedplugs/__init__.py": "", "unlistedplugs/unlisted_one.py": _MAKER.format(name="unlisted")}


@dataclass(frozen=True)
class Plugins:
    """The module's wheelhouse: Twisted's closure plus the three plugin packages."""

    path: Path
    artifacts: tuple[Artifact, ...]


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Plugins:
    wh = tmp_path_factory.mktemp("wheelhouse")
    arts = [*copy_real(wh, *TWISTED)]
    for name, files in (("autoplug", AUTO), ("listedplug", LISTED), ("unlistedplug", UNLISTED)):
        arts.append(make_wheel(wh, name, "1.0", files=files, requires=["twisted"]))
    return Plugins(wh, tuple(arts))


def twisted_project(root: Path, wh: Plugins, final: str) -> Path:
    write(root / "runtime.txt", "".join(f"{a.pin()}\n" for a in wh.artifacts))
    return write(root / "env.yaml", f"path: env\nindex:\n  find_links: [{wh.path}]\n"
                                    f"requirements: runtime.txt\n{final}")


@pytest.fixture(scope="module")
def listed(plugins: Plugins, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """Built once: ``listedplugs`` in ``final.plugin_caches.packages``, the select reactor."""
    root = tmp_path_factory.mktemp("listed")
    spec = twisted_project(root, plugins, "final:\n  plugin_caches:\n    packages: [listedplugs]\n"
                                          "  probes:\n    reactor: select\n")
    return build(load_spec(spec))


def caches(env: Path) -> list[str]:
    """Every dropin.cache of ``env``, relative to site-packages."""
    site = site_packages(env)
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("dropin.cache"))


@pytest.mark.slow
def test_plugin_caches_packages_adds_a_package_the_scan_does_not_find(listed: BuildResult) -> None:
    written = listed.outputs.plugin_caches
    assert written is not None
    assert set(written.packages) == {"twisted.plugins", "autoplugs", "listedplugs"}, written.packages
    # Listed: cached. Found by its pluginPackagePaths call: cached. Neither: no cache.
    assert caches(listed.env_dir) == ["autoplugs/dropin.cache", "listedplugs/dropin.cache",
                                      "twisted/plugins/dropin.cache"]
    assert not (site_packages(listed.env_dir) / "unlistedplugs" / "dropin.cache").exists()


@pytest.mark.slow
def test_the_bootstrap_probe_installs_the_configured_reactor(listed: BuildResult, tmp_path: Path) -> None:
    probes = {p.name: p for p in listed.outputs.probe_results}
    summary = probes["consumer-bootstrap"].summary
    assert probes["consumer-bootstrap"].status == "ok", probes["consumer-bootstrap"]
    assert summary.startswith("installReactor('select') -> twisted.internet.selectreactor.SelectReactor "
                              "with read-only plugin folders"), summary
    if not sys.platform.startswith("linux"):
        return
    # The same environment, checked by an env.yaml beside it that asks for epoll.
    other = listed.spec_file.with_name("epoll.yaml")
    other.write_text(listed.spec_file.read_text().replace("reactor: select", "reactor: epoll"))
    try:
        code, out, err = cli("check", str(other), "--json")
    finally:
        other.unlink()
    assert code == 0, err
    checked = {p["name"]: p for p in json.loads(out)["facts"]["probes"]}
    bootstrap = checked["consumer-bootstrap"]
    assert bootstrap["status"] == "ok", bootstrap
    assert bootstrap["summary"].startswith("installReactor('epoll') -> "
                                           "twisted.internet.epollreactor.EPollReactor "), bootstrap


@pytest.mark.slow
def test_disabled_plugin_caches_and_probes_are_skipped_and_say_why(plugins: Plugins, tmp_path: Path) -> None:
    spec = twisted_project(tmp_path, plugins, "final:\n  plugin_caches:\n    enabled: false\n"
                                              "  probes:\n    enabled: false\n")
    code, out, err = cli("build", str(spec), "--json")
    assert code == 0, err
    assert "[plugins] skipped: disabled (final.plugin_caches.enabled is false)" in err
    assert "[probes] skipped: disabled (final.probes.enabled is false)" in err
    stages = {s["name"]: s for s in json.loads(out)["stages"]}
    assert stages["plugins"]["status"] == stages["probes"]["status"] == "skipped"
    assert caches(tmp_path / "env") == []

    code, out, err = cli("check", str(spec), "--json")
    assert code == 0, err
    assert "[probes] skipped: disabled (final.probes.enabled is false)" in err
    assert "all probes passed" not in err  # none ran: it must not say they passed
    assert f"{tmp_path / 'env'}: no probes ran: disabled (final.probes.enabled is false)" in err
    assert json.loads(out)["stages"][0]["status"] == "skipped"


def test_check_text_says_when_no_probe_ran() -> None:
    from pinfold.render import check_lines

    assert check_lines(Path("env")) == ["env: all probes passed"]
    assert check_lines(Path("env"), skipped="disabled (final.probes.enabled is false)") == [
        "env: no probes ran: disabled (final.probes.enabled is false)"]
