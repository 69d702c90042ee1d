"""Real index servers on 127.0.0.1: pypiserver, devpi-server (primary and replica), TLS, faults.

The servers come from pinned packages installed once into a venv of the test cache
(:func:`tests.artifacts.server_venv`); every process a test starts is stopped by it. The
same tiny environment is built from a wheelhouse folder and from each server, with the
same installed distributions; credentials (in the URL or in ``~/.netrc``) reach pip and
uv but no output or file of a build; a private CA is trusted through ``index.cert``; a
server that is down, slow or answers 404/500 fails in bounded time with one clear error
and leaves the previous environment as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pinfold.runner import Runner
from tests.artifacts import Artifact, copy_real, make_wheel, server_venv
from tests.conftest import cli, installer_calls, write
from tests.test_build import lock_text, uv_cache
from tests.test_index_faults import simple_page

__all__ = ["uv_cache"]


PASSWORD = "s3cr3t-Pa55"  # a test password, grepped for in every output
USER = "builder"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, *, seconds: float = 180, ok: tuple[int, ...] = (200,)) -> None:
    """Poll ``url`` until it answers one of ``ok`` (401 counts when asked for)."""
    deadline = time.monotonic() + seconds
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with opener.open(url, timeout=5) as resp:
                if resp.status in ok:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {seconds} s")
        time.sleep(0.5)


def wait_port(port: int, seconds: float = 30) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.2)


@contextlib.contextmanager
def started(argv: list[str], log: Path, *,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server; always stop it (and say what it logged when the test failed)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def servers() -> Path:
    """The bin folder of the servers' venv (downloaded once into the test cache)."""
    return server_venv()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> list[Artifact]:
    """A tiny environment: three real wheels and one made here that needs them."""
    folder = tmp_path_factory.mktemp("small")
    real = copy_real(folder, "attrs", "idna", "hyperlink")
    return [*real, make_wheel(folder, "tiny-app", "1.0", requires=["hyperlink", "attrs"])]


def project(root: Path, artifacts: list[Artifact], *, url: str | None = None, installer: str = "pip",
            extra_index: str = "") -> Path:
    """env.yaml (wheels only: no build lock) with the folder, or ``url``, as its index."""
    write(root / "runtime.txt", lock_text(artifacts))
    if url is None:
        (root / "wheelhouse").mkdir(exist_ok=True)
        for a in artifacts:
            (root / "wheelhouse" / a.path.name).write_bytes(a.path.read_bytes())
        index = "  find_links: [wheelhouse]\n"
    else:
        index = f"  url: {url}\n"
    return write(root / "env.yaml", f"version: 1\npath: env\ninstaller: {installer}\n"
                                    f"index:\n{index}{extra_index}requirements: runtime.txt\n"
                                    "final:\n  probes:\n    imports: [tiny_app]\n")


def pinfold(spec: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "pinfold", *args, str(spec)], capture_output=True,
                          text=True, env=env, check=False, cwd=spec.parent, timeout=600)


def installed_of(root: Path) -> list[str]:
    return list(json.loads((root / "env" / "pinfold.json").read_text())["installed"])


def build_ok(spec: Path, **kw: Path) -> subprocess.CompletedProcess[str]:
    done = pinfold(spec, "build", "--json", *(["--junit-xml", str(spec.parent / "junit.xml")]), **kw)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(autouse=True)
def own_uv_cache(monkeypatch: pytest.MonkeyPatch, uv_cache: Path) -> None:
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(uv_cache))


# -- pypiserver ----------------------------------------------------------------------------


@contextlib.contextmanager
def pypiserver(servers: Path, wheelhouse: Path, log: Path, *, htpasswd: Path | None = None) -> Iterator[str]:
    port = free_port()
    auth = ["-P", str(htpasswd), "-a", "download,list,update"] if htpasswd else ["-P", ".", "-a", "."]
    argv = [str(servers / "pypi-server"), "run", "-i", "127.0.0.1", "-p", str(port), *auth, str(wheelhouse)]
    with started(argv, log):
        wait_for(f"http://127.0.0.1:{port}/simple/", ok=(200, 401))
        yield f"http://127.0.0.1:{port}/simple/"


