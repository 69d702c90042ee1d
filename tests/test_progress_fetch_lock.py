"""Live progress of `pinfold fetch` and `pinfold lock --upstream`, against a real pypiserver.

The real `pinfold` command downloads from pypiserver on 127.0.0.1 (from the pinned
servers of tests/servers.txt). On a terminal its live line counts artifacts and bytes and
is replaced by the summary; in a pipe (and with NO_COLOR) every line is plain, and
heartbeat lines carry the same counts. Loopback is too fast for a heartbeat to fall
inside a download, so the fetch tests reach the server through a small forwarding proxy
on loopback that paces the bytes, as a slow link would (the index stays the real server).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pinfold import load_spec
from pinfold.locking import lock
from pinfold.results import Progress
from tests.artifacts import Artifact, copy_real, make_sdist, make_wheel
from tests.conftest import write
from tests.test_build import lock_text
from tests.test_index_servers import pypiserver, servers
from tests.test_progress import _CONTROL, _environ, _in_terminal

__all__ = ["servers"]

#: The paced proxy's rate: the three small real wheels take a couple of seconds.
_CHUNK, _PAUSE = 16 * 1024, 0.1


class _PacedProxy(BaseHTTPRequestHandler):
    """A forward HTTP proxy (GET and HEAD) that sends the body in paced chunks."""

    def _forward(self, *, body: bool) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(self.path, method=self.command,
                                         headers={k: v for k, v in self.headers.items()
                                                  if k.lower() in ("accept", "authorization")})
        try:
            resp = opener.open(request, timeout=30)
        except urllib.error.HTTPError as exc:
            resp = exc
        with resp:
            data = resp.read() if body else b""
            self.send_response(resp.status)
            for key in ("Content-Type", "Content-Length"):
                if resp.headers.get(key):
                    self.send_header(key, resp.headers[key])
            self.end_headers()
            for start in range(0, len(data), _CHUNK):
                self.wfile.write(data[start:start + _CHUNK])
                self.wfile.flush()
                if self.path.endswith(".whl"):
                    time.sleep(_PAUSE)

    def do_GET(self) -> None:
        self._forward(body=True)

    def do_HEAD(self) -> None:
        self._forward(body=False)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def paced_proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PacedProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def served(tmp_path: Path) -> list[Artifact]:
    """What the server holds: three small real wheels and one made here that needs them."""
    folder = tmp_path / "served"
    real = copy_real(folder, "attrs", "idna", "hyperlink")
    return [*real, make_wheel(folder, "tiny-app", "1.0", requires=["hyperlink", "attrs"])]


def fetch_project(root: Path, artifacts: list[Artifact]) -> Path:
    """env.yaml whose wheelhouse folder does not exist yet, with a lock of ``artifacts``."""
    write(root / "runtime.txt", lock_text(artifacts))
    return write(root / "env.yaml", "version: 1\npath: env\nindex:\n  find_links: [wheelhouse]\n"
                                    "requirements: runtime.txt\n")


#: The summaries (paths are shown relative to the working directory when inside it).
_DOWNLOADED = re.compile(r"downloaded 4 artifacts into \S*wheelhouse/ \(0 were already there\)")
_WROTE = re.compile(r"wrote \S*runtime\.txt and \S*build\.txt")

#: The fetch's progress: artifacts done of all, then the bytes so far of all of them.
_FETCH_LINE = re.compile(r"\[fetch\] (\d)/4 artifacts, ([\d.]+ (?:B|KiB)) of ([\d.]+ KiB)"
                         r"(: [^\r\n(]*)? \(\d+s\)")


@pytest.mark.slow
def test_fetch_on_a_terminal_counts_artifacts_and_bytes_then_the_summary_replaces_it(
        tmp_path: Path, servers: Path, served: list[Artifact], paced_proxy: str) -> None:
    spec = fetch_project(tmp_path / "p", served)
    with pypiserver(servers, tmp_path / "served", tmp_path / "server.log") as url:
        code, out = _in_terminal([sys.executable, "-m", "pinfold", "fetch", "--index-url", url, str(spec)],
                                 _environ(TERM="xterm", NO_COLOR="1", http_proxy=paced_proxy))
    assert code == 0, out
    frames = [m.groups() for m in _FETCH_LINE.finditer(out)]
    assert frames, repr(out)
    # The sizes are known beforehand (HEAD): every frame has the same total, that of the files.
    size = sum(a.path.stat().st_size for a in served)
    assert {total for _, _, total, _ in frames} == {f"{size / 1024:.1f} KiB"}, frames
    assert any(item and "downloading " in item for *_, item in frames), frames
    # The live line, then rich erases it (carriage return, erase line), then the summary.
    summary = out.find("downloaded 4 artifacts into ")
    last = list(_FETCH_LINE.finditer(out))[-1]
    assert summary > last.end(), repr(out)
    between = out[last.end():summary]
    assert "\r" in between and "\x1b[2K" in between, repr(between)
    assert "\x1b[3" not in out, "NO_COLOR: no colour"
    assert sorted(p.name for p in (tmp_path / "p" / "wheelhouse").iterdir()) == sorted(
        a.path.name for a in served)


@pytest.mark.slow
def test_fetch_in_a_pipe_writes_plain_heartbeats_with_artifacts_and_bytes(
        tmp_path: Path, servers: Path, served: list[Artifact], paced_proxy: str) -> None:
    spec = fetch_project(tmp_path / "p", served)
    with pypiserver(servers, tmp_path / "served", tmp_path / "server.log") as url:
        done = subprocess.run([sys.executable, "-m", "pinfold", "fetch", "--index-url", url, str(spec)],
                              capture_output=True, text=True, check=False, timeout=300,
                              env=_environ(PINFOLD_HEARTBEAT_SECONDS="0.3", http_proxy=paced_proxy))
    assert done.returncode == 0, done.stderr
    assert not _CONTROL.search(done.stderr.replace("\n", "")), repr(done.stderr)
    beats = [m.groups() for line in done.stderr.splitlines() if (m := _FETCH_LINE.fullmatch(line))]
    assert len(beats) >= 2, done.stderr
    # Bytes only grow, and some heartbeat falls inside a download.
    sizes = [float(b[1].split()[0]) * (1024 if b[1].endswith("KiB") else 1) for b in beats]
    assert sizes == sorted(sizes), beats
    assert any(item and item.startswith(": downloading ") for *_, item in beats), beats
    lines = done.stderr.splitlines()
    assert _DOWNLOADED.fullmatch(lines[-1]), done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_fetch_and_lock_quiet_print_only_the_result(tmp_path: Path, servers: Path,
                                                    served: list[Artifact]) -> None:
    spec = fetch_project(tmp_path / "p", served)
    lockable = lock_project(tmp_path / "l", needs="[tiny-app]")
    with pypiserver(servers, tmp_path / "served", tmp_path / "server.log") as url:
        code, out = _in_terminal([sys.executable, "-m", "pinfold", "fetch", "-q", "--index-url", url,
                                  str(spec)], _environ(TERM="xterm"))
        assert code == 0, out
        assert [_DOWNLOADED.fullmatch(ln) is not None for ln in out.strip().splitlines()] == [True], repr(out)
        code, out = _in_terminal([sys.executable, "-m", "pinfold", "lock", "-q", "--upstream", url,
                                  str(lockable)], _environ(TERM="xterm"))
        assert code == 0, out
        assert "[" not in out and "\x1b" not in out, repr(out)
        assert [_WROTE.fullmatch(ln) is not None for ln in out.strip().splitlines()][-1:] == [True], repr(out)
        # Errors still show, in colour on a terminal.
        code, out = _in_terminal([sys.executable, "-m", "pinfold", "fetch", "-q", "--index-url", url,
                                  str(spec.with_name("missing.yaml"))], _environ(TERM="xterm"))
        assert code == 2 and "error:" in out and "\x1b[1;31m" in out, repr(out)


# -- lock --upstream -----------------------------------------------------------------------


def lock_project(root: Path, *, needs: str = "[tiny-app, plain-sdist]") -> Path:
    """env.yaml with ``needs`` (plain-sdist's backend is asked), an empty wheelhouse, no locks yet."""
    (root / "wheelhouse").mkdir(parents=True)
    return write(root / "env.yaml", "path: env\nindex:\n  find_links: [wheelhouse]\n"
                                    "requirements: runtime.txt\nbuild_requirements: build.txt\n"
                                    f"needs: {needs}\n")


@pytest.fixture
def served_sdist(tmp_path: Path, served: list[Artifact]) -> list[Artifact]:
    """``served`` and an sdist with a setuptools backend, and setuptools."""
    folder = tmp_path / "served"
    return [*served, make_sdist(folder, "plain-sdist", "3.0", backend="setuptools"),
            *copy_real(folder, "setuptools")]


@pytest.mark.slow
def test_lock_on_a_terminal_shows_resolving_then_the_backends_then_the_summary(
        tmp_path: Path, servers: Path, served_sdist: list[Artifact]) -> None:
    spec = lock_project(tmp_path / "p")
    with pypiserver(servers, tmp_path / "served", tmp_path / "server.log") as url:
        code, out = _in_terminal([sys.executable, "-m", "pinfold", "lock", "--upstream", url, str(spec)],
                                 _environ(TERM="xterm", NO_COLOR="1"))
    assert code == 0, out
    resolving = out.find("[lock] resolving the runtime needs (")
    fetching = out.find("[fetch] ", resolving)
    asked = out.find("[lock] 0/1 backends asked (", fetching)
    summary = out.find("runtime lock ", asked)
    assert 0 <= resolving < fetching < asked < summary, repr(out)
    # The fetch's line counts the artifacts and bytes it downloaded for the runtime lock.
    assert re.search(r"\[fetch\] 5/5 artifacts, [\d.]+ KiB of [\d.]+ KiB: checking the wheelhouse", out), out
    assert "[fetch] running" not in out, repr(out)
    assert "\r" in out[asked:summary] and "\x1b[2K" in out[asked:summary], repr(out[asked:summary])
    assert _WROTE.fullmatch(out.rstrip().splitlines()[-1]), repr(out)
    assert "\x1b[3" not in out, "NO_COLOR: no colour"


@pytest.mark.slow
def test_lock_in_a_pipe_writes_plain_heartbeats(tmp_path: Path, servers: Path,
                                               served_sdist: list[Artifact]) -> None:
    spec = lock_project(tmp_path / "p")
    with pypiserver(servers, tmp_path / "served", tmp_path / "server.log") as url:
        done = subprocess.run([sys.executable, "-m", "pinfold", "lock", "--upstream", url, str(spec)],
                              capture_output=True, text=True, check=False, timeout=300,
                              env=_environ(PINFOLD_HEARTBEAT_SECONDS="0.5", FORCE_COLOR="1", NO_COLOR="1"))
    assert done.returncode == 0, done.stderr
    assert not _CONTROL.search(done.stderr.replace("\n", "")), repr(done.stderr)
    lines = done.stderr.splitlines()
    # pip-compile and the build backend take seconds: heartbeats say which step, and how far.
    assert any(re.fullmatch(r"\[lock\] resolving the runtime needs \(\d+s\)", ln) for ln in lines), lines
    assert any(re.fullmatch(r"\[lock\] 0/1 backends asked \(\d+s\)", ln) for ln in lines), lines
    assert _WROTE.fullmatch(lines[-1]), lines


@pytest.mark.slow
def test_lock_for_several_targets_counts_the_targets(tmp_path: Path) -> None:
    """Each target is one resolver run: the progress says which, k / n."""
    make_wheel(tmp_path / "wheelhouse", "plain-wheel", "1.0")
    spec = write(tmp_path / "env.yaml", (
        "path: env\nindex:\n  find_links: [wheelhouse]\nrequirements: runtime.txt\nneeds: [plain-wheel]\n"
        "targets:\n  - {python_version: '3.10', platform: linux-x86_64}\n"
        "  - {python_version: '3.13', platform: manylinux_2_28_aarch64}\n"))
    seen: list[str | Progress] = []
    lock(load_spec(spec, purpose="lock"), on_progress=seen.append)
    counted = [(p.done, p.total, p.unit, p.item) for p in seen
               if isinstance(p, Progress) and p.unit == "targets"]
    assert counted == [
        (0, 2, "targets", "resolving the runtime needs for Python 3.10 on linux x86_64"),
        (1, 2, "targets", "resolving the runtime needs for Python 3.13 on linux aarch64")], seen
    assert seen.index(Progress("lock", 0, item="resolving the runtime needs")) < seen.index(
        next(p for p in seen if isinstance(p, Progress) and p.unit == "targets"))
