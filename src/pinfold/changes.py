"""What a build would do: nothing, update the current environment, or build afresh.

Buildout's ``.installed.cfg`` idea, done with a fingerprint: each finished environment
records the digests of what it was built from (``inputs``) and the pins it holds. The
plan compares them with the spec. An update clones the current environment (hard links)
and applies only the pin diff; anything that could change how artifacts were built
(the interpreter, the build lock, pinfold, the develop trees) means a full build.
"""

from __future__ import annotations

import hashlib

from ._version import __version__
from .envdir import Environments, damage
from .locks import split_pin
from .record import read_record
from .results import Plan
from .runner import Runner
from .spec import Spec
from .uptodate import digest, identity, layers_digest

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
        "env.yaml": layers_digest(spec),  # env.yaml and every file it extends
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


def make_plan(spec: Spec, envs: Environments, runner: Runner, *, fresh: bool = False,
              inputs: dict[str, str] | None = None) -> Plan:
    """Compare the current environment's record with ``spec``; start no pip.

    ``inputs``: the spec's digests when already known (a build plans twice, around its lock).
    """
    inputs = inputs if inputs is not None else inputs_of(spec, runner)
    current = envs.current()
    if current is None:
        return Plan(mode="full", reasons=("there is no environment yet",), inputs=inputs)
    record = read_record(current)
    # No record it can read: every input counts as changed (the interpreter too: a full build).
    old_inputs = record.inputs if record is not None else {}
    changed = [k for k in inputs if old_inputs.get(k) != inputs[k]]
    reasons = [_WHAT[k] for k in changed]

    def full(*why: str) -> Plan:
        return Plan(mode="full", reasons=(*reasons, *why), current=current, inputs=inputs)

    if fresh:
        return full("--fresh")
    if (why := damage(current, record.installed if record is not None else ())) is not None:
        return full(f"the current environment is damaged: {why}")
    if not changed:
        return Plan(mode="noop", current=current, inputs=inputs)
    if record is None or any(k in _FULL for k in changed):
        return full()
    if sorted(str(d) for d in record.develop) != sorted(str(d) for d in spec.develop):
        return full("the develop trees changed")
    desired = pins_of(spec, record.python.markers)
    have = {split_pin(p)[0]: p for p in record.installed}
    new_hashes: dict[str, tuple[str, ...]] = {
        p.name: tuple(sorted(p.hashes)) for p in spec.requirements.pins if p.name in desired}
    # Same version, other artifacts (a rebuilt wheel): pip would call it satisfied, so remove first.
    rehashed = [n for n in desired
                if have.get(n) == desired[n] and record.hashes.get(n) != new_hashes[n]]
    install = sorted(desired[n] for n in desired if have.get(n) != desired[n] or n in rehashed)
    remove = sorted([n for n in have if n not in desired] + rehashed)
    return Plan(mode="update", reasons=tuple(reasons), install=tuple(install), remove=tuple(remove),
                current=current, inputs=inputs)
