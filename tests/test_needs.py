"""env.yaml's needs: reading (pinfold.needs), the record in a lock's header and staleness
(pinfold.locking.needs).

Fast: no pip, no virtualenv.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pinfold import SpecError, load_spec
from pinfold.locking.needs import read_record, render_record, require_current_locks, stale_problems
from pinfold.needs import Needs, NeedsSpec, read_needs
from tests.conftest import write

HASH = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages name files relative to the working directory, as a user sees them."""
    monkeypatch.chdir(tmp_path)


def from_file(tmp_path: Path, name: str = "needs.in") -> tuple[Needs, list[str]]:
    ns = NeedsSpec(key="needs", file=(tmp_path / name).resolve(), where=("env.yaml:5:8",))
    needs, problems = read_needs(ns, tmp_path)
    return needs, [str(p) for p in problems]


def from_list(tmp_path: Path, *items: str, key: str = "needs") -> tuple[Needs, list[str]]:
    ns = NeedsSpec(key=key, items=items, where=tuple(f"env.yaml:{6 + i}:5" for i in range(len(items))))
    needs, problems = read_needs(ns, tmp_path)
    return needs, [str(p) for p in problems]


def test_a_needs_file_with_includes_options_and_constraints(tmp_path: Path) -> None:
    write(tmp_path / "needs.in", (
        "# the top-level needs\n"
        "Twisted[tls] >= 24.3  # a comment\n"
        "-r more/extra.in\n"
        "--constraint=pins.txt\n"
        "--no-binary stevedore\n"
        "--prefer-binary\n"
        "pbr \\\n"
        "  <7\n"
    ))
    write(tmp_path / "more" / "extra.in", "Zope.Interface\n-r ../needs.in\n--pre\n")
    write(tmp_path / "pins.txt", "attrs==23.1.0\n")
    needs, problems = from_file(tmp_path)
    assert problems == []
    assert needs.key == "needs" and needs.label == "-r needs.in"
    assert needs.requirements == ("twisted[tls]>=24.3", "zope-interface", "pbr<7")
    assert needs.options == ("--pre", "--no-binary stevedore", "--prefer-binary")
    assert needs.constraints == ("attrs==23.1.0",)
    # needs.in is read once although extra.in includes it again.
    assert needs.files == tuple((tmp_path / n).resolve() for n in ("needs.in", "more/extra.in", "pins.txt"))
    assert needs.items() == ["--no-binary stevedore", "--pre", "--prefer-binary", "-c attrs==23.1.0",
                             "pbr<7", "twisted[tls]>=24.3", "zope-interface"]


def test_refused_lines_are_located_in_their_file(tmp_path: Path) -> None:
    write(tmp_path / "needs.in", (
        "six\n"
        "--index-url https://example.invalid/simple\n"
        "-f wheelhouse\n"
        "--no-index\n"
        "-e ./src\n"
        "pkg @ https://example.invalid/pkg.whl\n"
        "-r\n"
        "--only-binary\n"
        "-r missing.in\n"
        "not a requirement ==\n"
    ))
    needs, problems = from_file(tmp_path)
    assert needs.requirements == ("six",)
    index = "is not allowed here: the index comes from env.yaml's `index` alone"
    *located, unparsable = problems
    assert located == [
        f"needs.in:2: --index-url {index}",
        f"needs.in:3: -f {index}",
        f"needs.in:4: --no-index {index}",
        "needs.in:5: option -e is not supported in needs (allowed: -r, -c, --no-binary, --only-binary, "
        "--prefer-binary, --pre); local trees go under `develop`",
        "needs.in:6: 'pkg @ https://example.invalid/pkg.whl' is a direct reference: a lock pins "
        "name==version from the index; put local trees under `develop`",
        "needs.in:7: -r needs a file name",
        "needs.in:8: --only-binary needs a package name, :all: or :none:",
        "needs.in:9: cannot read missing.in: no such file or directory",
    ]
    assert unparsable.startswith("needs.in:10: 'not a requirement ==' is not a requirement: "), unparsable


def test_an_inline_list_is_located_per_item(tmp_path: Path) -> None:
    needs, problems = from_list(tmp_path, "six", "  Attrs>=23 ", "--extra-index-url https://x.invalid",
                                key="build_needs")
    assert (needs.label, needs.requirements, needs.files) == ("env.yaml:build_needs",
                                                              ("six", "attrs>=23"), ())
    assert problems == ["env.yaml:8:5: --extra-index-url is not allowed here: the index comes from "
                        "env.yaml's `index` alone"]


def test_a_missing_needs_file_is_named_where_env_yaml_names_it(tmp_path: Path) -> None:
    _, problems = from_file(tmp_path, "nope.in")
    assert problems == ["env.yaml:5:8: cannot read nope.in: no such file or directory"]


