"""`needs:` read from a pyproject.toml: `[project] dependencies`, extras, PEP 735 groups.

Fast: no pip, no virtualenv; except the one end-to-end lock and build, marked slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pinfold import SpecError, load_spec
from pinfold.locking.needs import record_items, render_record, stale_problems
from pinfold.locks import parse_lock
from pinfold.needs import read_needs
from tests.artifacts import copy_real, make_tree, make_wheel
from tests.conftest import cli, installed, write

HASH = "sha256:" + "ab" * 32

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "My_App"
version = "1.0"
dependencies = [
    "Twisted[tls] >= 24.3",
    "attrs",
]

[project.optional-dependencies]
tls = ["pyOpenSSL>=24"]
all = ["my-app[tls,docs]", "idna; python_version >= '3.10'"]
docs = ["sphinx"]

[dependency-groups]
test = ["pytest>=8", {include-group = "coverage"}]
coverage = ["coverage[toml]"]
dev = [{include-group = "test"}, "My-App[tls]", "ruff"]
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages name files relative to the working directory, as a user sees them."""
    monkeypatch.chdir(tmp_path)


def project(tmp_path: Path, needs: str, *, pyproject: str = PYPROJECT, runtime: str = "",
            extra: str = "") -> Path:
    (tmp_path / "wheelhouse").mkdir(exist_ok=True)
    write(tmp_path / "app" / "pyproject.toml", pyproject)
    write(tmp_path / "runtime.txt", runtime)
    return write(tmp_path / "env.yaml", "version: 1\npath: env\nindex:\n  find_links: [wheelhouse]\n"
                                        f"requirements: runtime.txt\n{extra}needs: {needs}\n")


