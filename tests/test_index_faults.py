"""Index faults and fetch without build code, against real local servers and real pip/uv.

Each test starts the servers it needs (``python -m http.server`` on 127.0.0.1, in a
subprocess) and stops them. Covered: a broken ``index.url`` beside good ``find_links``;
locks with only sha384/sha512 hashes; URL-index files without a hash fragment; index
links whose decoded file name is not a plain name; ``pinfold fetch`` never running an
sdist's build code and creating a missing wheelhouse; a wheelhouse folder with a space
in its name; the benchmark's set-up path on a small environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from pinfold import PreflightError, build, load_spec
from pinfold.index import ArtifactIndex, index_environ
from pinfold.interpreter import Interpreter, inspect_interpreter
from pinfold.preflight import preflight
from pinfold.runner import Runner
from pinfold.spec import IndexSpec
from tests.artifacts import Artifact, copy_real, make_sdist, make_wheel
from tests.conftest import cli, installed, write
from tests.test_build import Wheelhouse, lock_text, make_project, uv_cache, wheelhouse

__all__ = ["uv_cache", "wheelhouse"]  # fixtures shared with test_build

REPO = Path(__file__).resolve().parent.parent


#: A server that answers every GET with plain text (what a wrong URL may well give).
_PLAIN_SERVER = """
import http.server, sys
class Plain(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"not an index")
server = http.server.HTTPServer(("127.0.0.1", 0), Plain)
print(f"Serving HTTP on 127.0.0.1 port {server.server_address[1]}", flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def http_server(root: Path | None) -> Iterator[str]:
    """Serve ``root`` with ``python -m http.server`` on a free 127.0.0.1 port; yield its URL.

    With ``root`` None, a server answering plain text to everything.
    """
    argv = ([sys.executable, "-c", _PLAIN_SERVER] if root is None else
            [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(root)])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (http://...) ..."
        found = re.search(r"port (\d+)", line)
        assert found, f"http.server did not start: {line!r}"
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def interp() -> Interpreter:
    return inspect_interpreter(sys.executable, Runner())


def simple_page(root: Path, artifacts: list[Artifact], *, fragment: bool = True,
                href: str = "../../files/{name}") -> None:
    """A PEP 503 tree under ``root``: simple/<project>/index.html linking files/<file>."""
    (root / "files").mkdir(parents=True, exist_ok=True)
    pages: dict[str, str] = {}
    for a in artifacts:
        if a.path.parent != root / "files":
            shutil.copy(a.path, root / "files" / a.path.name)
        link = href.format(name=a.path.name) + (f"#sha256={a.sha256}" if fragment else "")
        pages[a.name] = pages.get(a.name, "") + f'<a href="{link}">{a.path.name}</a>\n'
    write(root / "simple" / "index.html", "".join(f'<a href="{n}/">{n}</a>\n' for n in pages))
    for name, body in pages.items():
        write(root / "simple" / name / "index.html", body)


def project(tmp_path: Path, artifacts: list[Artifact], *, url: str | None = None,
            find_links: bool = True, lock: str | None = None) -> Path:
    """env.yaml with a runtime lock of ``artifacts`` (no build lock: wheels only)."""
    write(tmp_path / "runtime.txt", lock if lock is not None else lock_text(artifacts))
    index = "index:\n"
    if find_links:
        index += "  find_links: [wheelhouse]\n"
    if url:
        index += f"  url: {url}\n"
    return write(tmp_path / "env.yaml", f"version: 1\npath: env\n{index}requirements: runtime.txt\n")


def alt_hash(a: Artifact, algo: str) -> str:
    return f"{algo}:{hashlib.new(algo, a.path.read_bytes()).hexdigest()}"


# -- item 10: an index.url beside good find_links must answer ----------------------------


@pytest.mark.parametrize("fault", ["404", "not-html", "refused"])
def test_a_broken_index_url_beside_good_find_links_is_a_preflight_error(
        tmp_path: Path, interp: Interpreter, fault: str) -> None:
    wheel = make_wheel(tmp_path / "wheelhouse", "alone", "1.0")
    served = tmp_path / "served"
    write(served / "simple" / "index.html", "<a href='alone/'>alone</a>\n")
    with http_server(served) as base, http_server(None) as plain:
        url = {"404": f"{base}/wrong/", "not-html": f"{plain}/simple/",
               "refused": f"http://127.0.0.1:{closed_port()}/simple/"}[fault]
        spec = load_spec(project(tmp_path, [wheel], url=url))
        with pytest.raises(PreflightError) as info:
            preflight(spec, interp, ArtifactIndex(spec.index))
        text = str(info.value)
        assert "index.url" in text and url.rstrip("/") in text, text
        # The same index with a URL that answers passes.
        good = load_spec(project(tmp_path, [wheel], url=f"{base}/simple/"))
        preflight(good, interp, ArtifactIndex(good.index))


# -- item 17: every hash algorithm of a lock, and URL files without a fragment ----------------


@pytest.mark.parametrize("algo", ["sha384", "sha512"])
def test_locks_with_only_sha384_or_sha512_hashes_pass_preflight(tmp_path: Path, interp: Interpreter,
                                                                 algo: str) -> None:
    wheel = make_wheel(tmp_path / "wheelhouse", "strong", "1.0")
    spec = load_spec(project(tmp_path, [wheel], lock=f"strong==1.0 --hash={alt_hash(wheel, algo)}\n"))
    report = preflight(spec, interp, ArtifactIndex(spec.index))
    assert report.chosen["strong==1.0"].filename == wheel.path.name
    # A changed file is still caught, in the lock's algorithm.
    wheel.path.write_bytes(wheel.path.read_bytes() + b"changed")
    with pytest.raises(PreflightError) as info:
        preflight(spec, interp, ArtifactIndex(spec.index))
    assert "hash mismatch" in str(info.value) and f"the file has {alt_hash(wheel, algo)}" in str(info.value)


def test_url_files_without_a_hash_fragment_are_downloaded_and_hashed(tmp_path: Path,
                                                                      interp: Interpreter) -> None:
    served = tmp_path / "served"
    good = make_wheel(served / "files", "good", "1.0")
    bad = make_wheel(served / "files", "bad", "1.0")
    locked_bad = f"bad==1.0 --hash=sha256:{bad.sha256}\n"
    bad.path.write_bytes(bad.path.read_bytes() + b"replaced on the server")
    simple_page(served, [good, bad], fragment=False)
    with http_server(served) as base:
        spec = load_spec(project(tmp_path, [good], url=f"{base}/simple/", find_links=False,
                                 lock=good.pin() + "\n" + locked_bad))
        with pytest.raises(PreflightError) as info:
            preflight(spec, interp, ArtifactIndex(spec.index))
        text = str(info.value)
        assert "hash mismatch for bad==1.0" in text and "bad-1.0-py3-none-any.whl" in text, text
        assert "good==1.0" not in text, text
        # sha512 in the lock, no fragment on the page: downloaded, hashed, accepted.
        spec = load_spec(project(tmp_path, [good], url=f"{base}/simple/", find_links=False,
                                 lock=f"good==1.0 --hash={alt_hash(good, 'sha512')}\n"))
        chosen = preflight(spec, interp, ArtifactIndex(spec.index)).chosen["good==1.0"]
        assert chosen.filename == good.path.name


# -- item 20: links whose decoded name is not a plain file name -------------------------------


def test_an_index_link_whose_decoded_name_leaves_its_folder_is_ignored_and_named(
        tmp_path: Path, interp: Interpreter) -> None:
    served = tmp_path / "served"
    wheel = make_wheel(served / "files", "sly", "1.0")
    simple_page(served, [wheel], href="../../files/..%2F{name}")
    with http_server(served) as base:
        spec = load_spec(project(tmp_path, [wheel], url=f"{base}/simple/", find_links=False))
        index = ArtifactIndex(spec.index)
        assert index.files(canonicalize_name(wheel.name)) == []
        with pytest.raises(PreflightError) as info:
            preflight(spec, interp, ArtifactIndex(spec.index))
    text = str(info.value)
    assert "not a plain name" in text and repr(f"../{wheel.path.name}") in text, text


def test_a_pip_that_reads_only_the_variables_finds_a_wheelhouse_with_a_space(tmp_path: Path) -> None:
    """What a build backend's own pip sees: PIP_FIND_LINKS (split on whitespace) and PIP_NO_INDEX."""
    folder = tmp_path / "wheel house"
    wheel = make_wheel(folder, "spaced", "1.0")
    env = index_environ(IndexSpec(find_links=(folder, tmp_path)))
    assert env["PIP_FIND_LINKS"].split() == [folder.as_uri(), tmp_path.as_uri()], env
    Runner().run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path / "out"),
                  "spaced==1.0"], what="pip with the index as variables only", env=env)
    assert (tmp_path / "out" / wheel.path.name).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_build_from_a_wheelhouse_with_a_space_in_its_name(tmp_path: Path, wheelhouse: Wheelhouse,
                                                          installer: str, uv_cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Both backends, sdists with build dependencies included, from a folder with a space."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(uv_cache))
    spec_file = make_project(tmp_path, wheelhouse, installer=installer)
    (tmp_path / "wheelhouse").rename(tmp_path / "wheel house")
    spec_file.write_text(spec_file.read_text().replace("[wheelhouse]", '["wheel house"]'))
    build(load_spec(spec_file))
    assert installed(tmp_path / "env")["legacy-proj"] == "1.0"


# -- item 18 and 21: fetch runs no build code and creates the wheelhouse ----------------------


def _marker_sdist(dest: Path, marker: Path) -> Artifact:
    setup = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('build code ran')\n"
             "from setuptools import setup\nsetup()\n")
    return make_sdist(dest, "marked", "1.0", files={"marked/__init__.py": "", "setup.py": setup})


