"""pinfold against plain pip, plain uv, pip-sync and Buildout, on one real ~120-distribution environment.

One command, from the repository root:

    .venv/bin/python benchmarks/run.py [--rounds N]

(``--lock``, ``--one-pin-lock``, ``--build-lock`` and ``--index-url`` swap in another
environment and upstream index: the test suite runs the whole command that way, on a
small environment from a local index.)

It fills a wheelhouse once (``pinfold fetch``, the only online step) in a cache outside
the repository (``~/.cache/pinfold-bench``, or ``$PINFOLD_BENCH_DIR``), then runs every
scenario once per round, in the same order each round (so that every scenario sees
the same mix of machine state), and prints a markdown table of medians and ratios.
Every command runs in a scrubbed environment (no ``PIP_*``/``UV_*`` from the caller,
no pip config file), offline from the same wheelhouse.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "benchmarks"
TOOL = Path(sys.executable).parent  # pinfold's tool environment: pinfold, uv, pip-sync
LOCK = HERE / "requirements.txt"
LOCK_ONE_PIN = HERE / "requirements-one-pin.txt"  # the same lock with six moved
BUILD_LOCK = HERE / "build.txt"
BUILDOUT_TOOLS = HERE / "buildout-tools.txt"  # zc.buildout 6 + zc.recipe.egg, pinned and hashed
PYTHON = shutil.which("python3.11") or sys.executable


@dataclass
class Result:
    """The runs of one scenario."""

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    #: For pinfold: seconds of the final stages (plugin caches + probes), and of compile.
    final: list[float] = field(default_factory=list)
    compile: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def scrubbed(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every benchmarked command: nothing that could change an index."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
            "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "PYTHONNOUSERSITE": "1"}
    return env | (extra or {})


def run(argv: list[str | Path], env: dict[str, str] | None = None, cwd: Path | None = None,
        ) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, CPU seconds of its process tree, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([str(a) for a in argv], env=env or scrubbed(), cwd=cwd, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"benchmark command failed ({done.returncode}): {' '.join(map(str, argv))}\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


class Bench:
    """The scenarios, over one wheelhouse and a scratch folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.wheelhouse = root / "wheelhouse"
        self.scratch = root / "scratch"
        self.pip_cache = root / "pip-cache"      # plain pip's own wheel cache (warm after run 1)
        self.uv_cache = root / "uv-cache"        # plain uv, warm
        self.pinfold_uv = root / "pinfold-uv"    # pinfold's uv cache, warm
        self.buildout_tools = root / "buildout-tools"  # the wheels of BUILDOUT_TOOLS
        self.buildout_venv = root / "buildout-venv"    # where bin/buildout lives
        self.results: dict[str, Result] = {}
        self.with_buildout = True
        self.lock, self.lock_one_pin, self.build_lock = LOCK, LOCK_ONE_PIN, BUILD_LOCK
        self.index_url: str | None = None  # the upstream of `pinfold fetch` (default: PyPI)

    # --- setup ---------------------------------------------------------------------

    def spec(self, folder: Path, *, installer: str, compile_: bool = True, lock: Path | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(lock or self.lock, folder / "requirements.txt")
        # JSON strings are YAML strings: any folder name survives.
        text = (f"path: env\ninstaller: {installer}\ncompile: {'true' if compile_ else 'false'}\n"
                f"index: {{find_links: {json.dumps(str(self.wheelhouse))}}}\n"
                f"requirements: requirements.txt\nbuild_requirements: {json.dumps(str(self.build_lock))}\n"
                "final:\n  probes:\n    allow_reactor_import: [twisted.plugins.pkgupload]\n")
        (folder / "env.yaml").write_text(text)
        return folder / "env.yaml"

    def fetch(self) -> None:
        """Fill the wheelhouse once (online, with the caller's certificates and proxies).

        ``pinfold fetch`` creates the wheelhouse folder on a fresh machine.
        """
        index = ["--index-url", self.index_url] if self.index_url else []
        for lock in (self.lock, self.lock_one_pin):
            spec = self.spec(self.root / "fetch", installer="pip", lock=lock)
            keep = ("PIP_CERT", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "https_proxy",
                    "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")
            env = scrubbed({k: os.environ[k] for k in keep if k in os.environ})
            print(f"fetch: filling {self.wheelhouse} for {lock.name} (once)", file=sys.stderr)
            run([TOOL / "pinfold", "fetch", *index, spec], env=env)

    def fetch_buildout(self) -> None:
        """Download zc.buildout (hashed) once and install it, offline, into its own venv."""
        keep = ("PIP_CERT", "SSL_CERT_FILE", "SSL_CERT_DIR", "https_proxy", "HTTPS_PROXY", "no_proxy",
                "NO_PROXY")
        online = scrubbed({k: os.environ[k] for k in keep if k in os.environ})
        run([TOOL / "python", "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "--require-hashes", "-d", self.buildout_tools, "-r", BUILDOUT_TOOLS], env=online)
        buildout = self.buildout_venv / "bin" / "buildout"
        if not buildout.exists():
            print(f"buildout: installing zc.buildout into {self.buildout_venv} (once)", file=sys.stderr)
            run([PYTHON, "-m", "venv", "--clear", self.buildout_venv])
            run([self.buildout_venv / "bin" / "python", "-m", "pip", "install", "--no-index", "--find-links",
                 self.buildout_tools, "--require-hashes", "-r", BUILDOUT_TOOLS])

    def buildout_cfg(self, folder: Path) -> Path:
        """Every pin of the lock as an egg of one zc.recipe.egg part, versions pinned, no index."""
        pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", self.lock.read_text(), re.M)
        (folder / "no-index").mkdir()  # an empty index: only find-links has artifacts
        versions = "\n".join(f"{name} = {version}" for name, version in pins)
        eggs = "\n    ".join(name for name, _ in pins)
        cfg = folder / "buildout.cfg"
        cfg.write_text(f"""[buildout]
parts = app
newest = false
index = {(folder / "no-index").as_uri()}/
allow-hosts = localhost
find-links =
    {self.wheelhouse}
    {self.buildout_tools}
eggs-directory = {folder / "eggs"}
versions = versions
allow-picked-versions = false
allow-unknown-extras = true

[versions]
zc.recipe.egg = 6.0.0
{versions}

[app]
recipe = zc.recipe.egg
interpreter = py
eggs =
    {eggs}
""")
        return cfg

    def buildout(self) -> None:
        """zc.buildout 6 into an empty eggs folder, then re-runs with nothing changed.

        The re-runs are plain ``bin/buildout`` (``newest = false`` keeps them local): with
        ``-o``, zc.buildout 6.0.1 fails here ("We don't have a distribution for
        zc.recipe.egg==6.0.0 ... in offline (no-install) mode") with the egg in its folder.
        """
        folder = self.fresh("buildout")
        cfg = self.buildout_cfg(folder)
        # Buildout builds sdists with pip, whose build environments would go to PyPI for
        # setuptools (the very problem pinfold exists for): point that pip at the wheelhouse.
        env = scrubbed({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": f"{self.wheelhouse} {self.buildout_tools}"})
        argv: list[str | Path] = [self.buildout_venv / "bin" / "buildout", "-c", cfg]
        wall, cpu, _ = run(argv, env=env, cwd=folder)
        self.record("zc.buildout 6, empty eggs folder", wall, cpu)
        for _ in range(3):
            wall, cpu, _ = run(argv, env=env, cwd=folder)
            self.record("zc.buildout 6, re-run, nothing changed", wall, cpu)

    def fresh(self, name: str) -> Path:
        folder = self.scratch / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def record(self, name: str, wall: float, cpu: float, stages: dict[str, float] | None = None) -> None:
        r = self.results.setdefault(name, Result(name))
        r.seconds.append(wall)
        r.cpu.append(cpu)
        if stages is not None:
            r.final.append(stages.get("plugins", 0.0) + stages.get("probes", 0.0))
            r.compile.append(stages.get("compile", 0.0))
        print(f"  {name}: {wall:.2f}s", file=sys.stderr)

    # --- scenarios -------------------------------------------------------------------

    def steady(self, tool: str, install: Callable[[Path], list[str | Path]], env: dict[str, str]) -> None:
        """The same command again: no-op re-runs, then a one-pin change there and back."""
        for _ in range(3):
            wall, cpu, _ = run(install(self.lock), env=env)
            self.record(f"{tool}, no-op", wall, cpu)
        for lock in (self.lock_one_pin, self.lock):
            wall, cpu, _ = run(install(lock), env=env)
            self.record(f"{tool}, one-pin change", wall, cpu)

    def plain_pip(self, compile_: bool) -> None:
        folder = self.fresh("pip")
        venv = folder / "venv"
        flags = [] if compile_ else ["--no-compile"]
        env = scrubbed({"PIP_CACHE_DIR": str(self.pip_cache)})

        def install(lock: Path) -> list[str | Path]:
            return [venv / "bin" / "pip", "install", "--no-index", "--find-links", self.wheelhouse, *flags,
                    "-r", lock]

        t0 = time.perf_counter()
        _, c1, _ = run([PYTHON, "-m", "venv", venv])
        _, c2, _ = run(install(self.lock), env=env)
        self.record(f"plain pip{'' if compile_ else ' --no-compile'}", time.perf_counter() - t0, c1 + c2)
        if compile_:
            self.steady("plain pip", install, env)

    def pip_sync(self) -> None:
        folder = self.fresh("pip-sync")
        venv = folder / "venv"
        env = scrubbed({"PIP_CACHE_DIR": str(self.pip_cache)})

        def sync(lock: Path) -> list[str | Path]:
            return [TOOL / "pip-sync", "--python-executable", venv / "bin" / "python", "--no-index",
                    "--find-links", self.wheelhouse, lock]

        t0 = time.perf_counter()
        _, c1, _ = run([PYTHON, "-m", "venv", venv])
        _, c2, _ = run(sync(self.lock), env=env)
        self.record("pip-sync", time.perf_counter() - t0, c1 + c2)
        self.steady("pip-sync", sync, env)

    def plain_uv(self, *, cold: bool, compile_: bool) -> None:
        folder = self.fresh("uv")
        venv = folder / "venv"
        cache = folder / "uv-cache" if cold else self.uv_cache
        flags = ["--compile-bytecode"] if compile_ else []
        env = scrubbed({"UV_CACHE_DIR": str(cache)})
        def install(lock: Path) -> list[str | Path]:
            return [TOOL / "uv", "pip", "install", "--python", venv / "bin" / "python", "--no-index",
                    "--find-links", self.wheelhouse, "--require-hashes", *flags, "-r", lock]

        t0 = time.perf_counter()
        _, c1, _ = run([TOOL / "uv", "venv", "--python", PYTHON, venv], env=env)
        _, c2, _ = run(install(self.lock), env=env)
        name = f"plain uv, {'cold' if cold else 'warm'} cache{', --compile-bytecode' if compile_ else ''}"
        self.record(name, time.perf_counter() - t0, c1 + c2)
        if not cold and not compile_:
            self.steady("plain uv", install, env)

    def pinfold(self, spec: Path, name: str, *args: str, uv_cache: Path | None = None) -> None:
        env = scrubbed({"PINFOLD_UV_CACHE": str(uv_cache or self.pinfold_uv)})
        wall, cpu, out = run([TOOL / "pinfold", "build", "--json", *args, spec], env=env)
        data = json.loads(out)
        stages = {s["name"]: s["seconds"] for s in data.get("stages", [])}
        self.record(name, wall, cpu, stages if stages else None)

    def pinfold_full(self, installer: str, *, cold: bool = False, compile_: bool = True) -> Path:
        folder = self.fresh(f"pinfold-{installer}")
        spec = self.spec(folder, installer=installer, compile_=compile_)
        if installer == "pip":
            name = "pinfold pip, full build"
            self.pinfold(spec, name)
        else:
            cache = folder / "uv-cache" if cold else None
            state = "cold" if cold else "warm"
            name = f"pinfold uv, {state} cache{'' if compile_ else ', compile: false'}"
            self.pinfold(spec, name, uv_cache=cache)
        return spec

    def pinfold_steady(self, spec: Path, installer: str) -> None:
        """No-op (several) and a one-pin change there and back, on a built environment."""
        for _ in range(3):
            self.pinfold(spec, f"pinfold {installer}, no-op")
        for lock in (self.lock_one_pin, self.lock):
            shutil.copy(lock, spec.parent / "requirements.txt")
            self.pinfold(spec, f"pinfold {installer}, one-pin change")

    def round(self) -> None:
        if self.with_buildout:
            self.buildout()
        self.plain_pip(compile_=True)
        self.plain_pip(compile_=False)
        self.pip_sync()
        self.plain_uv(cold=True, compile_=False)
        self.plain_uv(cold=False, compile_=False)
        self.plain_uv(cold=False, compile_=True)
        spec = self.pinfold_full("pip")
        self.pinfold_steady(spec, "pip")
        self.pinfold_full("uv", cold=True)
        spec = self.pinfold_full("uv")
        self.pinfold_steady(spec, "uv")
        self.pinfold_full("uv", compile_=False)

    def warm_up(self) -> None:
        """Fill the warm caches (plain pip's wheel cache, plain uv's, pinfold's uv) once."""
        print("warm-up (not measured)", file=sys.stderr)
        self.plain_pip(compile_=False)
        self.plain_uv(cold=False, compile_=False)
        self.pinfold_full("uv")
        self.results.clear()


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor() or "?")
    uv = subprocess.run([TOOL / "uv", "--version"], capture_output=True, text=True).stdout.strip()
    pip = subprocess.run([PYTHON, "-m", "pip", "--version"], capture_output=True, text=True, env=scrubbed())
    venv_pip = pip.stdout.split(" from ")[0] if pip.returncode == 0 else "?"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, Python "
            f"{platform.python_version()}; {uv}; pinfold's pip 26.3; `python -m venv` seeds {venv_pip}; "
            f"load average at the end {load}")


def table(results: dict[str, Result]) -> str:
    base = {
        "pinfold pip, full build": "plain pip",
        "pinfold uv, cold cache": "plain pip",
        "pinfold uv, warm cache": "plain uv, warm cache, --compile-bytecode",
        "pinfold uv, warm cache, compile: false": "plain uv, warm cache",
        "zc.buildout 6, empty eggs folder": "pinfold uv, warm cache, compile: false",
    }
    lines = ["| scenario | median s | min-max s | runs | CPU s | final stages s (share) | compile s "
             "| ratio |", "|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        final = f"{statistics.median(r.final):.2f} ({statistics.median(r.final) / r.median():.0%})" \
            if r.final else ""
        comp = f"{statistics.median(r.compile):.2f}" if r.compile else ""
        ratio = ""
        if r.name in base and base[r.name] in results:
            ratio = f"{r.median() / results[base[r.name]].median():.2f}x {base[r.name]}"
        lines.append(f"| {r.name} | {r.median():.2f} | {min(r.seconds):.2f}-{max(r.seconds):.2f} | "
                     f"{len(r.seconds)} | {statistics.median(r.cpu):.1f} | {final} | {comp} | {ratio} |")
    return "\n".join(lines)


def targets(results: dict[str, Result]) -> str:
    def med(name: str) -> float:
        return results[name].median() if name in results else float("nan")

    checks: list[tuple[str, float, Callable[[float], bool], str]] = [
        ("pinfold pip full build / plain pip (compiles)",
         med("pinfold pip, full build") / med("plain pip"), lambda v: v <= 0.75, "<= 0.75"),
        ("pinfold uv warm / plain uv warm --compile-bytecode",
         med("pinfold uv, warm cache") / med("plain uv, warm cache, --compile-bytecode"),
         lambda v: v <= 1.2, "<= 1.2"),
        ("pinfold uv warm, compile: false (s)", med("pinfold uv, warm cache, compile: false"),
         lambda v: v < 3.5, "< 3.5"),
        ("Buildout / pinfold uv warm, compile: false (x faster)",
         med("zc.buildout 6, empty eggs folder") / med("pinfold uv, warm cache, compile: false"),
         lambda v: v > 20, "> 20"),
        ("pinfold no-op, pip (s)", med("pinfold pip, no-op"), lambda v: v < 0.2, "< 0.2"),
        ("pinfold no-op, uv (s)", med("pinfold uv, no-op"), lambda v: v < 0.2, "< 0.2"),
        ("final stages, median of full builds (s)",
         statistics.median([f for r in results.values() if "full" in r.name or "cache" in r.name
                            for f in r.final] or [float("nan")]), lambda v: v < 2.5, "< 2.5"),
    ]
    lines = ["| target | reached | goal | met |", "|---|---|---|---|"]
    for what, value, ok, goal in checks:
        lines.append(f"| {what} | {value:.2f} | {goal} | {'yes' if ok(value) else 'no'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="runs of every scenario (default 3)")
    parser.add_argument("--no-buildout", action="store_true",
                        help="leave zc.buildout out (it takes 2-3 minutes a round)")
    parser.add_argument("--lock", type=Path, default=LOCK, help="the environment's lock")
    parser.add_argument("--one-pin-lock", type=Path, default=LOCK_ONE_PIN,
                        help="the same lock with one pin moved")
    parser.add_argument("--build-lock", type=Path, default=BUILD_LOCK, help="its build lock")
    parser.add_argument("--index-url", metavar="URL",
                        help="the upstream index `pinfold fetch` fills the wheelhouse from (default: PyPI)")
    args = parser.parse_args()
    root = Path(os.environ.get("PINFOLD_BENCH_DIR") or Path.home() / ".cache" / "pinfold-bench")
    bench = Bench(root)
    bench.lock, bench.lock_one_pin = args.lock.resolve(), args.one_pin_lock.resolve()
    bench.build_lock, bench.index_url = args.build_lock.resolve(), args.index_url
    bench.fetch()
    bench.with_buildout = not args.no_buildout
    if bench.with_buildout:
        bench.fetch_buildout()
    t0 = time.monotonic()
    bench.warm_up()
    for n in range(args.rounds):
        print(f"round {n + 1}/{args.rounds}", file=sys.stderr)
        bench.round()
    shutil.rmtree(bench.scratch, ignore_errors=True)
    count = sum(1 for ln in bench.lock.read_text().splitlines() if ln[:1].isalnum())
    sdists = sum(1 for f in bench.wheelhouse.iterdir() if f.name.endswith((".tar.gz", ".zip")))
    print(f"{count} distributions ({sum(f.stat().st_size for f in bench.wheelhouse.iterdir()) >> 20} MB "
          f"wheelhouse, {sdists} sdists built from source); {args.rounds} rounds in "
          f"{time.monotonic() - t0:.0f} s\n")
    print(f"Machine: {machine()}\n")
    print(table(bench.results) + "\n")
    print(targets(bench.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