def problems(spec_file: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(spec_file, purpose="lock")
    return [str(p) for p in caught.value.problems]


def locked(items: list[str]) -> str:
    return "\n".join(["#", *render_record("needs", items), "#", f"six==1.16.0 --hash={HASH}", ""])


# --- reading ----------------------------------------------------------------------------


def test_a_path_ending_in_pyproject_toml_reads_its_project_dependencies(tmp_path: Path) -> None:
    spec = load_spec(project(tmp_path, "app/pyproject.toml"), purpose="lock")
    assert spec.needs is not None and spec.needs.pyproject == (tmp_path / "app" / "pyproject.toml").resolve()
    assert record_items(spec, "needs") == ["attrs", "twisted[tls]>=24.3"]
    # The file is an input like a needs file: the no-op fast path watches it.
    needs, _ = read_needs(spec.needs, spec.root)
    assert needs.label == "app/pyproject.toml" and needs.files == (spec.needs.pyproject,)


def test_extras_and_groups_with_include_group_and_the_project_itself(tmp_path: Path) -> None:
    spec = load_spec(project(tmp_path, "{pyproject: app/pyproject.toml, extras: [ALL], groups: [Dev]}"),
                     purpose="lock")
    # `all` names the project's own extras (read here, with its marker on none of them);
    # `dev` includes `test`, which includes `coverage`; `My-App[tls]` is the tls extra again.
    assert record_items(spec, "needs") == [
        "attrs", "coverage[toml]", 'idna; python_version >= "3.10"', "pyopenssl>=24", "pytest>=8",
        "ruff", "sphinx", "twisted[tls]>=24.3"]


def test_a_marker_on_a_self_reference_applies_to_what_it_stands_for(tmp_path: Path) -> None:
    text = PYPROJECT.replace('all = ["my-app[tls,docs]",', 'all = ["my-app[docs]; os_name == \'posix\'",')
    spec = load_spec(project(tmp_path, "{pyproject: app, extras: [all]}", pyproject=text), purpose="lock")
    items = record_items(spec, "needs")
    assert items is not None and 'sphinx; os_name == "posix"' in items  # a folder means its pyproject.toml


def test_a_groups_only_pyproject_needs_no_project_table(tmp_path: Path) -> None:
    text = '[dependency-groups]\ntools = ["ruff", "mypy>=1"]\n'
    spec = load_spec(project(tmp_path, "{pyproject: app/pyproject.toml, groups: [tools]}", pyproject=text),
                     purpose="lock")
    assert record_items(spec, "needs") == ["mypy>=1", "ruff"]
    assert problems(project(tmp_path, "app/pyproject.toml", pyproject=text)) == [
        "app/pyproject.toml: has no [project] table, so no dependencies to read (asked at env.yaml:6:8); "
        "name its dependency groups under `groups:`"]


def test_a_develop_trees_pyproject_is_not_listed_twice(tmp_path: Path) -> None:
    extra = "develop: [app]\n"
    spec = load_spec(project(tmp_path, "{pyproject: app/pyproject.toml, extras: [tls]}", extra=extra),
                     purpose="lock")
    assert spec.needs is not None and spec.needs.develop_tree
    needs, _ = read_needs(spec.needs, spec.root)
    # Its own dependencies reach pip-compile through the tree; the extra asked for does not.
    assert needs.requirements == ("pyopenssl>=24",)
    assert needs.through_develop == ("twisted[tls]>=24.3", "attrs")
    # ... but the record covers them, so that editing them makes the lock stale.
    assert record_items(spec, "needs") == ["-e app", "attrs", "pyopenssl>=24", "twisted[tls]>=24.3"]
    # Dynamic dependencies are the tree's backend's business there: not an error.
    text = PYPROJECT.replace('version = "1.0"\n', 'version = "1.0"\ndynamic = ["dependencies"]\n')
    text = text.replace('dependencies = [\n    "Twisted[tls] >= 24.3",\n    "attrs",\n]\n', "")
    spec = load_spec(project(tmp_path, "app/pyproject.toml", pyproject=text, extra=extra), purpose="lock")
    assert record_items(spec, "needs") == ["-e app"]


# --- errors, located in pyproject.toml --------------------------------------------------


def test_a_missing_extra_or_group_is_located_and_names_what_there_is(tmp_path: Path) -> None:
    spec_file = project(tmp_path, "{pyproject: app/pyproject.toml, extras: [tsl], groups: [tests]}")
    assert problems(spec_file) == [
        "app/pyproject.toml:13: [project.optional-dependencies] has no extra 'tsl' (asked at "
        "env.yaml:6:49; it has: all, docs, tls)",
        "app/pyproject.toml:18: [dependency-groups] has no group 'tests' (asked at env.yaml:6:64; "
        "it has: coverage, dev, test)",
    ]


def test_an_include_group_cycle_and_a_missing_include_are_located(tmp_path: Path) -> None:
    text = ('[dependency-groups]\n'
            'a = ["six", {include-group = "b"}]\n'
            'b = [\n    "idna",\n    {include-group = "a"},\n    {include-group = "nope"},\n]\n')
    assert problems(project(tmp_path, "{pyproject: app/pyproject.toml, groups: [a]}", pyproject=text)) == [
        "app/pyproject.toml:5: [dependency-groups] include-group cycle: a -> b -> a",
        "app/pyproject.toml:6: [dependency-groups] b: include-group 'nope' is not a group (it has: a, b)",
    ]


def test_dynamic_dependencies_cannot_be_read_statically(tmp_path: Path) -> None:
    text = '[project]\nname = "x"\nversion = "1"\ndynamic = ["dependencies", "optional-dependencies"]\n'
    assert problems(project(tmp_path, "{pyproject: app/pyproject.toml, extras: [tls]}", pyproject=text)) == [
        "app/pyproject.toml:4: [project] dynamic: `dependencies` is dynamic: its build backend computes "
        "it, so it cannot be read statically; list the needs in env.yaml (or a requirements file), or "
        "put the tree under `develop`",
        "app/pyproject.toml:4: [project] dynamic: `optional-dependencies` is dynamic: its build backend "
        "computes it, so the extra 'tls' cannot be read statically (asked at env.yaml:6:49); list its "
        "needs in env.yaml (or a requirements file)",
    ]


def test_invalid_requirements_are_located_on_their_line(tmp_path: Path) -> None:
    text = ('[project]\nname = "x"\nversion = "1"\ndependencies = [\n  "six",\n  "not a req ==",\n'
            '  "pkg @ https://example.invalid/pkg.whl",\n]\n'
            '[dependency-groups]\nt = [3]\n')
    got = problems(project(tmp_path, "{pyproject: app/pyproject.toml, groups: [t]}", pyproject=text))
    assert len(got) == 3
    assert got[0].startswith(
        "app/pyproject.toml:6: project.dependencies: 'not a req ==' is not a requirement:")
    assert got[1] == ("app/pyproject.toml:7: project.dependencies: 'pkg @ https://example.invalid/pkg.whl' "
                      "is a direct reference: a lock pins name==version from the index; put local trees "
                      "under `develop`")
    assert got[2] == ("app/pyproject.toml:10: [dependency-groups] t: 3 is neither a requirement string "
                      'nor {include-group = "NAME"}')


def test_invalid_toml_is_located_and_the_mapping_is_checked(tmp_path: Path) -> None:
    assert problems(project(tmp_path, "app/pyproject.toml", pyproject='[project]\nname = "x\n')) == [
        "app/pyproject.toml:2:10: is not valid TOML: Illegal character '\\n'"]
    got = problems(project(tmp_path, "{extras: tls, pyproject: app/missing/pyproject.toml, group: [x]}"))
    assert got[0].startswith("env.yaml:6:61: needs.group: unknown key")
    assert got[1:] == [
        "env.yaml:6:33: needs.pyproject: 'app/missing/pyproject.toml' (app/missing/pyproject.toml) "
        "does not exist",
        "env.yaml:6:17: needs.extras: expected a list of strings, got a string",
    ]


# --- staleness --------------------------------------------------------------------------


def test_a_change_in_the_pyprojects_dependencies_makes_the_lock_stale(tmp_path: Path) -> None:
    needs = "{pyproject: app/pyproject.toml, groups: [coverage]}"
    runtime = locked(["attrs", "coverage[toml]", "twisted[tls]>=24.3"])
    spec_file = project(tmp_path, needs, runtime=runtime)
    assert stale_problems(load_spec(spec_file, purpose="lock")) == []
    pyproject = tmp_path / "app" / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace('"attrs",', '"attrs>=23",').replace('"coverage[toml]"', '"six"'))
    assert [str(p) for p in stale_problems(load_spec(spec_file, purpose="lock"))] == [
        "runtime.txt: stale: env.yaml's `needs` changed since `pinfold lock` wrote it "
        "(added attrs>=23, six; removed attrs, coverage[toml])"]


