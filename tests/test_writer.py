"""Lock files as pinfold writes them (pinfold.locking.writer): exact bytes, atomic writes.

Fast: no pip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name
from packaging.version import Version

from pinfold.locking.needs import read_record, render_record
from pinfold.locking.writer import render_lock, write_files
from pinfold.locks import Pin, parse_lock
from tests.conftest import write

A, B = "sha256:" + "aa" * 32, "sha256:" + "bb" * 32

EXPECTED = f"""\
#
# The runtime lock of env.yaml, written by `pinfold lock` from its `needs`: exact pins
# with the hash of every artifact the index holds for them. Do not edit it by hand:
# change the needs and run `pinfold lock` again (`--upgrade-package NAME` moves one pin,
# `--upgrade` moves all). `pinfold build` refuses it once the needs below change.
#
{render_record("needs", ["six", "tomli"])[0]}
#     six
#     tomli
#
six==1.16.0 \\
    --hash={A} \\
    --hash={B}
    # via -r needs.in
tomli==2.0.1 ; python_version < "3.11" \\
    --hash={A}
    # via
    #   -r needs.in
    #   mypy
"""


PINS = (
    Pin(name=canonicalize_name("tomli"), version=Version("2.0.1"), hashes=frozenset({A}),
        marker=Marker('python_version < "3.11"'), via=("-r needs.in", "mypy")),
    Pin(name=canonicalize_name("six"), version=Version("1.16.0"), hashes=frozenset({B, A}),
        via=("-r needs.in",)),
)


def test_render_lock_gives_exact_sorted_bytes_that_read_back(tmp_path: Path) -> None:
    text = render_lock("runtime", "env.yaml", "needs", ["tomli", "six"], PINS)
    assert text == EXPECTED
    # Same pins in another order, same needs in another order: the same bytes.
    assert render_lock("runtime", "env.yaml", "needs", ["six", "tomli"], PINS[::-1]) == EXPECTED
    # What it writes, pinfold reads back: the same pins (`# via` without the -r lines), and the record.
    again, problems = parse_lock(write(tmp_path / "runtime.txt", text), shown="runtime.txt")
    assert problems == []
    assert [(p.requirement_line(), p.line, p.via) for p in again.pins] == [
        (PINS[1].requirement_line(), 11, ()), (PINS[0].requirement_line(), 15, ("mypy",))]
    record = read_record(tmp_path / "runtime.txt", "needs")
    assert record is not None and record.items == ("six", "tomli")


def test_the_build_lock_has_its_own_header(tmp_path: Path) -> None:
    text = render_lock("build", "env.yaml", "build_needs", [], ())
    assert text.startswith("#\n# The build lock of env.yaml, written by `pinfold lock`: every build "
                           "dependency")
    assert text.endswith(f"#\n{render_record('build_needs', [])[0]}\n#\n")


def test_write_files_replaces_changed_files_keeping_their_mode(tmp_path: Path) -> None:
    changed = write(tmp_path / "runtime.txt", "old\n")
    changed.chmod(0o640)
    same = write(tmp_path / "build.txt", "same\n")
    os.utime(same, (1_000_000_000, 1_000_000_000))
    new = tmp_path / "locks" / "extra.txt"
    inode = changed.stat().st_ino

    written = write_files([(changed, "new\n"), (same, "same\n"), (new, "created\n")])

    assert written == [changed, new]
    assert changed.read_text() == "new\n" and changed.stat().st_mode & 0o777 == 0o640
    assert changed.stat().st_ino != inode  # replaced by a rename, not written in place
    assert same.stat().st_mtime == 1_000_000_000  # unchanged content: not touched
    assert new.read_text() == "created\n" and new.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["build.txt", "extra.txt",
                                                                          "runtime.txt"]


def test_write_files_changes_nothing_when_one_file_cannot_be_written(tmp_path: Path) -> None:
    first = write(tmp_path / "runtime.txt", "old\n")
    blocker = write(tmp_path / "not-a-folder", "")
    with pytest.raises(OSError):
        write_files([(first, "new\n"), (blocker / "build.txt", "new\n")])
    assert first.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder", "runtime.txt"]  # no temporary left
