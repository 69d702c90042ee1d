"""``pinfold sbom``: a CycloneDX JSON SBOM of the environment ``path`` points to.

Read from what is on disk, without starting the target interpreter and without network:
the environment record (``pinfold.json``: the pins installed, their lock hashes, the
interpreter, the environment digest), the installed ``*.dist-info/METADATA`` files (read
with :mod:`importlib.metadata` over the environment's site-packages, in-process) and the
build lock env.yaml names. The document is made and serialized by CycloneDX's own library
(``cyclonedx-python-lib``), never by hand; only this module imports it, and only the
``sbom`` command imports this module, so builds and ``--help`` never load it.

What goes where (README, "pinfold sbom", says the same for users):

- each installed distribution is a ``library`` component with ``scope: required``: name,
  version, ``pkg:pypi`` purl, the sha256 (and other) hashes the lock gave it (every artifact
  the lock allows for that pin: the installer accepted exactly these), licences from
  ``License-Expression``, else ``License``, else the licence classifiers, links from
  ``Project-URL``, ``Home-page`` and ``Download-URL``, and where it came from: the index
  places of env.yaml as ``distribution`` references (an index URL with its password shown
  as ``****``). A develop tree gets no purl (it is not the PyPI project of that name) and
  names its folder in ``pinfold:develop-tree``; a distribution neither locked nor a develop
  tree is marked ``pinfold:origin = unlocked``;
- each pin of the build lock is a component too, marked ``pinfold:phase = build``; one that
  is not installed in the environment has ``scope: excluded`` (CycloneDX: "not included in
  the runtime environment"): build-time only. CycloneDX 1.6's ``lifecycles`` are a property
  of the whole document, not of a component, so they cannot mark these; the document's
  lifecycle is ``post-build``;
- ``metadata.properties``: the environment digest, its folder, the record's fingerprint,
  the installer and the interpreter (executable, version, ABI, platform);
- ``dependencies``: the environment depends on every installed distribution, and each
  distribution on the installed ones its ``Requires-Dist`` names for this interpreter.

Deterministic: the serial number is a UUID derived from the environment's folder and
digest (and pinfold's version), the timestamp is when the build finished (the record's
mtime) or ``SOURCE_DATE_EPOCH`` when set, and the library sorts components, properties and
references: the same environment gives the same bytes.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .envdir import Environments
from .envlayout import site_packages
from .errors import SpecError
from .paths import display_path
from .record import STATE_FILE, EnvRecord, read_record
from .runner import redact

if TYPE_CHECKING:
    from cyclonedx.model import ExternalReference, Property
    from cyclonedx.model.license import License

    from .locks import Pin
    from .spec import Spec

__all__ = ["PREFIX", "SPEC_VERSION", "SbomReport", "make_sbom"]

#: The CycloneDX specification version written.
SPEC_VERSION = "1.6"
#: The namespace of pinfold's own properties (CycloneDX: ``name`` is free text, a prefix
#: keeps one tool's apart from another's).
PREFIX = "pinfold:"
#: The root of the serial numbers' UUIDs (version 5: a name-based, reproducible UUID).
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/pinfold/#sbom")

#: ``Project-URL`` labels (normalized as PEP 753 does: lower case, letters only) -> the
#: CycloneDX external reference type's value; any other label is ``other``.
_URL_LABELS: dict[str, str] = {
    **dict.fromkeys(("homepage", "home", "website"), "website"),
    **dict.fromkeys(("source", "sourcecode", "repository", "code", "git", "github", "gitlab",
                     "vcs", "scm"), "vcs"),
    **dict.fromkeys(("documentation", "docs", "doc"), "documentation"),
    **dict.fromkeys(("issues", "bugtracker", "tracker", "bugs", "issuetracker", "bugreports"),
                    "issue-tracker"),
    **dict.fromkeys(("changelog", "changes", "releasenotes", "history", "whatsnew", "news"),
                    "release-notes"),
    "download": "distribution",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class SbomReport:
    """What ``pinfold sbom`` made: the document and how many components it names."""

    #: The environment (its versioned folder) described.
    env_dir: Path
    #: The environment digest (``sha256:...``), or None for an environment of an older pinfold.
    digest: str | None
    #: ``urn:uuid:...``.
    serial_number: str
    #: Every component: installed distributions and build-only ones.
    components: int
    #: Installed distributions (develop trees included) ...
    runtime: int
    #: ... of which develop trees ...
    develop: int
    #: ... and the build lock's pins (also counted in ``runtime`` when installed).
    build: int
    #: The CycloneDX JSON text.
    text: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (without the document itself)."""
        return {"env_dir": str(self.env_dir), "digest": self.digest, "spec_version": SPEC_VERSION,
                "serial_number": self.serial_number, "components": self.components,
                "runtime": self.runtime, "develop": self.develop, "build": self.build}