def test_a_change_in_a_develop_trees_pyproject_makes_the_lock_stale(tmp_path: Path) -> None:
    runtime = locked(["-e app", "attrs", "twisted[tls]>=24.3"])
    spec_file = project(tmp_path, "app/pyproject.toml", runtime=runtime, extra="develop: [app]\n")
    assert stale_problems(load_spec(spec_file, purpose="lock")) == []
    (tmp_path / "app" / "pyproject.toml").write_text(PYPROJECT.replace('    "attrs",\n', ""))
    assert [str(p) for p in stale_problems(load_spec(spec_file, purpose="lock"))] == [
        "runtime.txt: stale: env.yaml's `needs` changed since `pinfold lock` wrote it (removed attrs)"]


# --- end to end -------------------------------------------------------------------------


@pytest.mark.slow
def test_lock_check_and_build_from_a_develop_trees_pyproject(tmp_path: Path) -> None:
    wh = tmp_path / "wheelhouse"
    wh.mkdir()
    copy_real(wh, "setuptools")
    make_wheel(wh, "plain-wheel", "1.0", requires=["dep-a>=1"])
    make_wheel(wh, "dep-a", "1.0")
    make_wheel(wh, "other-lib", "1.0")
    make_wheel(wh, "extra-lib", "1.0")
    tree = make_tree(tmp_path / "src", "my-app", "0.1", requires=["plain-wheel"])
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[project.optional-dependencies]\ntls = ["extra-lib"]\n'
                         '\n[dependency-groups]\ntest = ["other-lib", "my-app[tls]"]\n')
    spec = write(tmp_path / "env.yaml", (
        "path: env\nindex:\n  find_links: [wheelhouse]\n"
        "requirements: requirements/runtime.txt\nbuild_requirements: requirements/build.txt\n"
        "develop: [src/my_app-0.1]\nneeds: {pyproject: src/my_app-0.1/pyproject.toml, groups: [test]}\n"))

    code, _, err = cli("lock", str(spec))
    assert code == 0, err
    runtime = tmp_path / "requirements" / "runtime.txt"
    pins = {str(n): p for n, p in parse_lock(runtime)[0].by_name().items()}
    assert sorted(pins) == ["dep-a", "extra-lib", "other-lib", "plain-wheel"]
    # The tree's own dependency comes through the tree alone, the group's from the pyproject.
    assert pins["plain-wheel"].via == ("src/my_app-0.1 (develop)",)
    assert pins["other-lib"].via == ("src/my_app-0.1/pyproject.toml",)
    record = "#     -e src/my_app-0.1\n#     extra-lib\n#     other-lib\n#     plain-wheel\n"
    assert record in runtime.read_text()
    assert cli("lock", "--check", str(spec))[0] == 0

    pyproject.write_text(pyproject.read_text().replace('dependencies = ["plain-wheel"]',
                                                       'dependencies = ["plain-wheel", "dep-a>=1"]'))
    code, _, err = cli("lock", "--check", str(spec))
    assert code == 1 and "(added dep-a>=1)" in err, err
    assert cli("lock", str(spec))[0] == 0
    assert cli("lock", "--check", str(spec))[0] == 0

    code, _, err = cli("build", str(spec))
    assert code == 0, err
    assert installed(tmp_path / "env") == {"my-app": "0.1", "plain-wheel": "1.0", "dep-a": "1.0",
                                           "extra-lib": "1.0", "other-lib": "1.0"}