@pytest.mark.slow
def test_fetch_downloads_an_sdist_without_running_its_build_code(tmp_path: Path) -> None:
    marker = tmp_path / "build-code-ran"
    served = tmp_path / "served"
    sdist = _marker_sdist(served / "files", marker)
    wheel = make_wheel(served / "files", "plain", "2.0")
    # A wheel of the sdist's project that the lock does not list: it must not be picked.
    other = make_wheel(served / "files", "marked", "1.0")
    # setuptools upstream: what pip's build isolation would take to run setup.py.
    (setuptools,) = copy_real(served / "files", "setuptools")
    simple_page(served, [sdist, wheel, other, setuptools])
    lock = sdist.pin() + "\n" + wheel.pin() + "\n"
    spec_file = project(tmp_path / "p", [], lock=lock)
    write(tmp_path / "p" / "build.txt", setuptools.pin() + "\n")
    spec_file.write_text(spec_file.read_text() + "build_requirements: build.txt\n")
    with http_server(served) as base:
        code, out, err = cli("fetch", str(spec_file), "--index-url", f"{base}/simple", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["created"] is True and "created the wheelhouse folder" in err, err
    assert sorted(report["downloaded"]) == sorted([sdist.path.name, wheel.path.name, setuptools.path.name])
    assert not marker.exists(), "fetch ran the sdist's setup.py"
    wh = tmp_path / "p" / "wheelhouse"
    assert sorted(p.name for p in wh.iterdir()) == sorted(report["downloaded"])
    assert hashlib.sha256((wh / sdist.path.name).read_bytes()).hexdigest() == sdist.sha256


def test_fetch_refuses_an_upstream_file_whose_hash_is_not_locked(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    wheel = make_wheel(tmp_path / "made", "swapped", "1.0")
    locked = f"swapped==1.0 --hash={alt_hash(wheel, 'sha512')}\n"
    wheel.path.write_bytes(wheel.path.read_bytes() + b"swapped upstream")
    simple_page(upstream, [wheel], fragment=False)  # no fragment: fetch must hash the download
    spec_file = project(tmp_path / "p", [], lock=locked)
    (tmp_path / "p" / "wheelhouse").mkdir()
    code, _, err = cli("fetch", str(spec_file), "--index-url", (upstream / "simple").as_uri())
    assert code != 0 and "hash mismatch for swapped==1.0" in err, err
    assert list((tmp_path / "p" / "wheelhouse").iterdir()) == []


def test_fetch_refuses_a_wheelhouse_path_that_is_a_file(tmp_path: Path) -> None:
    spec_file = project(tmp_path, [], lock="")
    write(tmp_path / "wheelhouse", "a file\n")
    code, _, err = cli("fetch", str(spec_file), "--index-url", (tmp_path / "nowhere").as_uri())
    assert code == 2 and "index.find_links" in err and "is not a folder" in err, err


# -- item 21: the benchmark's set-up path, on a fresh machine ---------------------------------


@pytest.mark.slow
def test_benchmark_runs_on_a_fresh_machine_with_one_round(tmp_path: Path, uv_cache: Path) -> None:
    """`benchmarks/run.py --rounds 1` on a small environment from a local upstream index."""
    upstream = tmp_path / "upstream"
    one = make_wheel(upstream / "files", "bench-one", "1.0")
    two = make_wheel(upstream / "files", "bench-two", "1.0")
    moved = make_wheel(upstream / "files", "bench-two", "2.0")
    simple_page(upstream, [one, two, moved])
    locks = tmp_path / "locks"
    write(locks / "requirements.txt", lock_text([one, two]))
    write(locks / "requirements-one-pin.txt", lock_text([one, moved]))
    write(locks / "build.txt", "")
    bench = tmp_path / "fresh-cache"  # does not exist: a fresh machine
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["PINFOLD_BENCH_DIR"] = str(bench)
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--rounds", "1", "--no-buildout",
         "--lock", str(locks / "requirements.txt"), "--one-pin-lock", str(locks / "requirements-one-pin.txt"),
         "--build-lock", str(locks / "build.txt"), "--index-url", (upstream / "simple").as_uri()],
        capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| pinfold pip, full build |" in done.stdout and "| plain uv, no-op |" in done.stdout
    assert sorted(p.name for p in (bench / "wheelhouse").iterdir()) == sorted(
        a.path.name for a in (one, two, moved))


def test_an_index_cert_that_cannot_be_loaded_is_bad_input_not_a_network_error(tmp_path: Path) -> None:
    """The certificates are loaded once, before any try: a file that is no PEM is env.yaml's
    problem (exit 2, naming index.cert), not "cannot reach the index" after the retries."""
    write(tmp_path / "ca.pem", "not a certificate\n")
    write(tmp_path / "req.txt", "six==1.16.0 --hash=sha256:" + "0" * 64 + "\n")
    spec = write(tmp_path / "env.yaml", "path: env\nrequirements: req.txt\nindex:\n"
                                        "  url: https://127.0.0.1:9/simple/\n  cert: ca.pem\n  retries: 3\n")
    code, _, err = cli("build", str(spec))
    assert code == 2, err
    assert "index.cert cannot be loaded" in err and "index.cert: " in err and "ca.pem" in err, err
    assert "cannot reach" not in err and "Traceback" not in err, err
    assert not (tmp_path / "env").exists() and not (tmp_path / "env.d").exists()
