"""The probes that do what the environment's consumers do, each in a fresh process.

env.yaml's ``final.probes`` ``imports``, ``scripts`` and ``commands``, and for each generated
script (``scripts:``) ``script NAME`` (it resolves) and, with ``probe:``, ``script NAME ARGS``.
A script with ``probe:`` is run once for both: a run that exits 0 imported its entry point's
module and called the entry point, which is what ``script NAME`` proves without calling it;
only when the run fails does ``script NAME`` start its own interpreter, to tell a script
that does not resolve from one that resolves and fails.
One list, named once, for both stages that run them: the plugins stage of a build starts
them as soon as every plugin cache is final (nothing after that changes what they run: the
scripts stage comes before it), the probes stage runs the rest and reports them all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..runner import Runner
from ..spec import Spec
from ..target import Target
from . import Outcome, Probe, environment, scripts

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


class _Once:
    """A check run at most once, whichever of the probes that share it asks first.

    Both get its outcome, or both the exception it raised (a crash of the check itself: a
    command that fails or cannot start is a ``fail`` outcome, not an exception).
    """

    def __init__(self, check: partial[Outcome]) -> None:
        self._check = check
        self._lock = threading.Lock()
        self._done: Outcome | Exception | None = None

    def __call__(self) -> Outcome:
        with self._lock:  # the other probe waits here for the same run: it never runs twice
            if self._done is None:
                try:
                    self._done = self._check()
                except Exception as exc:
                    self._done = exc
        if isinstance(self._done, Exception):
            raise self._done
        return self._done


def _resolves_by_run(resolve: Callable[[], Outcome], path: Path, run: _Once, shown: str) -> Outcome:
    """``script NAME`` for a script with ``probe:``: its run's exit 0 shows the entry point resolves.

    The script pinfold generated imports the entry point's module and calls the attribute:
    exit 0 means both happened, in a fresh interpreter with the script's own sys.path,
    environment and initialization. A run that fails may have failed before or after that,
    and a script pinfold did not write proves nothing by running: the script is then
    resolved in an interpreter of its own (without being called), as without ``probe:``.
    """
    entry = scripts.entry_of(path)
    try:
        ran = bool(entry) and run().status == "ok"
    except Exception:  # the run crashed (its own probe reports how): resolve it apart
        ran = False
    if not ran:
        return resolve()
    return Outcome(status="ok", summary=f"{entry} resolves: `{shown}` imported and called it "
                                        "in a fresh interpreter (exit 0)")


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
        name = _unique(f"script {gen.name}", taken)
        resolve = partial(scripts.resolves, runner, env_dir, gen)
        if gen.probe is None:
            probes.append(Probe(name, resolve))
            continue
        argv = (gen.name, *gen.probe)
        run = _Once(partial(environment.command, runner, env_dir, argv, timeout=60.0,
                            root=spec.root, script=True))
        if gen.kind == "interpreter":  # no entry point for its run to prove; its check is cheap
            probes.append(Probe(name, resolve))
        else:  # lighter than the run, so the run starts first (its time is its own) and this waits
            check = partial(_resolves_by_run, resolve, env_dir / "bin" / gen.name, run, " ".join(argv))
            probes.append(Probe(name, check))
        probes.append(Probe(_unique(f"script {' '.join(argv)}", taken), run, weight=RUNS))
    return probes
