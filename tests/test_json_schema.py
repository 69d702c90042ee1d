"""Every --json output against its published schema (docs/schema/), and JUnit XML against
docs/schema/junit.xsd (the Ant/Jenkins JUnit layout CI systems read)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import xmlschema

from pinfold.cli import _COMMANDS, JSON_SCHEMA_VERSION, main
from tests.artifacts import make_wheel
from tests.conftest import write
from tests.test_lock import simple_index

SCHEMAS = Path(__file__).parent.parent / "docs" / "schema"


def schema_of(form: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / f"{form}.json").read_text())
    return data


def run(*args: str, form: str | None = None, code: int = 0) -> dict[str, Any]:
    """Run ``pinfold ARGS --json``; check the exit code and validate the output against the
    schema of ``form`` (the command's own, or ``error``)."""
    out, err = io.StringIO(), io.StringIO()
    got = main([*args, "--json"], stdout=out, stderr=err)
    assert got == code, err.getvalue()
    result: dict[str, Any] = json.loads(out.getvalue())
    form = form or args[0]
    assert result["schema"] == f"pinfold/{form}/{JSON_SCHEMA_VERSION}"
    jsonschema.validate(result, schema_of(form), cls=jsonschema.Draft202012Validator)
    return result


def validate_junit(path: Path) -> None:
    xmlschema.XMLSchema(SCHEMAS / "junit.xsd").validate(str(path))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_every_command_has_a_valid_schema() -> None:
    forms = {*_COMMANDS, "error"}
    assert {p.stem for p in SCHEMAS.glob("*.json")} == forms
    for form in forms:
        schema = schema_of(form)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["schema"] == {
            "const": f"pinfold/{form}/{JSON_SCHEMA_VERSION}",
            "description": "this document's schema and version: pinfold/<form>/<version>"}
    xmlschema.XMLSchema(SCHEMAS / "junit.xsd")


def test_schemas_reject_what_they_do_not_describe() -> None:
    """additionalProperties is closed: a field added to an output must be documented."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema": "pinfold/gc/1", "ok": True, "removed": [], "spares": [],
                             "warnings": [], "new": 1},
                            schema_of("gc"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema": "pinfold/gc/1", "ok": True, "removed": []}, schema_of("gc"))


def test_init_config_and_error_forms(tmp_path: Path) -> None:
    run("init", "--needs", "six")
    run("init", "--needs", "six", form="error", code=2)
    run("config", "env.yaml")
    assert "index.find_links[0]" in run("config", "--origins")["origins"]
    run("build", "missing.yaml", form="error", code=2)
    write(tmp_path / "bad.yaml", "path: env\nindex: {find_links: [nowhere]}\n")
    result = run("lock", "bad.yaml", form="error", code=2)
    assert result["problems"]


def test_import_forms(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(Path(__file__).parent / "buildout" / "package", tmp_path / "tree")
    result = run("import", "tree/buildout.cfg", "--dry-run")
    assert result["written"] == [] and "env.yaml" in result["files"]
    assert run("import", "tree/buildout.cfg")["written"]


@pytest.mark.slow
def test_every_command_output_validates(tmp_path: Path) -> None:
    """A real project: init, lock, fetch, status, plan, build, check, rollback, gc, export, each
    with --json; the JUnit reports of a passing and a failing check."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    files = [make_wheel(artifacts, "greeter", "1.0", requires=["shouty"]).path,
             make_wheel(artifacts, "shouty", "1.0").path]
    upstream = simple_index(tmp_path / "upstream", files)

    run("init", "--needs", "greeter")
    assert run("lock", "--upstream", upstream)["written"]
    assert run("lock", "--check")["current"] is True
    assert run("lock")["written"] == []
    assert run("fetch", "--index-url", upstream)["downloaded"] == []
    assert run("status", code=1)["up_to_date"] is False
    assert run("plan")["mode"] == "full"
    first = run("build", "--junit-xml", "build.xml")
    validate_junit(tmp_path / "build.xml")
    assert run("build")["up_to_date"] is True  # the no-op fast path's form
    assert run("status")["up_to_date"] is True
    run("check", "--junit-xml", "check.xml")
    validate_junit(tmp_path / "check.xml")
    second = run("build", "--fresh")
    assert run("rollback") == {"schema": "pinfold/rollback/1", "ok": True, "from": second["env_dir"],
                               "to": first["env_dir"]}
    run("gc", "--keep", "1")
    exported = run("export")  # to stdout: the text is in the document
    assert exported["format"] == "pylock" and "\nlock-version = \"1.0\"\n" in exported["text"]
    assert run("export", "-o", "pylock.toml")["written"] is True

    # A failing probe: the error form with the probes, and a JUnit report with a <failure>.
    spec = tmp_path / "env.yaml"
    spec.write_text(spec.read_text() + "final:\n  probes:\n    commands:\n"
                    '      - [python, -c, "raise SystemExit(3)"]\n')
    failed = run("check", "--junit-xml", "failed.xml", form="error", code=1)
    assert any(p["status"] == "fail" for p in failed["probes"])
    validate_junit(tmp_path / "failed.xml")
    assert "<failure" in (tmp_path / "failed.xml").read_text()
    # A build that fails before the probes (a hash mismatch): an <error> testcase.
    (tmp_path / "requirements" / "runtime.txt").write_text("greeter==1.0 --hash=sha256:" + "0" * 64 + "\n")
    run("build", "--fresh", "--junit-xml", "error.xml", form="error", code=1)  # pre-flight
    validate_junit(tmp_path / "error.xml")
