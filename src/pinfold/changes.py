"""What a build would do: nothing, update the current environment, or build afresh.

Buildout's ``.installed.cfg`` idea, done with a fingerprint: each finished environment
records the digests of what it was built from (``inputs``) and the pins it holds. The
plan compares them with the spec. An update clones the current environment (hard links)
and applies only the pin diff; anything that could change how artifacts were built or
installed (the interpreter, the build lock, pinfold, ``compile``, ``installer``, the
develop trees, their metadata files) means a full build.

The develop trees' Twisted plugin modules are inputs too (their caches are generated
from them): a module gained, lost or changed in a plugin folder the build knew means an
update, with no pin change if nothing else moved (the clone keeps the editable installs,
which point into the trees, and the plugins stage and the probes run again); a plugin
folder gained or lost means a full build (the editable install may not cover it). So
does a develop tree's plugin cache that is no longer as the build left it (those caches
are shared, and another build may have rewritten one): an update regenerates it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ._version import __version__
from .envdir import Environments
from .envlayout import damage
from .locks import split_pin
from .record import EnvRecord, TreeState, read_record
from .results import Plan
from .runner import Runner
from .spec import Spec
from .uptodate import digest, identity, layers_digest, rewritten_caches, tree_state

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
# Settings recorded by value: a clone keeps the old .pyc files (or has none) and was
# installed by the other installer, so a switch means a full build.
_SETTINGS = ("compile", "installer")
# Per develop tree: ``develop <tree>`` (its metadata files), ``plugins <tree>`` (its plugin modules).
_DEVELOP, _PLUGINS = "develop", "plugins"


def inputs_of(spec: Spec, runner: Runner) -> dict[str, str]:
    """Digests of everything an environment is built from (the locks hold the artifact hashes)."""
    build = spec.build_requirements
    inputs = {
        "env.yaml": layers_digest(spec),  # env.yaml and every file it extends
        "requirements": digest(spec.requirements.path),
        "build_requirements": digest(build.path if build else None),
        "python": identity(spec.python, runner),
        "pinfold": __version__,
        "compile": "true" if spec.compile else "false",
        "installer": spec.installer,
    }
    for tree in spec.develop:
        state = tree_state(tree, spec.final.plugin_caches.packages)
        inputs[f"{_DEVELOP} {tree}"] = fingerprint(state.metadata)
        inputs[f"{_PLUGINS} {tree}"] = fingerprint(state.plugins)
    return inputs


def fingerprint(inputs: dict[str, str]) -> str:
    """One digest of a mapping (all inputs; a develop tree's files), independent of its order."""
    return hashlib.sha256(repr(sorted(inputs.items())).encode()).hexdigest()


def pins_of(spec: Spec, markers: dict[str, str]) -> dict[str, str]:
    """The runtime pins that apply under ``markers``: name -> ``name==version``."""
    return {
        p.name: str(p) for p in spec.requirements.pins
        if p.applies(markers)
    }


def _label(tree: Path, root: Path) -> str:
    """A develop tree as the user wrote it: relative to env.yaml's folder when inside it."""
    return tree.relative_to(root).as_posix() if tree.is_relative_to(root) else str(tree)


def _diff(old: dict[str, str], new: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(gained, lost, changed) keys, each sorted."""
    return (sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys()),
            sorted(k for k in old.keys() & new.keys() if old[k] != new[k]))


def _words(gained: list[str], lost: list[str], changed: list[str]) -> list[str]:
    """``gained a, b``, ``lost c``, ``changed d``: those that apply."""
    return [f"{verb} {', '.join(keys)}" for verb, keys in
            (("gained", gained), ("lost", lost), ("changed", changed)) if keys]


def _tree_reasons(label: str, part: str, old: TreeState, new: TreeState) -> tuple[list[str], bool]:
    """Why ``part`` (metadata or plugins) of one develop tree changed; True: a full build."""
    if part == _DEVELOP:
        words = _words(*_diff(old.metadata, new.metadata)) or ["changed its metadata"]
        return [f"the develop tree {label} {w}" for w in words], True
    gained, lost, changed = _diff(old.plugins, new.plugins)
    # Folder keys end in "/": a plugin folder gained or lost.
    folders = [f"gained the plugin folder {k.rstrip('/')}" for k in gained if k.endswith("/")]
    folders += [f"lost the plugin folder {k.rstrip('/')}" for k in lost if k.endswith("/")]
    words = _words([k for k in gained if not k.endswith("/")], [k for k in lost if not k.endswith("/")],
                   changed)
    reasons = [f"the develop tree {label} {w}" for w in [*folders, *words]]
    return reasons or [f"the develop tree {label} changed its plugin modules"], bool(folders)


def _reasons(spec: Spec, changed: list[str], old: dict[str, str], new: dict[str, str],
             record: EnvRecord | None) -> tuple[list[str], bool]:
    """Why each changed input changed, in the inputs' order; True: only a full build will do."""
    reasons: list[str] = []
    full = record is None
    older = "not recorded (the environment was built by an older pinfold)"
    for key in changed:
        if key in _WHAT:
            reasons.append(_WHAT[key])
            full = full or key in _FULL
        elif record is None:  # a full build anyway; the reasons above say enough
            continue
        elif key in _SETTINGS:
            was = old.get(key)
            reasons.append(f"{key} {older}" if was is None else f"{key} changed: {was} -> {new[key]}")
            full = True
        else:
            part, _, name = key.partition(" ")
            tree = Path(name)
            if tree not in record.develop:  # a tree added to env.yaml: said once, by make_plan
                full = True
                continue
            label = _label(tree, spec.root)
            before = record.watch.develop.get(name) if record.watch.develop is not None else None
            if before is None:
                if part == _DEVELOP:
                    reasons.append(f"the develop tree {label}: its metadata and plugin modules were {older}")
                full = True
                continue
            why, needs_full = _tree_reasons(label, part, before,
                                            tree_state(tree, spec.final.plugin_caches.packages))
            reasons += why
            full = full or needs_full
    return reasons, full


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
    # A setting an older record lacks is known all the same when env.yaml did not change.
    same_spec = old_inputs.get("env.yaml") == inputs["env.yaml"]
    changed = [k for k in inputs if old_inputs.get(k) != inputs[k]
               and not (k in _SETTINGS and k not in old_inputs and same_spec)]
    reasons, needs_full = _reasons(spec, changed, old_inputs, inputs, record)

    def full(*why: str) -> Plan:
        return Plan(mode="full", reasons=(*reasons, *why), current=current, inputs=inputs)

    if fresh:
        return full("--fresh")
    if (why := damage(current, record.installed if record is not None else ())) is not None:
        return full(f"the current environment is damaged: {why}")
    # A develop tree's cache rewritten since (by another build, or by Twisted): regenerate it.
    rewritten = rewritten_caches(current, record) if record is not None else []
    reasons += [f"the plugin cache {_label(c, spec.root)} (in a develop tree) was rewritten or removed "
                "since the environment was built" for c in rewritten]
    if not changed and not rewritten:
        return Plan(mode="noop", current=current, inputs=inputs)
    if record is None:
        return full()
    if sorted(str(d) for d in record.develop) != sorted(str(d) for d in spec.develop):
        return full("the develop trees changed")
    if needs_full:
        return full()
    desired = pins_of(spec, record.python.markers)
    have = {split_pin(p)[0]: p for p in record.installed}
    # A name may be pinned once per target (under exclusive markers): only the pin that
    # applies to this environment's interpreter counts.
    new_hashes: dict[str, tuple[str, ...]] = {
        p.name: tuple(sorted(p.hashes)) for p in spec.requirements.pins
        if p.name in desired and p.applies(record.python.markers)}
    # Same version, other artifacts (a rebuilt wheel): pip would call it satisfied, so remove first.
    rehashed = [n for n in desired
                if have.get(n) == desired[n] and record.hashes.get(n) != new_hashes[n]]
    install = sorted(desired[n] for n in desired if have.get(n) != desired[n] or n in rehashed)
    remove = sorted([n for n in have if n not in desired] + rehashed)
    return Plan(mode="update", reasons=tuple(reasons), install=tuple(install), remove=tuple(remove),
                current=current, inputs=inputs)
