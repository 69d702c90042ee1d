"""`pinfold fetch` for a lock with several targets: what each needs, or one with --target (offline)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.artifacts import Artifact, make_wheel
from tests.conftest import cli, write
from tests.test_index_faults import simple_page

TARGETS = ("targets:\n  - {python_version: '3.11', platform: linux-x86_64}\n"
           "  - {python_version: '3.12', platform: linux-aarch64}\n")


def _tagged(dest: Path, tag: str) -> Artifact:
    """A wheel of plain 1.0 built for one platform only (its own bytes, so its own hash)."""
    made = make_wheel(dest / ".made", "plain", "1.0", files={"plain/__init__.py": f"# {tag}\n"})
    path = dest / made.path.name.replace("py3-none-any", tag)
    dest.mkdir(parents=True, exist_ok=True)
    made.path.replace(path)
    shutil.rmtree(dest / ".made")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Artifact(path=path, name="plain", version="1.0", sha256=digest)


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, str, Artifact, Artifact]:
    x86 = _tagged(tmp_path / "made", "cp311-cp311-manylinux_2_17_x86_64")
    arm = _tagged(tmp_path / "made", "cp312-cp312-manylinux_2_17_aarch64")
    simple_page(tmp_path / "upstream", [x86, arm])
    write(tmp_path / "p" / "runtime.txt",
          f"plain==1.0 --hash=sha256:{x86.sha256} --hash=sha256:{arm.sha256}\n")
    spec = write(tmp_path / "p" / "env.yaml", "path: env\nindex: {find_links: [wheelhouse]}\n"
                                              "requirements: runtime.txt\n" + TARGETS)
    return spec, (tmp_path / "upstream" / "simple").as_uri(), x86, arm


def test_fetch_downloads_what_every_target_needs(project: tuple[Path, str, Artifact, Artifact]) -> None:
    spec, upstream, x86, arm = project
    code, out, err = cli("fetch", "--json", "--index-url", upstream, str(spec))
    assert code == 0, err
    assert sorted(json.loads(out)["downloaded"]) == sorted([x86.path.name, arm.path.name])


Project = tuple[Path, str, Artifact, Artifact]


def test_fetch_for_one_target_downloads_only_its_artifact(project: Project) -> None:
    spec, upstream, _, arm = project
    code, out, err = cli("fetch", "--json", "--index-url", upstream, "--target", "3.12/linux-aarch64",
                         str(spec))
    assert code == 0, err
    assert json.loads(out)["downloaded"] == [arm.path.name]
    code, _, err = cli("fetch", "--index-url", upstream, "--target", "3.13/linux-x86_64", str(spec))
    assert code == 2 and "--target 3.13/linux-x86_64: not one of env.yaml's targets" in err, err