def make_htpasswd(servers: Path, path: Path) -> Path:
    code = ("import sys; from passlib.apache import HtpasswdFile as H; h = H(sys.argv[1], new=True); "
            "h.set_password(sys.argv[2], sys.argv[3]); h.save()")
    subprocess.run([str(servers / "python"), "-c", code, str(path), USER, PASSWORD], check=True)
    return path


# -- devpi-server --------------------------------------------------------------------------


def devpi(servers: Path, clientdir: Path, *args: str) -> None:
    env = dict(os.environ) | {"DEVPI_CLIENTDIR": str(clientdir)}
    done = subprocess.run([str(servers / "devpi"), *args], capture_output=True, text=True, env=env,
                          check=False, timeout=120)
    assert done.returncode == 0, f"devpi {' '.join(args)}:\n{done.stdout}{done.stderr}"


def _copied(artifacts: list[Artifact], folder: Path) -> Path:
    """``folder``, new, holding a copy of each artifact: what a server is started on."""
    folder.mkdir()
    for a in artifacts:
        (folder / a.path.name).write_bytes(a.path.read_bytes())
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_the_same_environment_from_a_folder_pypiserver_devpi_and_a_devpi_replica(
        tmp_path: Path, servers: Path, small: list[Artifact], installer: str) -> None:
    results: dict[str, list[str]] = {}
    build_ok(project(tmp_path / "folder", small, installer=installer))
    results["folder"] = installed_of(tmp_path / "folder")
    served = _copied(small, tmp_path / "served")
    logs = tmp_path / "logs"
    logs.mkdir()
    with pypiserver(servers, served, logs / "pypiserver.log") as url:
        build_ok(project(tmp_path / "pypiserver", small, url=url, installer=installer))
        results["pypiserver"] = installed_of(tmp_path / "pypiserver")

    # devpi: a primary with an index and an upload, and a replica of it.
    secret = tmp_path / "devpi-secret"
    subprocess.run([str(servers / "devpi-gen-secret"), "--secretfile", str(secret)], check=True,
                   capture_output=True)
    primary, replica = tmp_path / "devpi-primary", tmp_path / "devpi-replica"
    p_port, r_port = free_port(), free_port()
    p_url, r_url = f"http://127.0.0.1:{p_port}", f"http://127.0.0.1:{r_port}"
    subprocess.run([str(servers / "devpi-init"), "--serverdir", str(primary), "--no-root-pypi",
                    "--root-passwd", PASSWORD], check=True, capture_output=True)
    subprocess.run([str(servers / "devpi-init"), "--serverdir", str(replica), "--primary-url", p_url],
                   check=True, capture_output=True)
    common = ["--host", "127.0.0.1", "--secretfile", str(secret)]
    with started([str(servers / "devpi-server"), "--serverdir", str(primary), "--port", str(p_port),
                  "--role", "primary", *common], logs / "devpi-primary.log"):
        wait_for(f"{p_url}/+api")
        client = tmp_path / "devpi-client"
        devpi(servers, client, "use", p_url)
        devpi(servers, client, "login", "root", "--password", PASSWORD)
        devpi(servers, client, "index", "-c", "root/team", "bases=", "volatile=False")
        devpi(servers, client, "use", "root/team")
        devpi(servers, client, "upload", *(str(a.path) for a in small))
        build_ok(project(tmp_path / "devpi", small, url=f"{p_url}/root/team/+simple/", installer=installer))
        results["devpi"] = installed_of(tmp_path / "devpi")
        with started([str(servers / "devpi-server"), "--serverdir", str(replica), "--port", str(r_port),
                      "--primary-url", p_url, *common], logs / "devpi-replica.log"):
            wait_for(f"{r_url}/root/team/+simple/tiny-app/")
            build_ok(project(tmp_path / "replica", small, url=f"{r_url}/root/team/+simple/",
                             installer=installer))
            results["replica"] = installed_of(tmp_path / "replica")
    assert results["folder"] == sorted(f"{a.name}=={a.version}" for a in small)
    assert all(v == results["folder"] for v in results.values()), results


# -- credentials ---------------------------------------------------------------------------


def written_files(root: Path) -> Iterator[Path]:
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


@pytest.mark.slow
@pytest.mark.parametrize(("installer", "where"), [("pip", "url"), ("uv", "url"), ("pip", "netrc"),
                                                  ("uv", "netrc")])
