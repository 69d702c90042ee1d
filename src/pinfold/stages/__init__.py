"""The build stages, in the order they run (the file names say it too).

Each stage is one small class with ``problems`` (checked for every stage before
anything is touched), ``skip_reason`` and ``run``.
"""

from __future__ import annotations

from .base import Context, Stage
from .s1_preflight import Preflight
from .s2_create import Create
from .s3_install import Install
from .s4_develop import Develop
from .s5_compile import Compile
from .s6_plugins import PluginCaches
from .s7_probes import Probes

__all__ = ["BUILD_STAGES", "Context", "Stage"]

#: The stage sequence of ``pinfold build``.
BUILD_STAGES: tuple[type[Stage], ...] = (Preflight, Create, Install, Develop, Compile, PluginCaches,
                                         Probes)
