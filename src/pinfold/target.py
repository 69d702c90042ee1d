"""Running pinfold's inside scripts in the target interpreter, isolated, from a neutral folder.

``-I`` keeps the caller's ``PYTHON*`` variables, user site-packages and the script's
folder off ``sys.path`` (on every Python 3; 3.11's ``-P`` only named that part); ``-B``
writes no bytecode into the environment; the working directory is an empty temporary
folder, because Twisted's plugin lookup searches every ``sys.path`` entry (the current
directory included, without ``-I``) and would write caches into a source checkout.
Every run goes through the runner.

For an environment without bytecode (``compile: false``) a :class:`Target` carries a
bytecode folder outside the environment, shared by every run of one build or check
(see ``inside/_launch.py``): without it each probe compiles Twisted from source again.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CommandError
from .inside import script
from .runner import Runner

__all__ = ["Target", "neutral_dir", "run_inside"]


@dataclass(frozen=True, slots=True)
class Target:
    """The environment's interpreter, as pinfold's own checks run it."""

    python: Path
    #: Where those runs keep the bytecode of an environment that has none, or None.
    pycache: Path | None = None
    #: Folders put first on ``sys.path`` (generated scripts' ``extra_paths``), or none.
    paths: tuple[Path, ...] = ()

    def launch(self, script_name: str) -> list[str | Path]:
        """The command line that starts the inside script ``script_name``."""
        cache: list[str | Path] = ["--pycache", self.pycache] if self.pycache is not None else []
        extra: list[str | Path] = [a for p in self.paths for a in ("--path", p)]
        return [self.python, "-I", "-B", script("_launch"), *cache, *extra, script(script_name)]


def neutral_dir() -> tempfile.TemporaryDirectory[str]:
    """An empty temporary folder to run target commands from."""
    return tempfile.TemporaryDirectory(prefix="pinfold-")


def run_inside(runner: Runner, target: Target, name: str, args: Sequence[str | Path] = (), *,
               what: str, timeout: float = 300.0,
               on_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the inside script ``name`` in ``target``; return the JSON it wrote.

    ``on_line`` hears each line the script prints (its progress lines, if it has any).

    Raises :class:`CommandError` when the script fails or writes no result.
    """
    with neutral_dir() as tmp:
        result = Path(tmp) / "result.json"
        done = runner.run([*target.launch(name), result, *args], what=what, cwd=Path(tmp),
                          timeout=timeout, on_line=on_line)
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"{what} failed: no result ({exc})", argv=done.argv, returncode=0,
                               output=done.output) from None
    if not isinstance(data, dict):
        raise CommandError(f"{what} failed: the result is not a JSON object", argv=done.argv,
                           returncode=0, output=done.output)
    return data