def test_credentials_reach_pip_and_uv_and_no_output_or_file(
        tmp_path: Path, servers: Path, small: list[Artifact], installer: str, where: str,
        uv_cache: Path) -> None:
    served = _copied(small, tmp_path / "served")
    home = tmp_path / "home"
    home.mkdir()
    with pypiserver(servers, served, tmp_path / "server.log",
                    htpasswd=make_htpasswd(servers, tmp_path / "htpasswd")) as url:
        if where == "url":
            url = url.replace("http://", f"http://{USER}:{PASSWORD}@")
        else:
            write(home / ".netrc", f"machine 127.0.0.1\nlogin {USER}\npassword {PASSWORD}\n").chmod(0o600)
        root = tmp_path / "project"
        spec = project(root, small, url=url, installer=installer)
        # Without credentials the server refuses: they are what makes the build pass.
        plain = project(tmp_path / "plain", small, url=url.replace(f"{USER}:{PASSWORD}@", ""))
        refused = pinfold(plain, "build", home=tmp_path)
        assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr
        done = build_ok(spec, home=home)
        verbose = pinfold(spec, "build", "--fresh", "-v", "--json", home=home)
        assert verbose.returncode == 0, verbose.stderr
        check = pinfold(spec, "check", "--json", "--junit-xml", str(root / "check.xml"), home=home)
        assert check.returncode == 0, check.stderr
        # A changed file on the server: a failing build names the index, redacted.
        (served / small[-1].path.name).write_bytes(b"not the wheel")
        failed = pinfold(spec, "build", "--fresh", home=home)
    assert failed.returncode != 0
    outputs = [done.stdout, done.stderr, verbose.stdout, verbose.stderr, check.stdout, check.stderr,
               failed.stdout, failed.stderr, refused.stdout, refused.stderr]
    assert all(PASSWORD not in text for text in outputs), next(t for t in outputs if PASSWORD in t)
    assert json.loads(done.stdout)["ok"]
    files = [p for p in written_files(root) if p.name != "env.yaml"]  # env.yaml is the user's own
    files += [p for p in written_files(uv_cache) if p.suffix == ".html"]
    assert (root / "junit.xml") in files and (root / "check.xml") in files
    assert any(p.name == "pinfold.json" for p in files)
    leaking = [p for p in files if PASSWORD.encode() in p.read_bytes()]
    assert not leaking, leaking


# -- a private CA --------------------------------------------------------------------------


