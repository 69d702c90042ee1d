"""`pinfold fetch` repairs a wheelhouse: a file whose hash is not the lock's is replaced, offline.

The upstream is a file:// simple index made by the test (no network, no server).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from pinfold.cli import main
from tests.artifacts import make_wheel
from tests.test_index_faults import project, simple_page


def test_fetch_replaces_a_tampered_file_with_the_locked_one(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "upstream" / "files", "plain", "1.0")
    simple_page(tmp_path / "upstream", [wheel])
    spec_file = project(tmp_path / "p", [], lock=wheel.pin() + "\n")
    wheelhouse = tmp_path / "p" / "wheelhouse"
    wheelhouse.mkdir()
    tampered = wheelhouse / wheel.path.name
    tampered.write_bytes(wheel.path.read_bytes() + b"changed")
    out, err = io.StringIO(), io.StringIO()
    code = main(["fetch", "--json", "--index-url", (tmp_path / "upstream" / "simple").as_uri(),
                 str(spec_file)], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue())["downloaded"] == [wheel.path.name]
    assert hashlib.sha256(tampered.read_bytes()).hexdigest() == wheel.sha256
    assert sorted(p.name for p in wheelhouse.iterdir()) == [wheel.path.name]
