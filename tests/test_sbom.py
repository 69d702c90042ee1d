"""``pinfold sbom``: a CycloneDX SBOM of a real environment, valid against CycloneDX's schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from pinfold import build, load_spec
from pinfold.record import read_digest
from tests.artifacts import Artifact, copy_real, make_sdist, make_tree, make_wheel
from tests.conftest import cli, installed, needs_unshare, write
from tests.test_json_schema import run

# The CycloneDX validator, run in a child: with `unshare -n` it proves the schemas (and the
# ones they reference) come from inside the library, never from the network.
VALIDATE = """\
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())
print(error or "valid")
"""


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Artifact], list[Artifact]]:
    """Runtime: an sdist built with pbr (legacy setup.py), a wheel needing pbr, pbr and
    setuptools themselves; build lock: pbr and setuptools, and wheel, which only builds use."""
    wh = tmp_path_factory.mktemp("wheelhouse")
    pbr, setuptools, wheel = copy_real(wh, "pbr", "setuptools", "wheel")
    runtime = [make_sdist(wh, "legacy-proj", "1.0", backend="legacy-pbr"),
               make_wheel(wh, "plain-wheel", "1.0", requires=["pbr", "absent-dist; python_version < '3'"]),
               pbr, setuptools]
    return wh, runtime, [pbr, setuptools, wheel]


BUILD_VIA = {"pbr": "legacy-proj==1.0", "setuptools": "pbr", "wheel": "legacy-proj==1.0"}


def project(root: Path, wheelhouse: tuple[Path, list[Artifact], list[Artifact]], installer: str) -> Path:
    wh, runtime, build_pins = wheelhouse
    shutil.copytree(wh, root / "wheelhouse")
    tree = make_tree(root / "src", "devproj", "0.1", requires=["plain-wheel"])
    write(root / "runtime.txt", "".join(f"{a.pin()}\n" for a in runtime))
    write(root / "build.txt", "".join(f"{a.pin()}\n    # via {BUILD_VIA[a.name]}\n" for a in build_pins))
    return write(root / "env.yaml", (
        f"version: 1\npath: env\ninstaller: {installer}\n"
        "index:\n  find_links: [wheelhouse]\n"
        "requirements: runtime.txt\nbuild_requirements: build.txt\n"
        f"develop: [src/{tree.name}]\n"
        "final:\n  probes:\n    enabled: false\n"))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path_factory.mktemp("uv-cache")))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


def props(item: dict[str, Any], name: str) -> list[str]:
    return sorted(p["value"] for p in item.get("properties", []) if p["name"] == f"pinfold:{name}")


def test_no_environment_yet_is_bad_input_naming_the_path(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheelhouse", "plain-wheel", "1.0")
    write(tmp_path / "runtime.txt", wheel.pin() + "\n")
    spec = write(tmp_path / "env.yaml", "version: 1\npath: env\nindex:\n  find_links: [wheelhouse]\n"
                                        "requirements: runtime.txt\n")
    code, out, err = cli("sbom", str(spec))
    assert code == 2 and out == ""
    assert "there is no environment at env yet" in err and "run `pinfold build`" in err
    doc = run("sbom", str(spec), "-o", "sbom.json", form="error", code=2)
    assert "no environment at env" in doc["error"]
    # --json prints pinfold's own document: the SBOM must go to a file.
    doc = run("sbom", str(spec), form="error", code=2)
    assert "-o" in doc["error"] or "file" in doc["error"]
    assert not (tmp_path / "sbom.json").exists()


def test_help_does_not_load_the_cyclonedx_library() -> None:
    probe = ("import sys; from pinfold.cli import main\n"
             "try:\n    main(['sbom', '--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith(('cyclonedx', 'pinfold.sbom'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("[]"), done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_sbom_of_a_real_environment(tmp_path: Path, wheelhouse: tuple[Path, list[Artifact], list[Artifact]],
                                    installer: str) -> None:
    spec_file = project(tmp_path, wheelhouse, installer)
    res = build(load_spec(spec_file))
    digest = read_digest(res.env_dir)
    assert digest is not None

    doc = run("sbom", str(spec_file), "-o", "sbom.cdx.json")
    output = tmp_path / "sbom.cdx.json"
    assert doc["output"] == str(output) and doc["digest"] == digest and doc["env_dir"] == str(res.env_dir)
    assert (doc["runtime"], doc["develop"], doc["build"], doc["components"]) == (5, 1, 3, 6)
    text = output.read_text()
    sbom = json.loads(text)
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    assert sbom["serialNumber"] == doc["serial_number"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None

    # The same environment, the same bytes: stdout gives what -o wrote.
    code, out, err = cli("sbom", str(spec_file))
    assert code == 0 and out == text, err
    assert "wrote the CycloneDX SBOM to stdout: 6 components" in err

    # Every installed distribution, with its version; the locked ones with the lock's sha256.
    components = {c["name"]: c for c in sbom["components"]}
    on_disk = installed(res.env_dir)
    assert on_disk == {"legacy-proj": "1.0", "plain-wheel": "1.0", "pbr": "7.1.3",
                       "setuptools": "84.2.1", "devproj": "0.1"}
    _, runtime, build_pins = wheelhouse
    for artifact in runtime:
        c = components[artifact.name]
        assert c["version"] == on_disk[artifact.name] and c["scope"] == "required"
        assert c["purl"] == c["bom-ref"] == f"pkg:pypi/{artifact.name}@{artifact.version}"
        assert c["hashes"] == [{"alg": "SHA-256", "content": artifact.sha256}]
        assert props(c, "origin") == ["lock"]
        assert {"type": "distribution", "url": (tmp_path / "wheelhouse").as_uri(),
                "comment": f"{installer}'s index (env.yaml)"} in c["externalReferences"]
    dev = components["devproj"]
    assert "purl" not in dev and "hashes" not in dev and dev["version"] == "0.1"
    assert props(dev, "origin") == ["develop"]
    assert props(dev, "develop-tree") == [str(tmp_path / "src" / "devproj-0.1")]

    # The build lock: installed pins are also marked build, the one only builds use is excluded.
    assert props(components["pbr"], "phase") == ["build", "runtime"]
    assert props(components["pbr"], "needed-by") == ["legacy-proj==1.0"]
    assert props(components["legacy-proj"], "phase") == ["runtime"]
    wheel = components["wheel"]
    assert wheel["scope"] == "excluded" and props(wheel, "phase") == ["build"]
    assert wheel["hashes"] == [{"alg": "SHA-256", "content": build_pins[2].sha256}]

    # Licences and links from the metadata: PEP 639 expression, an SPDX id in `License`.
    assert components["setuptools"]["licenses"] == [{"expression": "MIT", "acknowledgement": "declared"}]
    assert components["pbr"]["licenses"] == [{"license": {"id": "Apache-2.0", "acknowledgement": "declared"}}]
    assert {"type": "vcs", "url": "https://opendev.org/openstack/pbr", "comment": "Source Code"} in \
        components["pbr"]["externalReferences"]

    # The environment: digest, interpreter, installer; the graph from Requires-Dist.
    meta = sbom["metadata"]
    assert props(meta, "environment-digest") == [digest]
    assert props(meta, "installer") == [installer]
    assert props(meta, "python:version") == [".".join(map(str, sys.version_info[:3]))]
    assert meta["lifecycles"] == [{"phase": "post-build"}]
    graph = {d["ref"]: d.get("dependsOn", []) for d in sbom["dependencies"]}
    assert graph["pkg:pypi/plain-wheel@1.0"] == ["pkg:pypi/pbr@7.1.3"]  # the py2 marker is false
    assert graph["develop:devproj@0.1"] == ["pkg:pypi/plain-wheel@1.0"]
    assert len(graph[meta["component"]["bom-ref"]]) == 5

    # SOURCE_DATE_EPOCH fixes the timestamp; the rest stays as it was.
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    fixed = subprocess.run([sys.executable, "-m", "pinfold", "sbom", str(spec_file)], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(fixed)["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert fixed.replace("2023-11-14T22:13:20+00:00", meta["timestamp"]) == text

    # A build lock edited since the build: its build dependencies are not known.
    build_lock = tmp_path / "build.txt"
    build_lock.write_text(build_lock.read_text() + "# edited\n")
    code, _, err = cli("sbom", str(spec_file))
    assert code == 2 and "build.txt changed since the environment" in err and "pinfold build" in err


@pytest.mark.slow
@needs_unshare
def test_sbom_and_its_validation_need_no_network(
        tmp_path: Path, wheelhouse: tuple[Path, list[Artifact], list[Artifact]]) -> None:
    spec_file = project(tmp_path, wheelhouse, "pip")
    build(load_spec(spec_file))
    offline = ["unshare", "-n", sys.executable]
    done = subprocess.run([*offline, "-m", "pinfold", "sbom", str(spec_file), "-o", "sbom.json"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    checked = subprocess.run([*offline, "-c", VALIDATE, "sbom.json"], capture_output=True, text=True,
                             check=False)
    assert checked.stdout.strip() == "valid", checked.stdout + checked.stderr
    # The validator really checks: a document with a bad scope fails.
    sbom = json.loads((tmp_path / "sbom.json").read_text())
    sbom["components"][0]["scope"] = "sometimes"
    write(tmp_path / "bad.json", json.dumps(sbom))
    checked = subprocess.run([*offline, "-c", VALIDATE, "bad.json"], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0 and "sometimes" in checked.stdout

    # The no-op build never loads the SBOM code or the CycloneDX library.
    probe = ("import sys; from pinfold.cli import main; code = main(['build', sys.argv[1]]); "
             "print(code, sorted(m for m in sys.modules if m.startswith(('cyclonedx', 'pinfold.sbom'))))")
    noop = subprocess.run([sys.executable, "-c", probe, str(spec_file)], capture_output=True, text=True,
                          check=True)
    assert noop.stdout.strip() == "0 []", noop.stdout + noop.stderr