@dataclass(frozen=True, slots=True)
class _Dist:
    """One installed distribution, as its metadata says."""

    name: str  # canonical
    version: str
    meta: metadata.PackageMetadata
    requires: tuple[str, ...]
    develop_tree: str | None


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name  # lazy: only where it is used

    return str(canonicalize_name(name))


def _field(meta: metadata.PackageMetadata, key: str) -> str:
    """A core-metadata field's first value, or "" when it is absent."""
    values = meta.get_all(key) or []
    return str(values[0]) if values else ""


def _normal(version: str) -> str:
    """``version`` as packaging writes it (as the lock's pins are), or as it is."""
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def _develop_tree(dist: metadata.Distribution) -> str | None:
    """The folder of an editable install (PEP 610 ``direct_url.json``), or None."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("dir_info"), dict):
        return None
    url = data.get("url")
    if not data["dir_info"].get("editable") or not isinstance(url, str):
        return None
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path) if url.startswith("file:") else redact(url)


def _installed(env_dir: Path) -> Iterator[_Dist]:
    """Every distribution in the environment's site-packages, the first of a name only (the
    one Python imports), read without running anything."""
    seen: set[str] = set()
    paths = [str(p) for p in site_packages(env_dir)]
    for dist in metadata.distributions(path=paths):
        meta = dist.metadata
        raw = _field(meta, "Name") if meta is not None else ""
        if not raw:
            continue  # a dist-info without a readable METADATA names nothing
        name = _canonical(raw)
        if name in seen:
            continue
        seen.add(name)
        yield _Dist(name=name, version=dist.version, meta=meta,
                    requires=tuple(dist.requires or ()), develop_tree=_develop_tree(dist))


def _current(spec: Spec) -> tuple[Path, EnvRecord]:
    current = Environments(spec.path).current()
    if current is None:
        raise SpecError(f"there is no environment at {display_path(spec.path)} yet: nothing to describe",
                        tip="run `pinfold build` first")
    record = read_record(current)
    if record is None:
        raise SpecError(f"{display_path(current / STATE_FILE)}: not an environment record this "
                        f"pinfold ({__version__}) can read", tip="run `pinfold build --fresh`")
    return current, record


def _build_pins(spec: Spec, record: EnvRecord) -> tuple[Pin, ...]:
    """The build lock's pins, refused when the lock changed since the environment was built:
    the SBOM would name build dependencies the environment was not built with."""
    lock = spec.build_requirements
    if lock is None:
        return ()
    import hashlib

    built = record.inputs.get("build_requirements")
    try:
        now = hashlib.sha256(lock.path.read_bytes()).hexdigest()
    except OSError:
        now = None
    if built is not None and now != built:
        raise SpecError(f"{display_path(lock.path)} changed since the environment at "
                        f"{display_path(spec.path)} was built: its build dependencies are not known",
                        tip="run `pinfold build`, then `pinfold sbom` again")
    return lock.pins


def _timestamp(env_dir: Path) -> datetime:
    """``SOURCE_DATE_EPOCH`` when set (the reproducible-builds convention), else when the
    build finished: the record is written last."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.fromtimestamp(int((env_dir / STATE_FILE).stat().st_mtime), UTC)


