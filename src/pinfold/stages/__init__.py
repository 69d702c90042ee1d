"""The build stages, numbered in the order they run (see :mod:`pinfold.pipeline`).

Each stage is one small class (a :class:`Stage`) with ``problems`` (checked for every
stage before anything is touched), ``skip_reason`` and ``run``; the base class gives
the first two defaults. Stages couple only through the typed fields of the
:class:`Context` (``ctx.outputs`` for their results). Which stages a build runs, a full
build or an update, is chosen by :mod:`pinfold.pipeline`: an update clones the current
environment (:class:`CloneCurrent`), applies the plan's pin diff (:class:`ApplyPlan`)
and keeps the develop installs (:class:`KeptDevelop`).
"""

from __future__ import annotations

from .base import Context, Stage
from .s1_preflight import Preflight
from .s2_create import CloneCurrent, CreateFresh
from .s3_install import ApplyPlan, InstallLock
from .s4_develop import Develop, KeptDevelop
from .s5_compile import Compile
from .s6_scripts import Scripts
from .s7_plugins import PluginCaches
from .s8_probes import Probes

__all__ = [
    "ApplyPlan",
    "CloneCurrent",
    "Compile",
    "Context",
    "CreateFresh",
    "Develop",
    "InstallLock",
    "KeptDevelop",
    "PluginCaches",
    "Preflight",
    "Probes",
    "Scripts",
    "Stage",
]
