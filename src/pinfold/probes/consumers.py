"""The probes that do what the environment's consumers do, each in a fresh process.

env.yaml's ``final.probes`` ``imports``, ``scripts`` and ``commands``, and for each generated
script (``scripts:``) ``script NAME`` (it resolves) and, with ``probe:``, ``script NAME ARGS``.
One list, named once, for both stages that run them: the plugins stage of a build starts
them as soon as every plugin cache is final (nothing after that changes what they run: the
scripts stage comes before it), the probes stage runs the rest and reports them all.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..runner import Runner
from ..spec import Spec
from ..target import Target
from . import Probe, environment, scripts

__all__ = ["consumer_probes"]


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name} #{n}"
    taken.add(out)
    return out


#: A probe that runs a program does more than one that imports or resolves it: it starts first.
RUNS = 2.0


def consumer_probes(runner: Runner, target: Target, env_dir: Path, spec: Spec) -> list[Probe]:
    """The import, script and command probes of ``spec``, in report order, uniquely named.

    Their names start with ``import``, ``script`` or ``command``, so they never clash with
    the other probes' names.
    """
    options = spec.final.probes
    taken: set[str] = set()
    probes = [environment.import_probe(runner, target, m, _unique(f"import {m}", taken))
              for m in options.imports]
    for kind, items in (("script", options.scripts), ("command", options.commands)):
        probes += [Probe(_unique(f"{kind} {' '.join(item.argv)}", taken),
                         partial(environment.command, runner, env_dir, item.argv,
                                 timeout=item.timeout, root=spec.root, script=kind == "script"),
                         weight=RUNS)
                   for item in items]
    for gen in spec.scripts:
        probes.append(Probe(_unique(f"script {gen.name}", taken),
                            partial(scripts.resolves, runner, env_dir, gen)))
        if gen.probe is not None:
            argv = (gen.name, *gen.probe)
            probes.append(Probe(_unique(f"script {' '.join(argv)}", taken),
                                partial(environment.command, runner, env_dir, argv, timeout=60.0,
                                        root=spec.root, script=True), weight=RUNS))
    return probes