def _licenses(meta: metadata.PackageMetadata) -> list[License]:
    """Core metadata's licence, best first: ``License-Expression`` (PEP 639), ``License``
    (free text: an SPDX id or expression when it is one, else a name), the classifiers."""
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.exception.factory import InvalidLicenseExpressionException
    from cyclonedx.model.license import LicenseAcknowledgement

    factory = LicenseFactory()
    declared = LicenseAcknowledgement.DECLARED
    expression = _field(meta, "License-Expression").strip()
    if expression:
        try:
            return [factory.make_with_expression(expression, acknowledgement=declared)]
        except InvalidLicenseExpressionException:
            return [factory.make_with_name(expression, acknowledgement=declared)]
    text = _field(meta, "License").strip()
    # Some projects put the whole licence text into `License`: not a name; the classifiers
    # (or, without them, its first line) say it better.
    if text and text.upper() != "UNKNOWN" and "\n" not in text and len(text) <= 100:
        return [factory.make_from_string(text, license_acknowledgement=declared)]
    classifiers = sorted({c.split("::")[-1].strip() for c in meta.get_all("Classifier") or ()
                          if c.startswith("License ::") and c.count("::") >= 2})
    if classifiers:
        return [factory.make_with_name(c, acknowledgement=declared) for c in classifiers]
    if text and text.upper() != "UNKNOWN":
        return [factory.make_with_name(text.splitlines()[0].strip()[:100], acknowledgement=declared)]
    return []


def _reference(kind: str, url: str, comment: str | None = None) -> ExternalReference | None:
    from cyclonedx.exception.model import InvalidUriException
    from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri

    try:
        return ExternalReference(type=ExternalReferenceType(kind), url=XsUri(url.strip()),
                                 comment=comment)
    except (InvalidUriException, ValueError):
        return None  # a malformed URL in someone's metadata is left out, not fatal


def _links(meta: metadata.PackageMetadata) -> Iterator[ExternalReference | None]:
    """The project's own links, from its metadata."""
    for entry in meta.get_all("Project-URL") or ():
        label, sep, url = entry.partition(",")
        if not sep:
            continue
        key = "".join(ch for ch in label.lower() if ch.isalpha())
        yield _reference(_URL_LABELS.get(key, "other"), url, label.strip())
    if home := _field(meta, "Home-page").strip():
        yield _reference("website", home, "Home-page")
    if download := _field(meta, "Download-URL").strip():
        yield _reference("distribution", download, "Download-URL")


def _index_places(spec: Spec) -> list[str]:
    """Where env.yaml lets artifacts come from: wheelhouses as file URLs, the index URL
    with any password as ``****``."""
    places = [folder.as_uri() for folder in spec.index.find_links]
    if spec.index.url:
        places.append(redact(spec.index.url))
    return places


def _prop(name: str, value: str) -> Property:
    from cyclonedx.model import Property

    return Property(name=PREFIX + name, value=value)


def _requires(dist: _Dist, markers: dict[str, str], installed: Iterable[str]) -> list[str]:
    """The installed distributions ``dist`` requires for this interpreter (no extras)."""
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    names = set(installed)
    for line in dist.requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({**markers, "extra": ""}):
            continue
        name = _canonical(req.name)
        if name in names and name != dist.name:
            out.append(name)
    return sorted(set(out))


