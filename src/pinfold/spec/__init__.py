"""env.yaml: the model (:mod:`.model`), a located YAML reader (:mod:`.yamlnodes`), the loader.

``load_spec`` reads and validates env.yaml and both locks into a frozen :class:`Spec`,
reporting every problem together, each located (``env.yaml:LINE:COL: key: message``).
"""

from __future__ import annotations

from .load import Layers, Purpose, load_layers, load_spec
from .model import (
    SCHEMA_VERSION,
    FinalSpec,
    GeneratedScript,
    IndexSpec,
    NeedsSpec,
    PluginCacheSpec,
    ProbeSpec,
    ScriptProbe,
    Spec,
)

__all__ = [
    "SCHEMA_VERSION",
    "FinalSpec",
    "GeneratedScript",
    "IndexSpec",
    "Layers",
    "NeedsSpec",
    "PluginCacheSpec",
    "ProbeSpec",
    "Purpose",
    "ScriptProbe",
    "Spec",
    "load_layers",
    "load_spec",
]
