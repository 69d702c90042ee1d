"""What a build would do: nothing, update the current environment, or build afresh.

Buildout's ``.installed.cfg`` idea, done with a fingerprint: each finished environment
records the digests of what it was built from (``inputs``) and the pins it holds. The
plan compares them with the spec. An update clones the current environment (hard links)
and applies only the pin diff; anything that could change how artifacts were built
(the interpreter, the build lock, pinfold, the develop trees) means a full build.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import __version__
from .envdir import Environments, damage
from .locks import split_pin
from .runner import Runner
from .spec import Spec
from .uptodate import digest, identity

__all__ = ["Plan", "inputs_of", "make_plan", "pins_of"]

_WHAT = {
    "env.yaml": "env.yaml changed",
    "requirements": "the runtime lock changed",
    "build_requirements": "the build lock changed",
    "python": "the interpreter changed",
    "pinfold": "pinfold's version changed",
}
# Inputs whose change means artifacts may be built differently: start from nothing.
_FULL = ("python", "build_requirements", "pinfold")


def inputs_of(spec: Spec, runner: Runner) -> dict[str, str]:
    """Digests of everything an environment is built from (the locks hold the artifact hashes)."""
    build = spec.build_requirements
    return {
        "env.yaml": digest(spec.file),
        "requirements": digest(spec.requirements.path),
        "build_requirements": digest(build.path if build else None),
        "python": identity(spec.python, runner),
        "pinfold": __version__,
    }


def fingerprint(inputs: dict[str, str]) -> str:
    """One digest of all inputs."""
    return hashlib.sha256(repr(sorted(inputs.items())).encode()).hexdigest()


def pins_of(spec: Spec, markers: dict[str, str]) -> dict[str, str]:
    """The runtime pins that apply under ``markers``: name -> ``name==version``."""
    return {
        p.name: str(p) for p in spec.requirements.pins
        if p.applies(markers)
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What ``pinfold build`` would do now."""

    mode: Literal["noop", "update", "full"]
    #: Why: which inputs changed, or why a full build is needed.
    reasons: tuple[str, ...] = ()
    #: ``name==version`` pins to install (update: only those that moved or are new).
    install: tuple[str, ...] = ()
    #: Names to uninstall (update: pins removed from the lock, or whose hashes changed).
    remove: tuple[str, ...] = ()
    #: The current environment (the base of an update), if any.
    current: Path | None = None
    #: The digests of the spec's inputs, recorded in the new environment.
    inputs: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"mode": self.mode, "reasons": list(self.reasons), "install": list(self.install),
                "remove": list(self.remove), "current": str(self.current) if self.current else None}


def make_plan(spec: Spec, envs: Environments, runner: Runner, *, fresh: bool = False,
              inputs: dict[str, str] | None = None) -> Plan:
    """Compare the current environment's record with ``spec``; start no pip.

    ``inputs``: the spec's digests when already known (a build plans twice, around its lock).
    """
    inputs = inputs if inputs is not None else inputs_of(spec, runner)
    current = envs.current()
    if current is None:
        return Plan(mode="full", reasons=("there is no environment yet",), inputs=inputs)
    state = envs.state(current) or {}
    old_inputs: dict[str, str] = state.get("inputs", {})
    installed: list[str] = state.get("installed", [])
    changed = [k for k in inputs if old_inputs.get(k) != inputs[k]]
    reasons = [_WHAT[k] for k in changed]

    def full(*why: str) -> Plan:
        return Plan(mode="full", reasons=(*reasons, *why), current=current, inputs=inputs)

    if fresh:
        return full("--fresh")
    if (why := damage(current, installed)) is not None:
        return full(f"the current environment is damaged: {why}")
    if not changed:
        return Plan(mode="noop", current=current, inputs=inputs)
    if any(k in _FULL for k in changed):
        return full()
    if sorted(state.get("develop", [])) != sorted(str(d) for d in spec.develop):
        return full("the develop trees changed")
    markers: dict[str, str] = state.get("python", {}).get("markers", {})
    desired = pins_of(spec, markers)
    have = {split_pin(p)[0]: p for p in installed}
    old_hashes: dict[str, list[str]] = state.get("hashes", {})
    new_hashes: dict[str, list[str]] = {
        p.name: sorted(p.hashes) for p in spec.requirements.pins if p.name in desired}
    # Same version, other artifacts (a rebuilt wheel): pip would call it satisfied, so remove first.
    rehashed = [n for n in desired if have.get(n) == desired[n] and old_hashes.get(n) != new_hashes[n]]
    install = sorted(desired[n] for n in desired if have.get(n) != desired[n] or n in rehashed)
    remove = sorted([n for n in have if n not in desired] + rehashed)
    return Plan(mode="update", reasons=tuple(reasons), install=tuple(install), remove=tuple(remove),
                current=current, inputs=inputs)
