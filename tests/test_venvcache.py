"""The virtualenv template (pinfold/venvcache.py): virtualenv's own output, used once proven.

Real virtualenv runs throughout: what a template writes must be, byte for byte, link for
link and mode for mode, what virtualenv itself writes at that path.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from pinfold import build, load_spec
from pinfold.manifest import BOOKKEEPING
from pinfold.pyccache import cache_info, prune
from pinfold.runner import Runner
from pinfold.venvcache import keep_template, snapshot, template_key, template_path, written_from_template
from tests.test_build import Wheelhouse, make_project, wheelhouse  # noqa: F401 (a fixture)
from tests.test_pyccache import own_cache  # noqa: F401 (every test its own cache folder)

PYTHON = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")

pytestmark = pytest.mark.slow


def virtualenv(env_dir: Path) -> None:
    """What the create stage runs, into an existing folder (as the stage's marker makes it)."""
    env_dir.mkdir(parents=True, exist_ok=True)
    Runner().run([sys.executable, "-m", "virtualenv", "--quiet", "--no-seed", "--no-periodic-update",
                  "--python", PYTHON, str(env_dir)], what="virtualenv")


def folder(tmp_path: Path, where: str, stamp: str) -> Path:
    """A folder named as builds name them (long enough to be the prompt and nothing else)."""
    return tmp_path / where / f"20261202-{stamp}-abcdef"


def test_a_template_is_used_only_once_proven_and_writes_what_virtualenv_writes(tmp_path: Path) -> None:
    key = template_key(PYTHON, "test", version("virtualenv"))
    first = folder(tmp_path, "one", "000000001")
    virtualenv(first)
    assert keep_template(key, first, BOOKKEEPING) == "unproven"
    unproven = folder(tmp_path, "two", "000000002")
    unproven.mkdir(parents=True)
    assert not written_from_template(key, unproven)
    assert list(unproven.iterdir()) == []  # nothing written from an unproven template
    virtualenv(unproven)
    assert keep_template(key, unproven, BOOKKEEPING) == "proven"

    # Another folder, another path length: written from the template, then compared with what
    # virtualenv itself writes at that very path.
    third = folder(tmp_path, "three/deeper", "000000003")
    third.mkdir(parents=True)
    assert written_from_template(key, third)
    ours = snapshot(third, BOOKKEEPING)
    assert ours is not None and "pyvenv.cfg" in ours and ours["bin/python"] == ("l", 0, PYTHON)
    assert str(third) in ours["bin/activate"][2] and third.name in ours["bin/activate"][2]
    assert str(first) not in json.dumps(ours) and first.name not in json.dumps(ours)
    shutil.rmtree(third)
    virtualenv(third)
    assert snapshot(third, BOOKKEEPING) == ours

    # A path a shell would quote: virtualenv's own, never the template.
    quoted = tmp_path / "with space" / "20261202-000000004-abcdef"
    quoted.mkdir(parents=True)
    assert not written_from_template(key, quoted) and list(quoted.iterdir()) == []

    info = cache_info()
    assert info.templates == 1 and info.template_bytes > 0 and info.size >= info.template_bytes
    assert prune(0).info.templates == 0 and not template_path(key).exists()


def test_a_template_that_does_not_relocate_is_refused(tmp_path: Path) -> None:
    key = template_key(PYTHON, "test", version("virtualenv"))
    first = folder(tmp_path, "one", "000000001")
    virtualenv(first)
    keep_template(key, first, BOOKKEEPING)
    # As if virtualenv wrote something the relocation cannot account for (a path it
    # derived, a time stamp): the next build's comparison must fail.
    doc = json.loads(template_path(key).read_text())
    doc["tree"]["pyvenv.cfg"][2] += "built-at = 1234\n"
    template_path(key).write_text(json.dumps(doc))
    second = folder(tmp_path, "two", "000000002")
    virtualenv(second)
    assert keep_template(key, second, BOOKKEEPING) == "refused"
    third = folder(tmp_path, "three", "000000003")
    third.mkdir(parents=True)
    assert not written_from_template(key, third) and list(third.iterdir()) == []



def test_a_template_virtualenv_could_not_have_written_is_not_used(tmp_path: Path) -> None:
    """Whatever the cache file holds (tampered, corrupt), nothing is written outside the
    folder or through a link, the build is not failed, and nothing is left behind."""
    key = template_key(PYTHON, "test", version("virtualenv"))
    first = folder(tmp_path, "one", "000000001")
    virtualenv(first)
    keep_template(key, first, BOOKKEEPING)
    good = json.loads(template_path(key).read_text())
    outside = tmp_path / "outside"
    outside.mkdir()
    target = folder(tmp_path, "target", "000000002")
    target.mkdir(parents=True)

    def tree_with(**changes: object) -> dict[str, object]:
        tree = {**good["tree"], **changes}
        return {**good, "state": "proven", "tree": {k: v for k, v in tree.items() if v is not None}}

    hostile = {
        "a path out of the folder": tree_with(**{"../evil": ["f", 0o644, ""]}),
        "a file through a link": tree_with(include=["l", 0, str(outside)],
                                           **{"include/evil": ["f", 0o644, "x"]}),
        "a lone surrogate": tree_with(**{".gitignore": ["f", 0o644, "*\ud800"]}),
        "a NUL": tree_with(**{".gitignore": ["f", 0o644, "*\u0000"]}),
        "setuid": tree_with(**{".gitignore": ["f", 0o4755, "*"]}),
        "a mode too large to set": tree_with(**{".gitignore": ["f", 1 << 70, "*"]}),
        "no interpreter link": tree_with(**{"bin/python": None, "bin/python3": None, "bin/python3.11": None}),
    }
    for why, doc in hostile.items():
        template_path(key).write_text(json.dumps(doc))  # a lone surrogate as \\ud800
        assert not written_from_template(key, target), why
        assert list(target.iterdir()) == [] and list(outside.iterdir()) == [], why
    # The same checks pass for the template itself: it is used.
    template_path(key).write_text(json.dumps({**good, "state": "proven"}))
    assert written_from_template(key, target)
    # A write that fails half-way (here: a file of the template already there) leaves
    # nothing of it behind, the file that was there excepted.
    shutil.rmtree(target)
    target.mkdir()
    (target / "pyvenv.cfg").write_text("mine\n")
    assert not written_from_template(key, target)
    assert [p.name for p in target.iterdir()] == ["pyvenv.cfg"]
    assert (target / "pyvenv.cfg").read_text() == "mine\n"


def test_builds_write_the_empty_virtualenv_from_the_template_from_the_third_on(
        tmp_path: Path, wheelhouse: Wheelhouse) -> None:  # noqa: F811 (the fixture)
    spec = load_spec(make_project(tmp_path, wheelhouse))
    details = []
    digests = []
    for _ in range(3):
        result = build(spec, fresh=True)
        details.append(next(s.detail for s in result.stages if s.name == "create"))
        digests.append(json.loads((result.env_dir / "pinfold.json").read_text())["digest"])
    assert ["from the template cache" in d for d in details] == [False, False, True], details
    assert len(set(digests)) == 1, digests  # the same environment, byte for byte
