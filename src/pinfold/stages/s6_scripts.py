"""Stage 6: the generated scripts of ``scripts:`` in the environment's ``bin/``, and ``bin_dir`` launchers.

The scripts are part of the versioned environment, so they switch and roll back with it;
an update's clone holds the previous build's scripts, and this stage removes those env.yaml
no longer lists and writes the others anew. What the files hold is :mod:`pinfold.genscripts`.
Launchers in ``bin_dir`` are outside the versioned environment: the stage writes those asked
for (they go through ``path``, so until the switch they run the current environment's
scripts) and only records the stale ones, launchers this env.yaml wrote (their header names
it) that it no longer lists; the pipeline removes them once the new environment is switched
in, so a failed build removes no launcher, and another env.yaml's launchers are never removed.
It runs before the plugins stage (it writes no plugin folder), so that the plugins stage can
start the scripts' probes as soon as the plugin caches are final.
A launcher in ``bin_dir`` that pinfold did not write is bad input found before anything is
built (exit 2); so are, right after install, a console script no installed distribution
provides and a name already taken in ``bin/`` by a file pinfold did not write.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ..errors import Problem, SpecError
from ..genscripts import (
    foreign_launchers,
    generated_by_pinfold,
    generated_for,
    installed_console_scripts,
    render_launcher,
    render_script,
    write_script,
)
from ..paths import display_path
from .base import Context, Stage

__all__ = ["Scripts"]


class Scripts(Stage):
    """Write ``bin/<name>`` for each entry of ``scripts:``, remove stale ones, refresh launchers."""

    name: ClassVar[str] = "scripts"

    def problems(self, ctx: Context) -> list[Problem]:
        # A foreign launcher is bad input, not a tool problem: exit 2, before anything is built.
        if found := foreign_launchers(ctx.spec):
            raise SpecError(f"bin_dir {display_path(ctx.spec.bin_dir or Path())}: "
                            f"{len(found)} file(s) in the way of generated launchers", found,
                            tip="pinfold only replaces launchers it wrote (they carry its header)")
        return []

    def skip_reason(self, ctx: Context) -> str | None:
        bin_ = ctx.env_dir / "bin"
        if ctx.spec.scripts or ctx.spec.bin_dir is not None:
            return None
        if bin_.is_dir() and any(generated_by_pinfold(p) for p in bin_.iterdir()):
            return None  # an update from an environment that had scripts: remove them
        return "env.yaml has no scripts"

    def run(self, ctx: Context) -> str:
        spec, bin_ = ctx.spec, ctx.env_dir / "bin"
        wanted = {s.name for s in spec.scripts}
        # An update's clone holds the previous build's scripts: those no longer asked for go.
        stale = [p for p in sorted(bin_.iterdir()) if p.name not in wanted and generated_by_pinfold(p)]
        for path in stale:
            path.unlink()
        console = installed_console_scripts(ctx.env_dir)
        problems = []
        for script in spec.scripts:
            path = bin_ / script.name
            if (path.exists() or path.is_symlink()) and not generated_by_pinfold(path):
                problems.append(Problem(script.where, f"scripts: {script.name!r} is already in the "
                                                      "environment's bin/ (an installed console script "
                                                      "or virtualenv's own file): choose another name"))
            if script.kind == "console_script" and script.target not in console:
                problems.append(Problem(script.where, f"scripts: no installed distribution provides the "
                                                      f"console script {script.target!r}"))
        if problems:
            raise SpecError(f"{display_path(spec.file)}: {len(problems)} problem(s) with scripts:",
                            problems, tip="nothing was switched: the environment is as it was")
        written = sum(write_script(bin_ / s.name, render_script(spec, s, console)) for s in spec.scripts)
        note = ""
        if spec.bin_dir is not None:
            spec.bin_dir.mkdir(parents=True, exist_ok=True)
            # Removed after the switch (pipeline.build): the current environment still serves them.
            ctx.stale_launchers = [p for p in sorted(spec.bin_dir.iterdir())
                                   if p.name not in wanted and generated_for(p, spec.file)]
            launchers = sum(write_script(spec.bin_dir / s.name, render_launcher(spec, s))
                            for s in spec.scripts)
            old = f", {len(ctx.stale_launchers)} to remove" if ctx.stale_launchers else ""
            note = (f"; {len(spec.scripts)} launcher(s) in {display_path(spec.bin_dir)} "
                    f"({launchers} changed{old})")
        gone = f", {len(stale)} removed" if stale else ""
        return f"{len(spec.scripts)} script(s) in bin/ ({written} written{gone}){note}"
