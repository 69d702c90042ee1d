"""``pinfold fetch``: the one command that goes online.

Downloads exactly the artifacts of both locks (name, version, hash) from an upstream
index into the spec's wheelhouse. It never resolves: ``--no-deps`` with the locks' own
pins and hashes. pip runs for the target interpreter, so it picks the wheel that fits
it (or the sdist when the lock lists only that).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CommandError, PreflightError, Problem, SpecError
from .index import ArtifactIndex, IndexFile, upstream_flags
from .interpreter import Interpreter, inspect_interpreter
from .locks import Pin
from .paths import display_path
from .preflight import check_pins, preflight
from .runner import Runner
from .spec import IndexSpec, Spec
from .tools import pip_in

__all__ = ["FetchReport", "fetch"]


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchReport:
    """What ``fetch`` found and downloaded."""

    wheelhouse: Path
    downloaded: tuple[str, ...] = ()
    present: int = 0
    pins: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"wheelhouse": str(self.wheelhouse), "downloaded": list(self.downloaded),
                "present": self.present}


def fetch(spec: Spec, *, runner: Runner | None = None, index_url: str | None = None,
          on_progress: Callable[[str], None] | None = None,
          interp: Interpreter | None = None) -> FetchReport:
    """Fill the first ``find_links`` folder with every locked artifact that is missing."""
    runner = runner or Runner()
    say = on_progress or (lambda _: None)
    if not spec.index.find_links:
        raise SpecError(f"{display_path(spec.file)}: index.find_links: fetch fills a wheelhouse "
                        "folder, and this spec has none",
                        tip="add a find_links folder, or upload the locked artifacts to your index")
    wheelhouse = spec.index.find_links[0]
    interp = interp or inspect_interpreter(spec.python, runner)
    local = ArtifactIndex(IndexSpec(find_links=spec.index.find_links))
    runtime = [p for p in spec.requirements.pins if p.applies(interp.markers)]
    build = [p for p in spec.build_requirements.pins] if spec.build_requirements else []
    build = [p for p in build if p.applies(interp.markers)]
    missing: list[Pin] = []
    for pin in runtime + build:
        problems: list[Problem] = []
        chosen: dict[str, IndexFile] = {}
        check_pins([pin], build=False, index=local, interp=interp, runtime={},
                   problems=problems, chosen=chosen)
        if problems or str(pin) not in chosen:
            missing.append(pin)
    present = len(runtime) + len(build) - len(missing)
    downloaded: list[str] = []
    if missing:
        say(f"fetching {len(missing)} artifacts: " + ", ".join(str(p) for p in missing))
        wheelhouse.mkdir(parents=True, exist_ok=True)
        # Download beside the wheelhouse, then move in: a killed fetch leaves no partial file.
        with tempfile.TemporaryDirectory(dir=wheelhouse.parent, prefix=".pinfold-fetch-") as tmp:
            reqs = Path(tmp) / "missing.txt"
            reqs.write_text("".join(p.requirement_line() + "\n" for p in missing), encoding="utf-8")
            dest = Path(tmp) / "files"
            argv = [*pip_in(Path(interp.executable)), "download",
                    "--no-deps", "--require-hashes", "--no-cache-dir", "-d", str(dest), "-r", str(reqs)]
            argv += upstream_flags(index_url)
            try:
                runner.run(argv, what="downloading the locked artifacts", online=True)
            except CommandError as exc:
                raise PreflightError(
                    "could not download every locked artifact; the wheelhouse keeps what it had",
                    exc.problems, tip="check the pins and the upstream index (--index-url)") from None
            for file in sorted(dest.iterdir()):
                os.replace(file, wheelhouse / file.name)
                downloaded.append(file.name)
    # Prove the result the same way `pinfold build` will.
    preflight(spec, interp, ArtifactIndex(spec.index))
    return FetchReport(wheelhouse=wheelhouse, downloaded=tuple(downloaded), present=present,
                       pins=tuple(str(p) for p in runtime + build))
