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
    "IndexSpec",
    "NeedsSpec",
    "PluginCacheSpec",
    "ProbeSpec",
    "ScriptProbe",
    "Spec",
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

    @property
    def root(self) -> Path:
        """The folder of env.yaml: relative paths in it start here."""
        return self.file.parent
