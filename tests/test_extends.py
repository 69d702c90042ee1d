"""Layered env.yaml files (`extends`): merge rules, paths and problems per file, `pinfold config`,
and the chain as a build input (the last two tests build real environments: slow)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from pinfold import SpecError, build, load_spec
from pinfold.runner import Runner
from pinfold.spec import load_layers
from pinfold.uptodate import digest, layers_digest, up_to_date, watch_of
from tests.conftest import cli, write
from tests.test_build import Wheelhouse, make_project
from tests.test_build import wheelhouse as wheelhouse  # the fixture, for the slow test

HASH = "sha256:" + "ab" * 32

#: A complete base in a folder of its own: every path in it is relative to config/.
BASE = """\
version: 1
path: ../env
index:
  find_links: [../wheelhouse]
requirements: runtime.txt
develop: [../src/a, ../src/b]
final:
  plugin_caches:
    packages: [a.plugins]
  probes:
    reactor: poll
    imports: [six, a, b]
    allow_reactor_import: [x.plugins.one]
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the project folder: messages show paths relative to it."""
    monkeypatch.chdir(tmp_path)


def project(root: Path, overlay: str, *, base: str = BASE) -> Path:
    """config/base.yaml (+ its lock) and env.yaml = ``overlay`` at the root."""
    (root / "wheelhouse").mkdir(exist_ok=True)
    for tree in ("a", "b"):
        write(root / "src" / tree / "pyproject.toml", "[project]\nname = 'x'\n")
    write(root / "config" / "runtime.txt", f"six==1.16.0 --hash={HASH}\n")
    write(root / "config" / "base.yaml", base)
    return write(root / "env.yaml", overlay)


def problems_of(spec_file: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    return [str(p) for p in info.value.problems]


# -- merging -----------------------------------------------------------------------------


def test_mappings_merge_scalars_and_lists_are_replaced(tmp_path: Path) -> None:
    spec = load_spec(project(tmp_path, (
        "extends: config/base.yaml\n"
        "compile: false\n"                      # a new key
        "final:\n"
        "  probes:\n"
        "    reactor: select\n"                 # a scalar replaced; its siblings inherited
        "    imports: [six]\n"                  # a list replaced, not merged
    )))
    probes = spec.final.probes
    assert probes.reactor == "select" and probes.imports == ("six",)
    assert probes.allow_reactor_import == ("x.plugins.one",)
    assert spec.final.plugin_caches.packages == ("a.plugins",)
    assert spec.compile is False
    assert spec.layers == (tmp_path / "config" / "base.yaml", tmp_path / "env.yaml")


def test_plus_appends_and_minus_removes(tmp_path: Path) -> None:
    spec = load_spec(project(tmp_path, (
        "extends: config/base.yaml\n"
        "develop-: [../src/a]\n"                # as written in the base, not as resolved
        "final:\n"
        "  probes:\n"
        "    imports+: [json, os]\n"
        "    imports-: [a]\n"                   # `+` and `-` together apply in the order written
        "    allow_reactor_import+: [y.plugins.two]\n"
        "    scripts+: [[python, --version]]\n"  # nothing inherited: `KEY+` sets it (Buildout's +=)
    )))
    assert spec.develop == ((tmp_path / "src" / "b").resolve(),)
    probes = spec.final.probes
    assert probes.imports == ("six", "b", "json", "os")
    assert probes.allow_reactor_import == ("x.plugins.one", "y.plugins.two")
    assert [s.argv for s in probes.scripts] == [("python", "--version")]


def test_several_bases_apply_in_order_and_a_shared_base_once(tmp_path: Path) -> None:
    project(tmp_path, "")
    write(tmp_path / "config" / "one.yaml", "extends: base.yaml\nfinal: {probes: {imports+: [one]}}\n")
    write(tmp_path / "config" / "two.yaml", "extends: base.yaml\nfinal: {probes: {imports+: [two]}}\n")
    spec_file = write(tmp_path / "env.yaml", "extends: [config/one.yaml, config/two.yaml]\n"
                                             "final: {probes: {reactor: select}}\n")
    spec = load_spec(spec_file)
    assert spec.final.probes.imports == ("six", "a", "b", "one", "two")
    assert spec.final.probes.reactor == "select"
    assert [p.name for p in spec.layers] == ["base.yaml", "one.yaml", "two.yaml", "env.yaml"]


def test_each_path_is_relative_to_the_file_that_wrote_it(tmp_path: Path) -> None:
    (tmp_path / "config" / "bin").mkdir(parents=True)
    (tmp_path / "config" / "bin" / "py").symlink_to(sys.executable)
    base = BASE + "python: bin/py\nneeds: runtime.in\n"
    write(tmp_path / "config" / "runtime.in", "six\n")
    write(tmp_path / "src" / "c" / "setup.py", "")
    spec = load_spec(project(tmp_path, "extends: config/base.yaml\ndevelop+: [src/c]\n", base=base))
    assert spec.path == tmp_path / "env"
    assert spec.index.find_links == ((tmp_path / "wheelhouse").resolve(),)
    assert spec.requirements.path == (tmp_path / "config" / "runtime.txt").resolve()
    assert spec.python == str(tmp_path / "config" / "bin" / "py")
    assert spec.needs is not None and spec.needs.file == (tmp_path / "config" / "runtime.in").resolve()
    assert spec.develop[-1] == (tmp_path / "src" / "c").resolve()
    # The same base means the same thing wherever the extending file is.
    nested = write(tmp_path / "deploy" / "prod" / "env.yaml", "extends: ../../config/base.yaml\n")
    assert load_spec(nested).path == tmp_path / "env"


# -- problems ----------------------------------------------------------------------------


def test_problems_are_located_in_the_file_that_wrote_the_value(tmp_path: Path) -> None:
    base = BASE.replace("    reactor: poll\n", "    reactr: poll\n").replace("path: ../env", "path: [env]")
    problems = problems_of(project(tmp_path, "extends: config/base.yaml\ncompile: maybe\nindx: {}\n",
                                   base=base))
    assert "config/base.yaml:2:7: path: expected a string, got a list" in problems, problems
    assert any(p.startswith("config/base.yaml:11:5: final.probes.reactr: unknown key")
               and "did you mean `reactor`?" in p for p in problems), problems
    assert "env.yaml:2:10: compile: expected true or false, got a string" in problems, problems
    assert any(p.startswith("env.yaml:3:1: indx: unknown key") for p in problems), problems


def test_a_missing_path_in_a_base_is_named_in_the_base(tmp_path: Path) -> None:
    problems = problems_of(project(tmp_path, "extends: config/base.yaml\n",
                                   base=BASE.replace("[../wheelhouse]", "[wheelhouse]")))
    assert any(p.startswith("config/base.yaml:4:16: index.find_links[0]: 'wheelhouse' (config/wheelhouse)")
               and "does not exist" in p for p in problems), problems


def test_a_cycle_is_named_with_the_entry_that_closes_it(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "extends: b.yaml\npath: env\n")
    write(tmp_path / "b.yaml", "version: 1\nextends: [a.yaml]\n")
    problems = problems_of(tmp_path / "a.yaml")
    assert "b.yaml:2:11: extends[0]: 'a.yaml' extends itself: a.yaml -> b.yaml -> a.yaml" in problems
    assert problems_of(write(tmp_path / "self.yaml", "extends: self.yaml\n"))[0] == (
        "self.yaml:1:10: extends: 'self.yaml' extends itself: self.yaml -> self.yaml")


def test_a_missing_or_broken_base_is_named_at_its_extends_entry(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "index: [unclosed\n")
    write(tmp_path / "list.yaml", "- a\n")
    problems = problems_of(write(tmp_path / "env.yaml",
                                 "extends:\n  - nope.yaml\n  - bad.yaml\n  - list.yaml\n  - 3\n"))
    assert "env.yaml:2:5: extends[0]: 'nope.yaml' (nope.yaml) does not exist" in problems, problems
    assert any(p.startswith("bad.yaml:2:1: not valid YAML") for p in problems), problems
    assert "list.yaml:1:1: expected a mapping of env.yaml keys, got a list" in problems, problems
    assert "env.yaml:5:5: extends[3]: expected a string, got 3" in problems, problems


def test_list_edits_on_what_is_not_a_list_are_errors(tmp_path: Path) -> None:
    problems = problems_of(project(tmp_path, (
        "extends: config/base.yaml\n"
        "requirements+: [more.txt]\n"
        "final:\n"
        "  probes:\n"
        "    imports+: json\n"
        "    allow_reactor_import-: [not.there]\n"
        "    imports: [x]\n"
        "build_requirements-: [b.txt]\n"
    )))
    assert ("env.yaml:2:16: requirements+: cannot append items: the inherited `requirements` "
            "(config/base.yaml:5:15) is a string, not a list") in problems, problems
    assert ("env.yaml:5:15: final.probes.imports+: expected a list of items to append, got a string"
            in problems), problems
    assert ("env.yaml:6:29: final.probes.allow_reactor_import-[0]: not in the inherited "
            "`allow_reactor_import` (config/base.yaml:13:27)") in problems, problems
    assert ("env.yaml:7:5: final.probes.imports: `imports` is set in the same file: write one of them"
            in problems), problems
    assert ("env.yaml:8:22: build_requirements-: nothing to remove from: no `build_requirements` "
            "is inherited") in problems, problems


def test_duplicate_keys_are_still_duplicates(tmp_path: Path) -> None:
    problems = problems_of(project(tmp_path, "extends: config/base.yaml\ncompile: true\ncompile: false\n"))
    assert problems == ["env.yaml:3:1: compile: duplicate key"]


# -- pinfold config ------------------------------------------------------------------------


def test_config_prints_the_merged_yaml_with_origins(tmp_path: Path) -> None:
    project(tmp_path, "extends: config/base.yaml\nfinal:\n  probes:\n    imports+: [json]\n"
                      "    commands: [[python, -c, 'import a, b; print(1)']]\n")
    code, out, err = cli("config")
    assert code == 0, err
    merged = yaml.safe_load(out)
    assert merged == load_layers("env.yaml").located().plain()
    assert merged["final"]["probes"]["imports"] == ["six", "a", "b", "json"]
    assert merged["path"] == "../env" and "extends" not in merged  # values as written

    code, out, _ = cli("config", "--origins")
    assert yaml.safe_load(out) == merged  # the origins are comments
    lines = out.splitlines()
    assert lines[0] == "# merged from config/base.yaml, env.yaml (in the order applied)"
    assert "path: ../env  # config/base.yaml:2" in lines
    assert "      - six  # config/base.yaml:12" in lines
    assert "      - json  # env.yaml:4" in lines
    assert '      - [python, -c, "import a, b; print(1)"]  # env.yaml:5' in lines

    code, out, _ = cli("config", "--json", "--origins")
    result = json.loads(out)
    assert result["ok"] and result["config"] == merged
    assert result["layers"] == [str(tmp_path / "config" / "base.yaml"), str(tmp_path / "env.yaml")]
    assert result["origins"]["final.probes.imports[3]"] == "env.yaml:4"
    assert result["origins"]["index.find_links[0]"] == "config/base.yaml:4"


def test_config_reports_layering_problems_exit_2(tmp_path: Path) -> None:
    write(tmp_path / "env.yaml", "extends: gone.yaml\n")
    code, out, err = cli("config")
    assert code == 2 and out == "" and "env.yaml:1:10: extends: 'gone.yaml' (gone.yaml) does not exist" in err


def test_the_repo_overlay_extends_the_repo_example() -> None:
    repo = Path(__file__).resolve().parents[1]
    base, dev = load_spec(repo / "env.yaml", purpose="inspect"), load_spec(repo / "env.dev.yaml",
                                                                           purpose="inspect")
    assert dev.layers == (repo / "env.yaml", repo / "env.dev.yaml")
    # Its own environment, from the same locks; the base's scripts plus the test runner.
    assert dev.path == repo / "env-dev" and base.path == repo / "env"
    assert dev.requirements.path == base.requirements.path
    assert dev.final.probes.imports == (*base.final.probes.imports, "twisted.trial", "zope.testrunner")
    assert [s.name for s in dev.scripts] == [*(s.name for s in base.scripts), "test"]
    assert dev.bin_dir == repo / "bin" and base.bin_dir is None


# -- the chain as an input -----------------------------------------------------------------


def test_the_chain_is_watched_and_digested_and_nothing_else(tmp_path: Path) -> None:
    spec_file = project(tmp_path, "extends: config/base.yaml\n")
    write(tmp_path / "config" / "unrelated.yaml", "path: elsewhere\n")
    spec = load_spec(spec_file)
    watched = watch_of(spec).files
    assert str(tmp_path / "config" / "base.yaml") in watched and str(spec_file) in watched
    assert not any(name.endswith("unrelated.yaml") for name in watched)
    before = layers_digest(spec)
    (tmp_path / "config" / "base.yaml").write_text(BASE + "# a comment\n")
    assert layers_digest(load_spec(spec_file)) != before
    # Without extends the digest is env.yaml's own, as recorded by earlier builds.
    single = write(tmp_path / "single.yaml", BASE.replace("../", "").replace("runtime.txt",
                                                                          "config/runtime.txt"))
    assert layers_digest(load_spec(single)) == digest(single)


def _layered_project(root: Path, wh: Wheelhouse) -> Path:
    """make_project's env.yaml moved to config/base.yaml (its paths from there), extended."""
    flat = make_project(root, wh)
    text = flat.read_text()
    for value in ("env", "wheelhouse", "runtime.txt", "build.txt"):
        text = text.replace(f" {value}\n", f" ../{value}\n").replace(f"[{value}]", f"[../{value}]")
    write(root / "config" / "base.yaml", text)
    return write(flat, "extends: config/base.yaml\ncompile: false\n")


