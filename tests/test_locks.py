"""Reading lock files (pinfold.locks.parse_lock): pins, hashes, markers, located refusals.

Fast: no pip, no virtualenv, no interpreter run.
"""

from __future__ import annotations

from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name
from packaging.version import Version

from pinfold.locks import parse_lock
from tests.conftest import write

SHA256 = "sha256:" + "ab" * 32
SHA384 = "sha384:" + "cd" * 48
SHA512 = "sha512:" + "ef" * 64


def parse(tmp_path: Path, text: str) -> tuple[list[str], list[str]]:
    """The lock's pins as requirement lines, and its problems as text."""
    lock, problems = parse_lock(write(tmp_path / "runtime.txt", text), shown="runtime.txt")
    return [p.requirement_line() for p in lock.pins], [str(p) for p in problems]


def test_pins_of_all_three_hash_algorithms(tmp_path: Path) -> None:
    text = (f"six==1.16.0 --hash={SHA256}\n"
            f"attrs==23.1.0 --hash={SHA384.upper().replace('SHA384', 'sha384')}\n"
            f"Zope.Interface==6.0 --hash {SHA512}\n")
    lock, problems = parse_lock(write(tmp_path / "runtime.txt", text), shown="runtime.txt")
    assert problems == []
    assert [(str(p), sorted(p.hashes), p.line) for p in lock.pins] == [
        ("six==1.16.0", [SHA256], 1),
        ("attrs==23.1.0", [SHA384], 2),  # hex digests are read in lower case
        ("zope-interface==6.0", [SHA512], 3),  # names are canonical
    ]
    assert lock.by_name()[canonicalize_name("Zope.Interface")].version == Version("6.0")


def test_continuations_markers_extras_and_via(tmp_path: Path) -> None:
    text = ("# a header comment\n"
            "pbr==7.1.3 \\\n"
            f"    --hash={SHA256} \\\n"
            f"    --hash={SHA512}\n"
            "    # via\n"
            "    #   -r build.in\n"
            "    #   stevedore==3.5.2\n"
            "    #   fixtures\n"
            f"tomli==2.0.1 ; python_version < \"3.11\" --hash={SHA256}\n"
            "    # via mypy\n"
            f"requests[socks,security]==2.31.0 --hash={SHA256}  # an inline comment\n")
    lock, problems = parse_lock(write(tmp_path / "runtime.txt", text), shown="runtime.txt")
    assert problems == []
    pbr, tomli, requests = lock.pins
    assert (pbr.line, sorted(pbr.hashes), pbr.via) == (2, [SHA256, SHA512], ("stevedore==3.5.2", "fixtures"))
    assert (tomli.line, tomli.marker, tomli.via) == (9, Marker('python_version < "3.11"'), ("mypy",))
    assert (requests.line, requests.extras, requests.via) == (11, frozenset({"socks", "security"}), ())
    assert tomli.requirement_line() == f'tomli==2.0.1 ; python_version < "3.11" --hash={SHA256}'


def test_every_refused_line_is_located_and_the_good_pins_are_kept(tmp_path: Path) -> None:
    text = (f"six>=1.0 --hash={SHA256}\n"
            "attrs==23.1.0\n"
            "--index-url https://example.invalid/simple\n"
            f"-e ./src --hash={SHA256}\n"
            "idna==3.* --hash=" + SHA256 + "\n"
            "pbr==7.1.3 --hash=sha256:abc\n"
            f"wheel==0.42 --no-binary :all: --hash={SHA256}\n"
            f"pkg @ https://example.invalid/pkg.whl --hash={SHA256}\n"
            f"ok==1.0 --hash={SHA256}\n"
            f"OK==2.0 --hash={SHA256}\n"
            "not a requirement ==\n")
    pins, problems = parse(tmp_path, text)
    assert pins == [f"ok==1.0 --hash={SHA256}"]
    *located, unparsable = problems
    assert located == [
        "runtime.txt:1:1: 'six>=1.0' is not pinned: every lock entry must be an exact `name==version` "
        "with --hash lines",
        "runtime.txt:2:1: attrs==23.1.0 has no --hash: every pin needs the hashes of its artifacts",
        "runtime.txt:3:1: option '--index-url' is not allowed in a lock: the index comes from env.yaml, "
        "and a lock holds pins only",
        "runtime.txt:4:1: option '-e' is not allowed in a lock: the index comes from env.yaml, "
        "and a lock holds pins only",
        "runtime.txt:5:1: 'idna==3.*' is not pinned: every lock entry must be an exact `name==version` "
        "with --hash lines",
        "runtime.txt:6:1: malformed hash 'sha256:abc'",
        "runtime.txt:7:1: unexpected option in 'wheel==0.42 --no-binary :all:': only --hash may follow a pin",
        "runtime.txt:8:1: 'pkg @ https://example.invalid/pkg.whl' is not pinned: every lock entry must "
        "be an exact `name==version` with --hash lines",
        "runtime.txt:10:1: ok is pinned twice (first on line 9)",
    ]
    # The rest of the message is packaging's own wording.
    assert unparsable.startswith("runtime.txt:11:1: not a requirement: "), unparsable


def test_an_indented_pin_is_located_at_its_column(tmp_path: Path) -> None:
    _, problems = parse(tmp_path, "\n   attrs==23.1.0\n")
    assert problems == ["runtime.txt:2:4: attrs==23.1.0 has no --hash: every pin needs the hashes "
                        "of its artifacts"]


def test_an_unreadable_lock_is_one_problem(tmp_path: Path) -> None:
    lock, problems = parse_lock(tmp_path / "missing.txt", shown="missing.txt")
    assert lock.pins == ()
    assert [p.where for p in problems] == ["missing.txt"]
    assert problems[0].message == "cannot read the lock: no such file or directory"


def test_an_empty_lock_has_no_pins_and_no_problems(tmp_path: Path) -> None:
    assert parse(tmp_path, "# only comments\n\n") == ([], [])
