"""Write real wheels, sdists and source trees for pinfold's tests.

Everything here produces files that pip really installs or builds, so tests
exercise the same code paths as a user's wheelhouse.  Archives are written
with fixed timestamps and modes, so the same inputs always give the same
sha256 and lock files written by tests stay stable.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

Backend = Literal["setuptools", "legacy-pbr", "pbr-backend"]

# Pinned real wheels: build backends (and their runtime closure) that the
# synthetic sdists need.  pbr needs setuptools at run time; wheel needs packaging.
REAL_PACKAGES: dict[str, str] = {
    "pbr": "7.1.3",
    "setuptools": "84.2.1",
    "wheel": "0.48.0",
    "packaging": "26.4",
    # Twisted and its runtime closure (pins from requirements/runtime.txt), for the
    # plugin-cache and probe tests; incremental needs packaging.
    "twisted": "26.10.0",
    "attrs": "26.1.0",
    "automat": "25.4.16",
    "constantly": "23.10.4",
    "hyperlink": "21.0.0",
    "idna": "3.20",
    "incremental": "24.11.0",
    "typing-extensions": "4.16.0",
    "zope-interface": "8.7",
    # zope.testrunner and its runtime closure (with setuptools, zope.interface above), for the
    # generated test-runner script (zc.recipe.testrunner's equivalent).
    "zope-testrunner": "8.3",
    "zope-exceptions": "6.0",
}

# Only what pip needs to reach the index: the machine's pip config and PIP_*
# variables add find-links and constraints that must not leak into the cache.
_PASSED_ENV = (
    "PATH", "HOME", "PIP_CERT", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
)  # fmt: skip
# Taken when the tests are collected: conftest's autouse fixture strips PIP_* (PIP_CERT
# included) from each test's environment, but the one download step still needs it.
_NETWORK_ENV = {k: v for k, v in os.environ.items() if k in _PASSED_ENV}
_PIP_DOWNLOAD = ("-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input")
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so equal inputs hash equally
_TAR_MTIME = 1577836800  # the same instant, for sdists


@dataclass(frozen=True)
class Artifact:
    """A distribution file on disk and the facts a lock file pins about it."""

    path: Path
    name: str
    version: str
    sha256: str

    def pin(self) -> str:
        """Return a hashed requirement line: ``name==version --hash=sha256:...``."""
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def _artifact(path: Path, name: str, version: str) -> Artifact:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Artifact(path, canonicalize_name(name), version, digest)


def _stem(name: str, version: str) -> str:
    # The file-name form both wheels and sdists use (PEP 427 / PEP 625).
    return f"{canonicalize_name(name).replace('-', '_')}-{Version(version)}"


def _default_files(name: str, version: str) -> dict[str, str]:
    module = canonicalize_name(name).replace("-", "_")
    return {f"{module}/__init__.py": f'__version__ = "{version}"\n'}


def _metadata(name: str, version: str, requires: Sequence[str]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {Requirement(r)}" for r in requires]
    return "\n".join(lines) + "\n"


def make_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    files: Mapping[str, str] | None = None,
    requires: Sequence[str] = (),
    entry_points: Mapping[str, Mapping[str, str]] | None = None,
) -> Artifact:
    """Write a pure-Python ``py3-none-any`` wheel into ``dest``.

    ``files`` maps archive paths to text (default: a package whose
    ``__init__`` sets ``__version__``); ``requires`` become ``Requires-Dist``
    lines and ``entry_points`` maps group -> {name: "module:attr"}.
    """
    name, version = canonicalize_name(name), str(Version(version))
    info = f"{_stem(name, version)}.dist-info"
    payload = dict(_default_files(name, version) if files is None else files)
    payload[f"{info}/METADATA"] = _metadata(name, version, requires)
    payload[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: pinfold-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if entry_points:
        payload[f"{info}/entry_points.txt"] = "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items()) + "\n"
            for group, items in entry_points.items()
        )
    data = {arc: text.encode() for arc, text in payload.items()}
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for arc, blob in data.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(blob).digest()).rstrip(b"=")
        writer.writerow([arc, f"sha256={digest.decode()}", len(blob)])
    writer.writerow([f"{info}/RECORD", "", ""])
    data[f"{info}/RECORD"] = record.getvalue().encode()

    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{_stem(name, version)}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for arc, blob in data.items():
            entry = zipfile.ZipInfo(arc, _ZIP_TIME)
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, blob, compress_type=zipfile.ZIP_DEFLATED)
    return _artifact(path, name, version)


def _layout(files: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Split the ``.py`` files into (regular packages, dotted modules outside them).

    Files in folders without ``__init__.py`` (e.g. ``twisted/plugins/x.py``)
    become dotted modules: pbr only ships packages that ``find_packages``
    sees, and a plugin must not ship ``twisted/plugins/__init__.py``.
    """
    inits = {PurePosixPath(arc).parent for arc in files if arc.endswith("/__init__.py")}
    packages: set[str] = set()
    modules: set[str] = set()
    for arc in files:
        path = PurePosixPath(arc)
        chain = path.parents[:-1]  # enclosing folders, without the root "."
        if path.suffix != ".py" or arc == "setup.py":
            continue
        if chain and all(folder in inits for folder in chain):
            packages.update(".".join(folder.parts) for folder in chain)
        elif path.name != "__init__.py":
            modules.add(".".join(path.with_suffix("").parts))
    return sorted(packages), sorted(modules)