@pytest.mark.slow
def test_a_changed_base_rebuilds_and_an_unrelated_file_does_not(tmp_path: Path,
                                                                wheelhouse: Wheelhouse) -> None:
    spec_file = _layered_project(tmp_path, wheelhouse)
    first = build(load_spec(spec_file))
    assert first.env_dir.parent == tmp_path / "env.d"
    # The fast path finds `path` in the base and answers alone.
    quick = up_to_date(spec_file, Runner())
    assert quick is not None and quick.env_dir == first.env_dir
    assert cli("status")[0] == 0

    write(tmp_path / "config" / "other.yaml", "path: ../elsewhere\n")
    write(tmp_path / "notes.yaml", "anything: 1\n")
    assert up_to_date(spec_file, Runner()) is not None
    assert cli("status")[0] == 0

    base = tmp_path / "config" / "base.yaml"
    base.write_text(base.read_text() + "# a comment\n")
    assert up_to_date(spec_file, Runner()) is None
    code, _, err = cli("status")
    assert code == 1 and "env.yaml changed" in err, err
    code, out, _ = cli("plan", "--json")
    assert json.loads(out)["mode"] == "update"
    second = build(load_spec(spec_file))
    assert not second.up_to_date and second.env_dir != first.env_dir
    assert up_to_date(spec_file, Runner()) is not None

    # A base changing what it extends is a change of the chain too.
    shutil.copy(base, tmp_path / "config" / "real.yaml")
    base.write_text("extends: real.yaml\n")
    assert up_to_date(spec_file, Runner()) is None
    assert build(load_spec(spec_file)).env_dir != second.env_dir