_TLS_SERVER = """
import http.server, ssl, sys, functools
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[3], sys.argv[4])
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def make_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A self-made CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    def ssl_(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    folder.mkdir(parents=True, exist_ok=True)
    ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pinfold test CA",
         "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ssl_("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
         "-out", "server.csr")
    write(folder / "ext.cnf", "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                              "extendedKeyUsage=serverAuth\n")
    ssl_("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_private_ca_given_as_index_cert_is_trusted_by_preflight_pip_and_uv(
        tmp_path: Path, small: list[Artifact], installer: str) -> None:
    ca, cert, key = make_ca(tmp_path / "tls")
    served = tmp_path / "served"
    simple_page(served, small)
    port = free_port()
    with started([sys.executable, "-c", _TLS_SERVER, str(served), str(port), str(cert), str(key)],
                 tmp_path / "tls.log"):
        url = f"https://127.0.0.1:{port}/simple/"
        wait_port(port)
        # Without index.cert: the certificate is not trusted, and pre-flight says so.
        untrusted = pinfold(project(tmp_path / "untrusted", small, url=url, installer=installer), "build")
        assert untrusted.returncode != 0
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout + untrusted.stderr, untrusted.stderr
        spec = project(tmp_path / "trusted", small, url=url, installer=installer,
                       extra_index=f"  cert: {ca}\n")
        build_ok(spec)
    assert installed_of(tmp_path / "trusted") == sorted(f"{a.name}=={a.version}" for a in small)


# -- faults --------------------------------------------------------------------------------


_FAULT_SERVER = """
import http.server, sys, time, pathlib
root, mode = pathlib.Path(sys.argv[1]), sys.argv[2]
class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=str(root), **kw)
    def do_GET(self):
        files = self.path.startswith("/files/")
        if mode == "slow" or (mode == "slow-files" and files):
            time.sleep(30)
        if mode in ("404", "500") or (mode == "500-files" and files):
            code = 500 if "500" in mode else 404
            self.send_response(code)
            self.end_headers()
            return
        super().do_GET()
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[3])), Handler)
server.daemon_threads = True
server.serve_forever()
"""


def _after(argv: tuple[str, ...], flag: str) -> str | None:
    """The value given to ``flag`` in ``argv``, or None when it is not there."""
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["down", "slow", "404", "500", "500-files", "slow-files"])
def test_a_faulty_server_fails_in_bounded_time_naming_the_url_and_keeps_the_environment(
        tmp_path: Path, small: list[Artifact], fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "served"
    simple_page(served, small)
    good_port, port = free_port(), free_port()
    secret_url = f"http://{USER}:{PASSWORD}@127.0.0.1:{{port}}/simple/"
    bounds = "  timeout: 2\n  retries: 1\n"
    with started([sys.executable, "-c", _FAULT_SERVER, str(served), "good", str(good_port)],
                 tmp_path / "g.log"):
        wait_for(f"http://127.0.0.1:{good_port}/simple/")
        spec = project(tmp_path / "p", small, url=secret_url.format(port=good_port), extra_index=bounds)
        build_ok(spec)
    before = installed_of(tmp_path / "p")
    target = (tmp_path / "p" / "env").resolve()
    project(tmp_path / "p", small, url=secret_url.format(port=port), extra_index=bounds)
    # The failing build in-process, so that its runner shows what pip was started with.
    runners: list[Runner] = []

    class Recording(Runner):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            runners.append(self)

    monkeypatch.setattr("pinfold.cli.Runner", Recording)
    with contextlib.ExitStack() as stack:
        if fault != "down":
            argv = [sys.executable, "-c", _FAULT_SERVER, str(served), fault, str(port)]
            stack.enter_context(started(argv, tmp_path / "f.log"))
            wait_port(port)
        code, out, err = cli("build", "--fresh", str(spec))
    text = out + err
    assert code != 0, text
    assert PASSWORD not in text
    shown = f"http://{USER}:****@127.0.0.1:{port}/simple/"
    assert f"127.0.0.1:{port}" in text, text
    started_installers = [call for runner in runners for call in installer_calls(runner)]
    if fault in ("down", "slow", "404", "500"):
        # Pre-flight: one clear error naming the redacted URL and what was being fetched;
        # the bounds are pinfold's own (2 tries of 2 s), and no pip was started.
        assert started_installers == [], started_installers
        assert f"pre-flight: the index URL does not answer ({shown}); nothing was built" in text, text
        root_page = "for the index's root page"
        expected = {
            "down": f"cannot reach {shown} {root_page}: ",
            "slow": f"cannot reach {shown} {root_page}: no answer within 2 s (after 2 tries)",
            "404": f"{shown} answered 404 Not Found {root_page}: not a simple index",
            "500": f"{shown} answered 500 Internal Server Error {root_page}: not a simple index",
        }[fault]
        assert expected in text, text
        if fault == "down":
            assert "(after 2 tries)" in text, text
    else:
        # The pages answer, the files do not: pip fails, with env.yaml's bounds, not its
        # default 15 s x 5.
        assert started_installers, "no pip was started"
        for call in started_installers:
            if "--index-url" in call:
                assert (_after(call, "--timeout"), _after(call, "--retries")) == ("2", "1"), call
        assert any("--index-url" in call for call in started_installers), started_installers
    assert (tmp_path / "p" / "env").resolve() == target
    assert installed_of(tmp_path / "p") == before


def test_a_failed_command_shows_its_argv_and_output_with_the_password_as_stars() -> None:
    from pinfold.errors import CommandError
    from pinfold.runner import Runner

    url = f"https://{USER}:{PASSWORD}@index.example/simple/"
    lines: list[str] = []
    with pytest.raises(CommandError) as info:
        Runner(on_output=lines.append).run(
            [sys.executable, "-c", "import sys; print(sys.argv[1]); sys.exit(3)", url], what="a command")
    text = str(info.value) + " ".join(info.value.argv) + info.value.output + "\n".join(lines)
    assert PASSWORD not in text
    assert f"https://{USER}:****@index.example/simple/" in info.value.output
    assert f"{USER}:****@" in " ".join(info.value.argv) and lines == [url.replace(PASSWORD, "****")]