def _toml_list(items: Sequence[str]) -> str:
    # JSON strings are valid TOML basic strings for the text used here.
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _source_files(
    name: str,
    version: str,
    backend: Backend,
    files: Mapping[str, str] | None,
    requires: Sequence[str],
) -> dict[str, str]:
    payload = dict(_default_files(name, version) if files is None else files)
    packages, modules = _layout(payload)
    tree: dict[str, str] = {}
    if backend == "setuptools":
        tree["pyproject.toml"] = (
            '[build-system]\nrequires = ["setuptools>=40.8.0"]\n'
            'build-backend = "setuptools.build_meta"\n\n'
            f"[project]\nname = {json.dumps(name)}\nversion = {json.dumps(version)}\n"
            f"dependencies = {_toml_list(requires)}\n\n"
            # package-dir "." makes editable installs a plain .pth line (like
            # `setup.py develop`), so Twisted finds the tree's twisted/plugins.
            f'[tool.setuptools]\npackage-dir = {{"" = "."}}\npackages = {_toml_list(packages)}\n'
            f"py-modules = {_toml_list(modules)}\n"
        )
    else:
        # Real pbr projects (stevedore, fixtures) depend on pbr at run time.
        if not any(canonicalize_name(Requirement(r).name) == "pbr" for r in requires):
            requires = [*requires, "pbr>=2.0.0"]
        # pbr reads name and layout from setup.cfg; its version comes from
        # PKG-INFO (written by make_sdist), since an sdist has no git history.
        tree["setup.py"] = "import setuptools\n\nsetuptools.setup(setup_requires=['pbr>=2.0.0'], pbr=True)\n"
        tree["setup.cfg"] = (
            f"[metadata]\nname = {name}\nsummary = Test project {name}\n\n[files]\n"
            + "".join(f"{k} =\n" + "".join(f"    {v}\n" for v in vs) + "\n"
                      for k, vs in (("packages", packages), ("modules", modules)) if vs)
        )  # fmt: skip
        tree["requirements.txt"] = "".join(f"{r}\n" for r in requires)
        if backend == "pbr-backend":
            tree["pyproject.toml"] = (
                '[build-system]\nrequires = ["pbr>=6.1.1"]\nbuild-backend = "pbr.build"\n'
            )
    tree["PKG-INFO"] = _metadata(name, version, requires)
    # The caller's files win, so a test can hand in a deliberately broken setup.
    return {**tree, **payload}


def make_sdist(
    dest: Path,
    name: str,
    version: str,
    *,
    backend: Backend = "setuptools",
    files: Mapping[str, str] | None = None,
    requires: Sequence[str] = (),
) -> Artifact:
    """Write a buildable sdist ``dest/<name>-<version>.tar.gz``.

    ``backend`` picks the build setup: "setuptools" (pyproject.toml with
    setuptools.build_meta), "legacy-pbr" (setup.py with ``pbr=True`` and no
    pyproject.toml) or "pbr-backend" (``build-backend = "pbr.build"``).  For
    pbr backends ``pbr>=2.0.0`` is added to the runtime ``requires``.
    """
    name, version = canonicalize_name(name), str(Version(version))
    top = _stem(name, version)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{top}.tar.gz"
    tree = _source_files(name, version, backend, files, requires)
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for arc, text in sorted(tree.items()):
            blob = text.encode()
            entry = tarfile.TarInfo(f"{top}/{arc}")
            entry.size, entry.mtime, entry.mode = len(blob), _TAR_MTIME, 0o644
            archive.addfile(entry, io.BytesIO(blob))
    return _artifact(path, name, version)


