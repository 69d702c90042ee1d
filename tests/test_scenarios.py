"""One folder per promise: tests/scenarios/<promise>/ holds a project and its expected outcome.

Each scenario is copied to a temporary folder and run in-process with
``pinfold.cli.main`` from there, as a user would run ``pinfold`` in the project. The
layout is documented in tests/scenarios/README.md. The scenarios so far are bad input:
they start no pip and no virtualenv, so they are not ``slow``.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinfold.cli import main

SCENARIOS = Path(__file__).parent / "scenarios"
#: What an expected.yaml may say; anything else is a typo that would silently check nothing.
KEYS = {"promise", "setup", "command", "exit_code", "stderr", "stdout", "exists", "absent"}


def scenarios() -> list[Path]:
    return sorted(p for p in SCENARIOS.iterdir() if (p / "expected.yaml").is_file())


def expected_of(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and set(data) <= KEYS, f"{folder.name}/expected.yaml: keys {sorted(data)}"
    assert isinstance(data.get("promise"), str) and isinstance(data.get("exit_code"), int), folder.name
    return data


def test_every_scenario_folder_has_its_expectations() -> None:
    folders = sorted(p for p in SCENARIOS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == scenarios()
    assert len(folders) >= 9


@pytest.mark.parametrize("folder", scenarios(), ids=lambda p: p.name)
def test_scenario(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = expected_of(folder)
    project = tmp_path / folder.name
    shutil.copytree(folder, project, ignore=shutil.ignore_patterns("expected.yaml"))
    for name in expected.get("setup", {}).get("dirs", []):
        (project / name).mkdir(parents=True)
    monkeypatch.chdir(project)
    command = [*expected.get("command", ["build"]), "--json", "env.yaml"]
    out, err = io.StringIO(), io.StringIO()

    code = main(command, stdout=out, stderr=err)

    stdout, stderr = out.getvalue(), err.getvalue()
    assert code == expected["exit_code"], stderr
    assert "Traceback" not in stdout + stderr
    result = json.loads(stdout)
    assert result["ok"] is (code == 0), result
    if code:
        assert stderr.startswith("error: ") and result["exit_code"] == code, stderr
    for text in expected.get("stderr", []):
        assert text in stderr, f"{text!r} not in:\n{stderr}"
    for text in expected.get("stdout", []):
        assert text in stdout, f"{text!r} not in:\n{stdout}"
    for name in expected.get("exists", []):
        assert (project / name).exists(), name
    for name in expected.get("absent", []):
        assert not (project / name).exists() and not (project / name).is_symlink(), name
