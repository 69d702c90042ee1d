"""Shared fixtures: a scrubbed environment for every test, and offline helpers."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinfold.cli import main
from pinfold.runner import Runner


@pytest.fixture(autouse=True)
def scrubbed_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Strip PIP_*, UV_*, VIRTUAL_ENV and PYTHONPATH: the machine's own settings must not leak.

    The leak-guard tests set them again on purpose, to prove pinfold ignores them.
    """
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")) or name in ("VIRTUAL_ENV", "PYTHONPATH"):
            monkeypatch.delenv(name)
    yield


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


CAN_UNSHARE = _can_unshare()

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `network` reach the real package index: only with PINFOLD_TEST_NETWORK=1.

    The suite's one online step is the download of real wheels into the test cache
    (tests/artifacts.py); everything else, CI included, runs from local artifacts.
    """
    if os.environ.get("PINFOLD_TEST_NETWORK") == "1":
        return
    skip = pytest.mark.skip(reason="reaches the real package index: set PINFOLD_TEST_NETWORK=1")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


#: Marks a test that needs `unshare -n` (root here and in CI).
needs_unshare = pytest.mark.skipif(not CAN_UNSHARE, reason="unshare -n is not permitted here")


def write(path: Path, text: str) -> Path:
    """Write ``text`` (creating folders) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def installed(env: Path) -> dict[str, str]:
    """name -> version of the distributions in an environment, read from its dist-info folders."""
    site = next(env.glob("lib/python*/site-packages"))
    out = {}
    for d in site.glob("*.dist-info"):
        name, version = d.name[: -len(".dist-info")].rsplit("-", 1)
        out[name.lower().replace("_", "-")] = version
    return out


def installer_calls(runner: Runner) -> list[tuple[str, ...]]:
    """The pip and uv processes a build started (pinfold runs its pip as ``python .../__pip-runner__.py``)."""
    return [argv for argv in runner.history
            if "pip" in argv or any(Path(a).name in ("uv", "__pip-runner__.py") for a in argv[:2])]


def cli(*args: str) -> tuple[int, str, str]:
    """Run the ``pinfold`` command in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()
