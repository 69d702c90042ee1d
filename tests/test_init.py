"""`pinfold init`: the files a new project starts from, and the shortest path to a build."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pinfold import load_spec
from pinfold.cli import main
from pinfold.init import InitOptions, init, plan_init
from tests.artifacts import make_wheel
from tests.conftest import cli, installed, write
from tests.test_lock import simple_index


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_init_writes_a_spec_that_validates_for_lock_before_any_lock(tmp_path: Path) -> None:
    code, out, err = cli("init", "proj", "--needs", "six", "attrs>=20", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] and result["needs"] == ["six", "attrs>=20"]
    proj = tmp_path / "proj"
    assert sorted(files_of(proj)) == ["env.yaml", "requirements/runtime.in"]
    assert (proj / "wheelhouse").is_dir() and not any((proj / "wheelhouse").iterdir())
    assert "wrote    proj/env.yaml" in err and "next: pinfold lock --upstream proj/env.yaml" in err
    spec = load_spec(proj / "env.yaml", purpose="lock")
    assert spec.index.find_links == ((proj / "wheelhouse").resolve(),)
    assert spec.needs is not None and spec.needs.file == (proj / "requirements" / "runtime.in").resolve()
    assert spec.requirements.path == (proj / "requirements" / "runtime.txt").resolve()
    assert spec.build_requirements is not None
    text = (proj / "env.yaml").read_text()
    assert text.count("\n#") > 10, "the spec is commented"


def test_generated_files_are_deterministic(tmp_path: Path) -> None:
    """The same options give the same bytes, wherever the folder is and whatever the cwd."""
    assert cli("init", "a", "--needs", "six")[0] == 0
    (tmp_path / "deeper").mkdir()
    assert main(["init", str(tmp_path / "deeper" / "b"), "--needs", "six"], stdout=io.StringIO(),
                stderr=io.StringIO()) == 0
    assert files_of(tmp_path / "a") == files_of(tmp_path / "deeper" / "b")
    before = files_of(tmp_path / "a")
    assert cli("init", "a", "--needs", "six", "--force")[0] == 0
    assert files_of(tmp_path / "a") == before
    planned = plan_init(tmp_path / "a", InitOptions(needs=("six",)))
    assert {f.path.relative_to(tmp_path / "a").as_posix(): f.text.encode() for f in planned} == before


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    write(tmp_path / "env.yaml", "mine\n")
    code, out, err = cli("init", "--needs", "six", "--json")
    assert code == 2
    assert "env.yaml: exists: pass --force to overwrite it" in err
    assert json.loads(out)["problems"] == ["env.yaml: exists: pass --force to overwrite it"]
    assert files_of(tmp_path) == {"env.yaml": b"mine\n"}, "nothing else was written"
    assert not (tmp_path / "wheelhouse").exists()
    code, out, err = cli("init", "--needs", "six", "--force", "--json")
    assert code == 0, err
    assert json.loads(out)["replaced"] == [str(tmp_path / "env.yaml")]
    assert "replaced env.yaml" in err
    load_spec(tmp_path / "env.yaml", purpose="lock")


def test_bad_needs_and_index_are_bad_input(tmp_path: Path) -> None:
    code, _, err = cli("init", "--needs", "not a requirement!", "x @ file:///tmp/x.whl")
    assert code == 2
    assert "--needs 'not a requirement!': not a requirement" in err
    assert "a direct reference" in err
    code, _, err = cli("init", "--index-url", "ftp://example.invalid/simple")
    assert code == 2 and "not an http(s) or file URL" in err
    code, _, err = cli("init", "--index-url", "http://127.0.0.1:1/simple", "--wheelhouse", "w")
    assert code == 2  # argparse: the two are mutually exclusive
    assert files_of(tmp_path) == {}


def test_index_url_and_wheelhouse_options(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    code, _, err = cli("init", "u", "--needs", "six", "--index-url", f"file://{tmp_path}/idx")
    assert code == 0, err
    assert f"  url: file://{tmp_path}/idx/" in (tmp_path / "u" / "env.yaml").read_text()
    assert not (tmp_path / "u" / "wheelhouse").exists()
    assert "next: pinfold lock u/env.yaml" in err
    assert load_spec(tmp_path / "u" / "env.yaml", purpose="lock").index.url == f"file://{tmp_path}/idx/"

    code, _, err = cli("init", "w", "--needs", "six", "--wheelhouse", "common wheels")
    assert code == 0, err
    assert '  find_links: ["../common wheels"]' in (tmp_path / "w" / "env.yaml").read_text()
    spec = load_spec(tmp_path / "w" / "env.yaml", purpose="lock")
    assert spec.index.find_links == ((tmp_path / "common wheels").resolve(),)


def test_from_requirements_keeps_pins_as_constraints(tmp_path: Path) -> None:
    write(tmp_path / "base.txt", "attrs==23.1.0 --hash=sha256:aa\n")
    write(tmp_path / "requirements.txt", (
        "--index-url https://example.invalid/simple\n"
        "-r base.txt\n"
        "Twisted[tls]==24.3.0 ; python_version >= '3.8' \\\n"
        "    --hash=sha256:00\n"
        "six>=1.16\n"
        "--no-binary stevedore\n"
        "stevedore\n"))
    report = init(tmp_path / "p", InitOptions(from_file=tmp_path / "requirements.txt", needs=("six",)))
    assert report.needs == ("six", "attrs", 'Twisted[tls]; python_version >= "3.8"', "stevedore")
    assert report.constraints == ("attrs==23.1.0", 'Twisted==24.3.0; python_version >= "3.8"')
    assert any("--index-url left out" in n for n in report.notes)
    assert any("hashes left out" in n for n in report.notes)
    needs = (tmp_path / "p" / "requirements" / "runtime.in").read_text()
    assert "-c constraints.txt\n--no-binary stevedore\nsix\nattrs\n" in needs
    constraints = (tmp_path / "p" / "requirements" / "constraints.txt").read_text()
    assert constraints.endswith('attrs==23.1.0\nTwisted==24.3.0; python_version >= "3.8"\n')
    spec = load_spec(tmp_path / "p" / "env.yaml", purpose="lock")
    assert spec.needs is not None

    write(tmp_path / "editable.txt", "-e ./src/app\n")
    code, _, err = cli("init", "q", "--from", "editable.txt")
    assert code == 2 and "editable.txt:1: an editable install" in err
    code, _, err = cli("init", "q", "--from", "missing.txt")
    assert code == 2 and "cannot read missing.txt" in err
    assert not (tmp_path / "q").exists()


@pytest.mark.slow
def test_init_lock_upstream_build_is_the_shortest_path(tmp_path: Path) -> None:
    """init, then lock --upstream against a file:// index, then build: a built, probed environment."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    files = [make_wheel(artifacts, "greeter", "1.0", requires=["shouty>=1"]).path,
             make_wheel(artifacts, "shouty", "1.0").path, make_wheel(artifacts, "shouty", "1.1").path]
    upstream = simple_index(tmp_path / "upstream", files)

    code, _, err = cli("init", "--needs", "greeter")
    assert code == 0, err
    code, _, err = cli("lock", "--upstream", upstream)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "wheelhouse").iterdir()) == [
        "greeter-1.0-py3-none-any.whl", "shouty-1.1-py3-none-any.whl"]
    code, out, err = cli("build", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] and not result["up_to_date"]
    probes = {p["name"]: p["status"] for p in result["facts"]["probes"]}
    assert probes["pip-check"] == "ok" and probes["lock"] == "ok"
    assert installed(tmp_path / "env") == {"greeter": "1.0", "shouty": "1.1"}