def make_sbom(spec: Spec) -> SbomReport:
    """The SBOM of ``spec``'s current environment (see the module's docstring for what is in it).

    Raises :class:`SpecError` when there is no environment (run ``pinfold build``) or its
    build lock changed since it was built.
    """
    from cyclonedx.contrib.hash.factories import HashTypeFactory
    from cyclonedx.contrib.this.builders import this_component
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentScope, ComponentType
    from cyclonedx.model.lifecycle import LifecyclePhase, PredefinedLifecycle
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    env_dir, record = _current(spec)
    build_pins = _build_pins(spec, record)
    locked = record.hashes
    installer = record.inputs.get("installer", "pip")
    places = [r for r in (_reference("distribution", p, f"{installer}'s index (env.yaml)")
                          for p in _index_places(spec)) if r is not None]
    hashes = HashTypeFactory()

    def hash_types(values: Iterable[str]) -> list[Any]:
        return [hashes.from_composite_str(v) for v in sorted(values)]

    builds = {(str(p.name), str(p.version)): p for p in build_pins}  # Version: normalized
    dists = sorted(_installed(env_dir), key=lambda d: d.name)
    components: dict[str, Component] = {}
    refs: dict[str, str] = {}  # installed canonical name -> bom-ref
    develop = 0
    for dist in dists:
        props = [_prop("phase", "runtime")]
        purl: PackageURL | None = PackageURL(type="pypi", name=dist.name, version=dist.version)
        refs_: list[ExternalReference | None] = list(_links(dist.meta))
        if dist.develop_tree is not None:
            develop += 1
            purl = None
            props += [_prop("origin", "develop"), _prop("develop-tree", dist.develop_tree)]
        elif dist.name in locked:
            props.append(_prop("origin", "lock"))
            refs_ += places
        else:
            props.append(_prop("origin", "unlocked"))
        if (pin := builds.pop((dist.name, _normal(dist.version)), None)) is not None:
            props.append(_prop("phase", "build"))
            props += [_prop("needed-by", v) for v in pin.via]
        ref = str(purl) if purl is not None else f"develop:{dist.name}@{dist.version}"
        refs[dist.name] = ref
        components[ref] = Component(
            name=dist.name, version=dist.version, type=ComponentType.LIBRARY, bom_ref=ref, purl=purl,
            scope=ComponentScope.REQUIRED, description=_field(dist.meta, "Summary").strip() or None,
            hashes=hash_types(locked.get(dist.name, ())), licenses=_licenses(dist.meta),
            external_references=[r for r in refs_ if r is not None], properties=props)
    for (name, version), pin in sorted(builds.items()):
        purl = PackageURL(type="pypi", name=name, version=version)
        components[str(purl)] = Component(
            name=name, version=version, type=ComponentType.LIBRARY, bom_ref=str(purl), purl=purl,
            scope=ComponentScope.EXCLUDED, hashes=hash_types(pin.hashes), external_references=places,
            properties=[_prop("phase", "build"), *(_prop("needed-by", v) for v in pin.via)])

    python = record.python
    markers = python.markers
    root = Component(
        name=spec.path.name, type=ComponentType.APPLICATION, bom_ref="pinfold-environment",
        description=f"the Python environment at {spec.path}, built by pinfold from {record.spec}")
    meta_props = [
        _prop("environment", str(env_dir)), _prop("path", str(spec.path)),
        _prop("fingerprint", record.fingerprint), _prop("installer", installer),
        _prop("built-by", f"pinfold {record.pinfold}"),
        _prop("python:executable", python.executable), _prop("python:version", python.version),
        _prop("python:abi", python.abi),
        *(_prop(f"python:{key}", markers[key]) for key in
          ("implementation_name", "platform_machine", "platform_system") if key in markers),
        *(_prop("index", p) for p in _index_places(spec)),
    ]
    if record.digest is not None:
        meta_props.append(_prop("environment-digest", record.digest))
    pinfold_tool = Component(name="pinfold", version=__version__, type=ComponentType.APPLICATION,
                             purl=PackageURL(type="pypi", name="pinfold", version=__version__))
    serial = uuid.uuid5(_NAMESPACE, f"{env_dir}\n{record.digest or record.fingerprint}\n{__version__}")
    bom = Bom(
        serial_number=serial,
        metadata=BomMetaData(
            timestamp=_timestamp(env_dir), component=root, properties=meta_props,
            lifecycles=[PredefinedLifecycle(LifecyclePhase.POST_BUILD)],
            tools=ToolRepository(components=[pinfold_tool, this_component()])),
        components=components.values())
    by_ref = {c.bom_ref.value: c for c in components.values()}
    bom.register_dependency(root, [by_ref[refs[d.name]] for d in dists])
    for dist in dists:
        needs = _requires(dist, markers, refs)
        bom.register_dependency(by_ref[refs[dist.name]], [by_ref[refs[n]] for n in needs])
    with warnings.catch_warnings():
        # The library warns about what it finds incomplete; the library never prints, and
        # the graph is as complete as the metadata makes it.
        warnings.simplefilter("ignore")
        text = JsonV1Dot6(bom).output_as_string(indent=2)
    return SbomReport(env_dir=env_dir, digest=record.digest, serial_number=serial.urn,
                      components=len(components), runtime=len(dists), develop=develop,
                      build=len(build_pins), text=text + "\n")