def make_tree(
    dest: Path,
    name: str,
    version: str,
    *,
    files: Mapping[str, str] | None = None,
    requires: Sequence[str] = (),
) -> Path:
    """Write an unpacked setuptools source tree (for editable installs); return its folder."""
    name, version = canonicalize_name(name), str(Version(version))
    root = dest / _stem(name, version)
    for arc, text in _source_files(name, version, "setuptools", files, requires).items():
        if arc == "PKG-INFO":
            continue  # a checkout has none; setuptools would treat it as an sdist
        target = root / arc
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def _cached(folder: Path, name: str) -> Path | None:
    return min(folder.glob(f"{_stem(name, REAL_PACKAGES[name])}-*.whl"), default=None)


def real_wheel_cache() -> Path:
    """Return a folder holding the ``REAL_PACKAGES`` wheels, downloading them once.

    The folder is ``$PINFOLD_TEST_CACHE`` or ``~/.cache/pinfold-tests/wheels``.
    This is the only network access in the test support code: pip runs with a
    scrubbed environment and no config file, against its default index.
    """
    default = Path.home() / ".cache" / "pinfold-tests" / "wheels"
    folder = Path(os.environ.get("PINFOLD_TEST_CACHE") or default)
    if all(_cached(folder, name) for name in REAL_PACKAGES):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(_NETWORK_ENV)
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pins = [f"{n}=={v}" for n, v in REAL_PACKAGES.items()]
    # Download into a temp folder and move finished files in: a killed run
    # leaves only a stray ".download-*" folder, never a truncated wheel.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        cmd = [sys.executable, *_PIP_DOWNLOAD, f"--dest={tmp}", *pins]
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip download failed:\n{done.stdout}{done.stderr}")
        for wheel in Path(tmp).glob("*.whl"):
            wheel.replace(folder / wheel.name)
    if missing := [name for name in REAL_PACKAGES if not _cached(folder, name)]:
        raise RuntimeError(f"pip did not download: {', '.join(missing)}")
    return folder


def copy_real(dest: Path, *names: str) -> list[Artifact]:
    """Copy the named ``REAL_PACKAGES`` wheels into ``dest``; return their Artifacts."""
    cache = real_wheel_cache()
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for raw in names:
        name = canonicalize_name(raw)
        if name not in REAL_PACKAGES:
            raise ValueError(f"{raw!r} is not in REAL_PACKAGES")
        source = _cached(cache, name)
        assert source is not None  # real_wheel_cache() checked every name
        target = Path(shutil.copy2(source, dest / source.name))
        copied.append(_artifact(target, name, REAL_PACKAGES[name]))
    return copied


# Real index servers for tests/test_index_servers.py, pinned; installed once into a venv of
# their own in the test cache, never into pinfold's tool environment.
#: The index servers' pins, with the hash of every artifact (and their own dependencies).
SERVER_REQUIREMENTS = Path(__file__).with_name("servers.txt")


def server_venv() -> Path:
    """Return the ``bin`` folder of a venv holding the index servers of ``servers.txt``, made once.

    It lives in the test cache (``~/.cache/pinfold-tests/servers-<key>``, or beside
    ``$PINFOLD_TEST_CACHE``), made with the machine's pip from its default index, hashes
    required, like :func:`real_wheel_cache`: the suite's one other online step.
    """
    text = SERVER_REQUIREMENTS.read_text(encoding="utf-8")
    key = hashlib.sha256("\n".join([sys.version, text]).encode()).hexdigest()[:12]
    base = Path(os.environ.get("PINFOLD_TEST_CACHE") or Path.home() / ".cache" / "pinfold-tests" / "wheels")
    venv = base.parent / f"servers-{key}"
    if (venv / ".complete").is_file():
        return venv / "bin"
    shutil.rmtree(venv, ignore_errors=True)  # a half-made one from a killed run
    python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = dict(_NETWORK_ENV) | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input",
                           "--require-hashes", "--no-deps", "-r", str(SERVER_REQUIREMENTS)],
                          check=False, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install of the index servers failed:\n{done.stdout}{done.stderr}")
    (venv / ".complete").write_text(text)
    return venv / "bin"
