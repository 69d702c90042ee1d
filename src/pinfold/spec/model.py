"""What a valid env.yaml says: frozen dataclasses, one docstring or comment per field.

Made only by :func:`pinfold.spec.load_spec`, which validates everything first; every
path in them is absolute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..locks import Lock
from ..needs import NeedsSpec

__all__ = [
    "SCHEMA_VERSION",
    "FinalSpec",
    "GeneratedScript",
    "IndexSpec",
    "NeedsSpec",
    "PluginCacheSpec",
    "ProbeSpec",
    "ScriptKind",
    "ScriptProbe",
    "Spec",
    "TargetSpec",
]

#: The env.yaml schema this pinfold reads (the ``version`` key).
SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexSpec:
    """The only places artifacts may come from."""

    #: Local folders of wheels and sdists (pip ``--find-links``), absolute.
    find_links: tuple[Path, ...] = ()
    #: A PEP 503 simple index the user runs (pypiserver, devpi), or None. It may carry
    #: ``user:password@``: pass it on, never show it (:func:`pinfold.index.redact`).
    url: str | None = None
    #: A CA bundle (PEM) that replaces the default trust store for ``url``, absolute, or None.
    cert: Path | None = None
    #: Seconds to wait for the index server at each connection or read.
    timeout: float = 15.0
    #: How many times a failed request to the index server is tried again.
    retries: int = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class PluginCacheSpec:
    """Options of the Twisted plugin-cache stage."""

    #: Run the stage at all (it also runs only when Twisted is installed).
    enabled: bool = True
    #: Plugin packages beyond ``twisted.plugins`` and those found automatically.
    packages: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ScriptProbe:
    """A console script (or any command) to run: an argv list, never a shell string."""

    argv: tuple[str, ...]
    timeout: float = 60.0
    where: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeSpec:
    """Options of the sanity probes (the last stage, and ``pinfold check``)."""

    enabled: bool = True
    #: Reactor name for the consumer-bootstrap probe (``installReactor(name)``).
    reactor: str = "poll"
    #: Plugin modules allowed to install the reactor on import (a warning, not a failure).
    allow_reactor_import: tuple[str, ...] = ()
    #: Modules that must import.
    imports: tuple[str, ...] = ()
    #: Console scripts that must run and exit 0.
    scripts: tuple[ScriptProbe, ...] = ()
    #: Any other command to run inside the environment (argv lists).
    commands: tuple[ScriptProbe, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class FinalSpec:
    """Options of the final stages."""

    plugin_caches: PluginCacheSpec = field(default_factory=PluginCacheSpec)
    probes: ProbeSpec = field(default_factory=ProbeSpec)


#: What a generated script runs: an entry point, an installed console script under another
#: name, a Python-like interpreter, or zope.testrunner over some folders.
ScriptKind = Literal["entry_point", "console_script", "interpreter", "test_runner"]


@dataclass(frozen=True, kw_only=True, slots=True)
class GeneratedScript:
    """One entry of ``scripts:``: an executable pinfold writes into the environment's ``bin/``."""

    #: The file name in ``bin/`` (and of the launcher in ``bin_dir``).
    name: str
    kind: ScriptKind
    #: ``module:attr`` for ``entry_point`` and ``test_runner``; the console script's name for
    #: ``console_script`` (resolved from the installed metadata when the script is written);
    #: empty for ``interpreter``.
    target: str = ""
    #: Python source run before the entry point (after ``environment`` is set).
    initialization: str = ""
    #: A Python expression, the callable's arguments (``sys.argv[1:]``); empty: no argument.
    arguments: str = ""
    #: Folders put first on ``sys.path`` for this script only, absolute.
    extra_paths: tuple[Path, ...] = ()
    #: Environment variables set before ``initialization``, in env.yaml's order.
    environment: tuple[tuple[str, str], ...] = ()
    #: The folder the script changes to before ``initialization``, absolute, or None.
    working_directory: Path | None = None
    #: ``test_runner``: the folders given to zope.testrunner as ``--test-path``, absolute.
    test_paths: tuple[Path, ...] = ()
    #: ``test_runner``: arguments put before the ``--test-path`` ones (zc.recipe.testrunner's
    #: ``defaults``); the command line comes after both.
    defaults: tuple[str, ...] = ()
    #: Arguments to run the script with as a probe, expecting exit 0; None: only resolve it.
    probe: tuple[str, ...] | None = None
    #: ``env.yaml:LINE:COL`` of the entry, for messages found after validation.
    where: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetSpec:
    """One entry of ``targets``: an interpreter, or a (Python version, platform) pair.

    The locks are written valid for every target, and a build for an interpreter that
    matches none is refused.
    """

    #: An interpreter: the executable found for the path or name env.yaml gives; "" for a pair.
    python: str = ""
    #: A pair: ``"3.12"`` (major.minor, CPython) ...
    python_version: str = ""
    #: ... on Linux with this machine (``x86_64``, ``aarch64``) ...
    machine: str = ""
    #: ... and glibc of at least this version: the manylinux wheels that fit.
    glibc: tuple[int, int] = (2, 17)
    #: As env.yaml wrote it, for messages.
    label: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Spec:
    """A parsed, validated env.yaml. Paths are absolute."""

    #: The env.yaml file itself.
    file: Path
    #: Every file the spec was merged from, in the order applied: the files env.yaml
    #: ``extends`` first, env.yaml last (just env.yaml without ``extends``).
    layers: tuple[Path, ...] = ()
    #: The interpreter the environment is for: the executable found for env.yaml's ``python``
    #: (the one running pinfold when it is not given).
    python: str
    #: Where the environment lives.
    path: Path
    #: The only places artifacts come from.
    index: IndexSpec
    #: The runtime lock and the build lock, parsed.
    requirements: Lock
    build_requirements: Lock | None
    #: Local source trees installed editable.
    develop: tuple[Path, ...] = ()
    final: FinalSpec = field(default_factory=FinalSpec)
    #: The top-level needs and extra build needs the locks are compiled from (``pinfold lock``).
    needs: NeedsSpec | None = None
    build_needs: NeedsSpec | None = None
    #: The installer backend: ``pip`` (default) or ``uv``; both equally hermetic.
    installer: Literal["pip", "uv"] = "pip"
    #: Byte-compile the environment once after install and develop (in parallel).
    compile: bool = True
    #: Scripts generated into the environment's ``bin/`` (``scripts:``).
    scripts: tuple[GeneratedScript, ...] = ()
    #: A folder of launchers for ``scripts`` that go through ``path`` (``bin_dir:``), or None.
    bin_dir: Path | None = None
    #: The interpreters (or version/platform pairs) the locks are for; empty: ``python`` alone.
    targets: tuple[TargetSpec, ...] = ()

    @property
    def root(self) -> Path:
        """The folder of env.yaml: relative paths in it start here."""
        return self.file.parent