# --- the record in a lock's header ------------------------------------------------------


def test_the_record_is_sorted_digested_and_read_back(tmp_path: Path) -> None:
    items = ["twisted>=24.3", "-c attrs==23.1.0", "--pre"]
    lines = render_record("needs", items)
    # The digest is sha256 over the sorted items, one per line: their order does not matter.
    assert lines == [
        "# needs: sha256:8493afd2a6756cb0f0fe914c5a55c9d1312bdc2a3aca27d5ba5371d08b87c66a",
        "#     --pre",
        "#     -c attrs==23.1.0",
        "#     twisted>=24.3",
    ]
    assert render_record("needs", sorted(items)) == lines
    lock = write(tmp_path / "runtime.txt", "\n".join(["#", *lines, *render_record("build_needs", []),
                                                      "#", f"six==1.16.0 --hash={HASH}", ""]))
    needs = read_record(lock, "needs")
    assert needs is not None
    assert (needs.key, needs.digest, needs.items) == (
        "needs", lines[0].split()[-1], ("--pre", "-c attrs==23.1.0", "twisted>=24.3"))
    build = read_record(lock, "build_needs")
    assert build is not None and build.items == ()


def test_a_lock_without_a_record_has_none(tmp_path: Path) -> None:
    lock = write(tmp_path / "runtime.txt", f"six==1.16.0 --hash={HASH}\n# needs: sha256:{'0' * 64}\n")
    assert read_record(lock, "needs") is None  # the header ends at the first pin
    assert read_record(tmp_path / "missing.txt", "needs") is None


# --- staleness --------------------------------------------------------------------------


def project(tmp_path: Path, needs: str, runtime: str) -> Path:
    (tmp_path / "wheelhouse").mkdir(exist_ok=True)
    write(tmp_path / "runtime.txt", runtime)
    return write(tmp_path / "env.yaml", "version: 1\npath: env\nindex:\n  find_links: [wheelhouse]\n"
                                        f"requirements: runtime.txt\nneeds: {needs}\n")


def locked(needs: list[str], pins: str) -> str:
    """A runtime lock as `pinfold lock` writes it: a header with the needs record, then pins."""
    return "\n".join(["#", *render_record("needs", needs), "#", pins, ""])


def test_a_lock_matching_its_record_is_fresh(tmp_path: Path) -> None:
    runtime = locked(["attrs", "six"], f"six==1.16.0 --hash={HASH}")
    spec = load_spec(project(tmp_path, "[six, attrs]", runtime))
    assert stale_problems(spec) == []


def test_a_need_added_or_removed_makes_the_lock_stale(tmp_path: Path) -> None:
    spec_file = project(tmp_path, "[six, idna]", locked(["attrs", "six"], f"six==1.16.0 --hash={HASH}"))
    expected = ["runtime.txt: stale: env.yaml's `needs` changed since `pinfold lock` wrote it "
                "(added idna; removed attrs)"]
    assert [str(p) for p in stale_problems(load_spec(spec_file, purpose="lock"))] == expected
    # What installs from the locks refuses it, with the same problem.
    with pytest.raises(SpecError) as caught:
        require_current_locks(load_spec(spec_file))
    assert [str(p) for p in caught.value.problems] == expected


def test_a_record_edited_by_hand_is_stale(tmp_path: Path) -> None:
    text = locked(["six"], f"six==1.16.0 --hash={HASH}").replace("#     six", "#     attrs")
    spec_file = project(tmp_path, "[attrs]", text)
    assert [str(p) for p in stale_problems(load_spec(spec_file, purpose="lock"))] == [
        "runtime.txt: stale: env.yaml's `needs` changed since `pinfold lock` wrote it "
        "(its needs record was edited)"]


def test_a_lock_without_a_record_must_pin_every_need_at_a_fitting_version(tmp_path: Path) -> None:
    runtime = f"six==1.16.0 --hash={HASH}\nattrs==22.1.0 --hash={HASH}\n"
    spec_file = project(tmp_path, "[six>=1.16, 'attrs>=23', idna, 'tomli; python_version < \"3.11\"']",
                        runtime)
    assert [str(p) for p in stale_problems(load_spec(spec_file, purpose="lock"))] == [
        "runtime.txt: does not match env.yaml's `needs`: attrs>=23 does not match the pin attrs==22.1.0",
        "runtime.txt: does not match env.yaml's `needs`: idna is not pinned",
    ]
    project(tmp_path, "[six>=1.16, 'attrs<23']", runtime)
    assert stale_problems(load_spec(spec_file)) == []
