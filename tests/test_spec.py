"""env.yaml and lock validation: located messages, all problems at once, exit 2, no traceback."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from pinfold import SpecError, load_spec
from pinfold.cli import main
from tests.conftest import write

HASH = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the project folder, as a user would: messages then show relative paths."""
    monkeypatch.chdir(tmp_path)


def project(tmp_path: Path, env_yaml: str, *, runtime: str | None = None) -> Path:
    (tmp_path / "wheelhouse").mkdir()
    write(tmp_path / "runtime.txt", runtime if runtime is not None else f"six==1.16.0 --hash={HASH}\n")
    return write(tmp_path / "env.yaml", env_yaml)


def problems_of(spec_file: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    return [str(p) for p in info.value.problems]


GOOD = """\
version: 1
path: env
index:
  find_links: [wheelhouse]
requirements: runtime.txt
"""


def test_good_spec_parses(tmp_path: Path) -> None:
    spec = load_spec(project(tmp_path, GOOD))
    assert spec.path == tmp_path / "env"
    assert spec.index.find_links == ((tmp_path / "wheelhouse").resolve(),)
    (pin,) = spec.requirements.pins
    assert str(pin) == "six==1.16.0" and pin.hashes == {HASH}
    assert spec.build_requirements is None


def test_unknown_key_has_location_and_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace("  find_links:", "  find_link:")
    problems = problems_of(project(tmp_path, text))
    assert any(
        p.startswith("env.yaml:4:3: index.find_link: unknown key") and "did you mean `find_links`?" in p
        for p in problems
    ), problems


def test_wrong_type_has_location(tmp_path: Path) -> None:
    problems = problems_of(project(tmp_path, GOOD.replace("path: env", "path: [env]")))
    assert "env.yaml:2:7: path: expected a string, got a list" in problems


def test_unpinned_and_unhashed_lock_lines(tmp_path: Path) -> None:
    runtime = f"six>=1.0 --hash={HASH}\nattrs==23.1.0\n--index-url https://example.invalid/simple\n"
    problems = problems_of(project(tmp_path, GOOD, runtime=runtime))
    assert any(p.startswith("runtime.txt:1:1:") and "is not pinned" in p for p in problems), problems
    assert any(p.startswith("runtime.txt:2:1:") and "has no --hash" in p for p in problems), problems
    assert any(p.startswith("runtime.txt:3:1:") and "'--index-url' is not allowed" in p
               for p in problems), problems


def test_missing_file_and_folder(tmp_path: Path) -> None:
    text = GOOD.replace("runtime.txt", "nope.txt").replace("[wheelhouse]", "[nowhere]")
    problems = problems_of(project(tmp_path, text))
    assert any(p.startswith("env.yaml:4:16: index.find_links[0]: 'nowhere'") and "does not exist" in p
               for p in problems), problems
    assert any(p.startswith("env.yaml:5:15: requirements: 'nope.txt'") for p in problems), problems


def test_no_index_is_an_error(tmp_path: Path) -> None:
    problems = problems_of(project(tmp_path, GOOD.replace("  find_links: [wheelhouse]\n", "  {}\n")
                                   .replace("index:\n  {}", "index: {}")))
    assert any("index: no index given" in p for p in problems), problems


def test_all_problems_reported_together(tmp_path: Path) -> None:
    text = GOOD.replace("path: env", "path: 3").replace("find_links", "find_linx") + "extra: 1\n"
    problems = problems_of(project(tmp_path, text, runtime="six\n"))
    assert problems == [
        "env.yaml:6:1: extra: unknown key (known keys: version, python, path, index, requirements, "
        "build_requirements, develop, final, needs, build_needs, installer, compile, scripts, bin_dir, "
        "targets)",
        "env.yaml:2:7: path: expected a string, got 3",
        "env.yaml:4:3: index.find_linx: unknown key (known keys: find_links, url, cert, timeout, retries); "
        "did you mean `find_links`?",
        "env.yaml:4:3: index: no index given: set find_links (wheelhouse folders) and/or url "
        "(a local simple index)",
        "runtime.txt:1:1: 'six' is not pinned: every lock entry must be an exact `name==version` "
        "with --hash lines",
    ]


def test_lock_continuations_markers_and_via(tmp_path: Path) -> None:
    runtime = (
        "# header\n"
        "pbr==7.1.3 \\\n"
        f"    --hash={HASH} \\\n"
        f"    --hash=sha256:{'cd' * 32}\n"
        "    # via\n"
        "    #   -r build.in\n"
        "    #   stevedore==3.5.2\n"
        f"tomli==2.0.1 ; python_version < \"3.11\" --hash={HASH}\n"
    )
    spec = load_spec(project(tmp_path, GOOD, runtime=runtime))
    pbr, tomli = spec.requirements.pins
    assert pbr.via == ("stevedore==3.5.2",) and len(pbr.hashes) == 2 and pbr.line == 2
    assert tomli.marker is not None and not tomli.marker.evaluate({"python_version": "3.11"})


@pytest.mark.parametrize(
    "text",
    ["path: env\nindex: {find_links: [wheelhouse]}\nrequirements: runtime.txt\nbad: [\n", "", "- a list\n"],
)
def test_cli_bad_input_exits_2_without_traceback(tmp_path: Path, text: str) -> None:
    spec_file = project(tmp_path, text)
    out, err = io.StringIO(), io.StringIO()
    code = main(["build", str(spec_file), "--json"], stdout=out, stderr=err)
    assert code == 2
    assert "Traceback" not in err.getvalue() + out.getvalue()
    assert err.getvalue().startswith("error: ")
    assert '"ok": false' in out.getvalue()
    assert not (tmp_path / "env").exists() and not (tmp_path / "env.d").exists()


def test_cli_reports_located_problem(tmp_path: Path) -> None:
    spec_file = project(tmp_path, GOOD.replace("  find_links:", "  find_link:"))
    err = io.StringIO()
    assert main(["build", str(spec_file)], stdout=io.StringIO(), stderr=err) == 2
    assert "env.yaml:4:3: index.find_link: unknown key" in err.getvalue()
    assert "did you mean `find_links`?" in err.getvalue()


def test_cli_missing_spec_file(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["build", str(tmp_path / "env.yaml")], stdout=io.StringIO(), stderr=err) == 2
    assert "no such file" in err.getvalue()


def test_help_explains_commands() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--help"]) == 0
    # argparse wraps to the terminal's width: compare the words, not the line breaks.
    text = " ".join(out.getvalue().split())
    for command, what in [
        ("build", "Build the environment (or confirm it is up to date), offline."),
        ("fetch", "Download the artifacts of both locks into the wheelhouse (online)."),
        ("lock", "Compile the runtime and build locks from env.yaml's needs, against its index only, "
                 "and print what changed."),
        ("check", "Run the probes on the existing environment, without rebuilding."),
        ("status", "Say whether the environment is up to date and, if not, what changed."),
        ("plan", "Print what a build would install, remove and re-run, without doing it."),
        ("rollback", "Switch the environment back to the one built before it, in one step."),
        ("gc", "Remove old environments, leftovers of killed builds and the spare folders an update reuses."),
    ]:
        assert f" {command} {what}" in text, (command, text)
    assert ("Only `pinfold fetch`, `pinfold lock --upstream` and `pinfold import --upstream` go online."
            in text)
    assert ("exit codes: 0 ok, 1 build or probe failure, 2 bad input (env.yaml, locks, arguments), "
            "130 interrupted (Ctrl-C), 143/129 ended by SIGTERM/SIGHUP") in text


def test_installer_and_compile_keys(tmp_path: Path) -> None:
    spec = load_spec(project(tmp_path, GOOD))
    assert spec.installer == "pip" and spec.compile is True
    (tmp_path / "env.yaml").write_text(GOOD + "installer: uv\ncompile: false\n")
    spec = load_spec(tmp_path / "env.yaml")
    assert spec.installer == "uv" and spec.compile is False
    (tmp_path / "env.yaml").write_text(GOOD + "installer: poetry\ncompile: sometimes\n")
    assert problems_of(tmp_path / "env.yaml") == [
        "env.yaml:6:12: installer: 'poetry' is not an installer (allowed: pip, uv)",
        "env.yaml:7:10: compile: expected true or false, got a string",
    ]
