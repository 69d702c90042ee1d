"""Every --json document starts with its schema and ok, bad arguments included (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli


def test_bad_arguments_with_json_still_print_the_error_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli("gc", "--keep", "x", "--json")
    assert code == 2
    document = json.loads(out)
    assert list(document)[:2] == ["schema", "ok"]
    assert document["schema"] == "pinfold/error/1" and document["ok"] is False
    assert document["exit_code"] == 2
    assert "--keep" in capsys.readouterr().err  # argparse's own message names the option


def test_a_result_document_starts_with_schema_and_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("init", "--needs", "six", "--json")
    assert code == 0
    assert list(json.loads(out))[:2] == ["schema", "ok"]


def test_export_to_a_folder_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wheelhouse").mkdir()
    (tmp_path / "runtime.txt").write_text("six==1.16.0 --hash=sha256:" + "ab" * 32 + "\n")
    (tmp_path / "env.yaml").write_text("path: env\nindex: {find_links: [wheelhouse]}\n"
                                       "requirements: runtime.txt\n")
    (tmp_path / "out.txt").mkdir()
    code, _, err = cli("export", "--format", "requirements", "-o", "out.txt")
    assert code == 2 and "-o out.txt: cannot write it:" in err and "internal error" not in err, err
