"""``pinfold pack`` and ``pinfold unpack``: deterministic archives, hosts without an index.

Real builds from real wheels (a console script, a generated script; Twisted with a plugin
for the plugin-cache mtime rule), real archives. Hostile archives are made from a good one
by rewriting its members: the pack document and manifest stay valid, so each test reaches
the one check it is about.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pinfold.errors import SpecError
from pinfold.manifest import Tokens, read_manifest, scan
from pinfold.pack import (
    MTIME,
    PACK_FILE,
    HostPython,
    PackInfo,
    _link_problem,
    _probe_specs,
    _safe_rel,
    _trampoline,
    default_name,
    extract,
    interpreter_mismatch,
    read_info,
    relocate,
    verify_checksum,
)
from pinfold.record import PythonRecord, read_digest, read_record
from tests.artifacts import Artifact, copy_real, make_wheel
from tests.conftest import CAN_UNSHARE, cli, write
from tests.test_json_schema import run as run_json

TOOL = {"tool/__init__.py": "def main(argv=None):\n    print('hello')\n    return 0\n"}
ENV_YAML = """\
version: 1
path: env
index:
  find_links: [wheelhouse]
requirements: runtime.txt
final:
  probes:
    imports: [tool]
    scripts: [[tool-hello]]
scripts:
  - name: app
    entry_point: tool:main
    probe: []
"""


# -- unit: no build ------------------------------------------------------------------------


def test_member_names_must_stay_inside() -> None:
    assert _safe_rel("env/bin/python") == "bin/python"
    for bad in ("env/../x", "env//x", "/etc/passwd", "env/", "other/x", "env/a/./b", "env/a\0b",
                "env/a/../../x"):
        assert _safe_rel(bad) is None, bad


def test_a_probe_timeout_too_large_for_a_float_is_a_type_error() -> None:
    """JSON numbers have any number of digits: a hostile pack document's 400-digit timeout is
    refused as a bad document (TypeError, which unpack reports), not an OverflowError."""
    assert _probe_specs([{"argv": ["tool", "--version"], "timeout": 30}])[0].timeout == 30.0
    for bad in (10**400, True, "30"):
        with pytest.raises(TypeError, match="timeout"):
            _probe_specs([{"argv": ["tool"], "timeout": bad}])


def test_links_must_stay_inside() -> None:
    py = PythonRecord(executable="/opt/py/bin/python3.11", version="3.11.7", abi="cpython-311")
    assert _link_problem("bin/python3", "python", py) is None
    assert _link_problem("bin/python", "/opt/py/bin/python3.11", py) is None
    assert _link_problem("lib64", "lib", py) is None
    assert _link_problem("bin/python", "/usr/bin/python3", py) is not None
    assert _link_problem("lib/x", "/etc/passwd", py) is not None
    assert _link_problem("lib/x", "../../etc", py) is not None
    assert _link_problem("bin/tool", "/opt/py/bin/python3.11", py) is not None
    assert _link_problem("lib/a/b/x", "../../c", py) is None  # leading "..": real folders only
    # Text says "inside" (lib/x), but through a link L (say to "../..") it climbs out.
    assert _link_problem("lib/esc", "a/b/L/../../../../x", py) is not None


def test_a_long_shebang_becomes_the_shell_trampoline() -> None:
    short = b"#!/e/bin/python\nimport x\n"
    assert _trampoline(short) == short
    python = b"/" + b"d" * 130 + b"/bin/python"
    out = _trampoline(b"#!" + python + b"\nimport x\n")
    assert out == b"#!/bin/sh\n'''exec' " + python + b' "$0" "$@"\n' + b"' '''\nimport x\n"


def test_interpreter_mismatch_names_both() -> None:
    markers = {"implementation_name": "cpython", "sys_platform": "linux", "platform_machine": "x86_64"}
    info = PackInfo(digest="sha256:" + "0" * 64, name="env", built_at="/b/env.d/x", path="/b/env",
                    python=PythonRecord(executable="/p", version="3.11.7", abi="cpython-311",
                                        markers=markers), check={})
    assert interpreter_mismatch(info, "3.11.9", "cpython-311", markers, "/p") is None
    why = interpreter_mismatch(info, "3.12.1", "cpython-312", markers, "/p")
    assert why is not None and "3.11.7 (cpython-311" in why and "3.12.1 (cpython-312" in why
    assert interpreter_mismatch(info, "3.11.7", "cpython-311", {**markers, "platform_machine": "aarch64"},
                                "/p") is not None
    assert default_name("env", "sha256:" + "ab" * 32) == "env-abababababab.tar.gz"


PYVENV = """\
home = {home}
implementation = CPython
version_info = 3.11.7.final.0
version = 3.11.7
executable = {python}
command = {tool} -m virtualenv {env}
include-system-site-packages = false
base-prefix = {prefix}
base-exec-prefix = {prefix}
base-executable = {python}
"""


def _fake_env(env: Path, python: str, prefix: str, tool: str = "/checkout-a/.venv/bin/python") -> Path:
    """What virtualenv writes about its interpreter: pyvenv.cfg and the bin/python* links."""
    write(env / "pyvenv.cfg", PYVENV.format(home=os.path.dirname(python), python=python, tool=tool,
                                            env=env, prefix=prefix))
    write(env / "bin" / "tool", f"#!{env}/bin/python\nimport tool\n")
    os.symlink(python, env / "bin" / "python")
    os.symlink("python", env / "bin" / "python3")
    return env


def test_where_the_interpreter_lives_is_not_in_the_digest(tmp_path: Path) -> None:
    """The base interpreter's path (bin/python's target, pyvenv.cfg's home, executable and
    base-* values) and the tool python of pyvenv.cfg's `command` are normalised; its version is not."""
    def digest(env: Path) -> str:
        return scan(env, Tokens.of(env)).digest

    first = digest(_fake_env(tmp_path / "a" / "1", "/root/.pyenv/versions/3.11.7/bin/python3.11",
                             "/root/.pyenv/versions/3.11.7"))
    same = digest(_fake_env(tmp_path / "b" / "1", "/root/.pyenv/versions/3.11.7/bin/python3.11",
                            "/root/.pyenv/versions/3.11.7"))
    elsewhere = digest(_fake_env(tmp_path / "c" / "1", "/usr/bin/python3.11", "/usr"))
    tool = digest(_fake_env(tmp_path / "d" / "1", "/usr/bin/python3.11", "/usr",
                            tool="/another/checkout/.venv/bin/python"))
    assert first == same == elsewhere == tool
    older = _fake_env(tmp_path / "e" / "1", "/usr/bin/python3.11", "/usr")
    cfg = older / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace("3.11.7", "3.11.2"))
    assert digest(older) != first
    relative = _fake_env(tmp_path / "f" / "1", "/usr/bin/python3.11", "/usr")
    os.unlink(relative / "bin" / "python3")
    os.symlink("python3.11", relative / "bin" / "python3")
    assert digest(relative) != first  # a link inside the environment is content


def test_relocate_points_the_environment_at_another_interpreter(tmp_path: Path) -> None:
    old_python = "/root/.pyenv/versions/3.11.7/bin/python3.11"
    built = _fake_env(tmp_path / "b" / "env.d" / "1", old_python, "/root/.pyenv/versions/3.11.7")
    write(built / "bin" / "odd", f"#!{old_python}\nimport odd\n")
    packed = scan(built, Tokens.of(built, path=built.parent.parent / "env"))
    env_dir = tmp_path / "h" / "app.d" / "2"
    shutil.copytree(built, env_dir, symlinks=True)
    host = HostPython(executable="/opt/python/3.11/bin/python3", prefix="/opt/python/3.11",
                      exec_prefix="/opt/python/3.11")
    moved = relocate(env_dir, packed, tmp_path / "h" / "app", host, built_for=old_python)
    assert os.readlink(env_dir / "bin" / "python") == host.executable
    assert os.readlink(env_dir / "bin" / "python3") == "python"
    cfg = (env_dir / "pyvenv.cfg").read_text()
    for line in ("home = /opt/python/3.11/bin", "executable = /opt/python/3.11/bin/python3",
                 "base-executable = /opt/python/3.11/bin/python3", "base-prefix = /opt/python/3.11",
                 "base-exec-prefix = /opt/python/3.11", "version_info = 3.11.7.final.0"):
        assert line + "\n" in cfg, cfg
    assert old_python not in cfg and str(built) not in cfg
    assert {"pyvenv.cfg", "bin/python", "bin/tool"} <= set(moved.files)
    assert moved.manifest.digest == packed.digest
    # Not rewritten, named: a script of bin/ that names the base interpreter.
    assert moved.python_leftovers == ("bin/odd",)


# -- real builds ---------------------------------------------------------------------------


def _builder(root: Path, *, extra: list[Artifact] | None = None, yaml: str = ENV_YAML) -> Path:
    wh = root / "wheelhouse"
    wh.mkdir(parents=True, exist_ok=True)
    pins = [make_wheel(wh, "tool", "1.0", files=TOOL,
                       entry_points={"console_scripts": {"tool-hello": "tool:main"}}), *(extra or [])]
    write(root / "runtime.txt", "".join(f"{a.pin()}\n" for a in pins))
    return write(root / "env.yaml", yaml)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A builder folder with a built environment, and its pack (env.yaml, archive)."""
    root = tmp_path_factory.mktemp("builder")
    spec = _builder(root)
    code, _, err = cli("build", "-q", str(spec))
    assert code == 0, err
    archive = root / "out" / "env.tar.gz"
    archive.parent.mkdir()
    code, _, err = cli("pack", str(spec), "-o", str(archive))
    assert code == 0, err
    return spec, archive


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()]


def _rewrite(archive: Path, out: Path,
             change: Callable[[list[tuple[tarfile.TarInfo, bytes]]], list[tuple[tarfile.TarInfo, bytes]]],
             ) -> Path:
    """``archive``'s members, changed, as a new archive (no .sha256 beside it)."""
    members = change(_members(archive))
    with tarfile.open(out, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out


def _unchanged(dest: Path, before: Path | None) -> None:
    """``dest`` still points at ``before`` and no directory was left half-written."""
    if before is None:
        assert not dest.exists()
    else:
        assert dest.resolve() == before
    versions = dest.with_name(dest.name + ".d")
    left = sorted(p.name for p in versions.iterdir() if not p.name.startswith("."))
    assert left == ([before.name] if before is not None else []), left


@pytest.mark.slow
def test_pack_is_deterministic_and_refuses_what_is_not_as_built(
        packed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, archive = packed
    again = tmp_path / "again.tar.gz"
    doc = run_json("pack", str(spec), "-o", str(again))
    assert again.read_bytes() == archive.read_bytes()
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert doc["sha256"] == sha and (tmp_path / "again.tar.gz.sha256").read_text() == f"{sha}  again.tar.gz\n"
    env_dir = spec.parent / "env"
    assert doc["digest"] == read_digest(env_dir.resolve())
    members = _members(archive)
    assert [m.name for m, _ in members[:3]] == [PACK_FILE, "env/pinfold-manifest.json", "env/pinfold.json"]
    names = [m.name for m, _ in members[3:]]
    assert names == sorted(names)
    assert {(m.uid, m.gid, m.uname, m.gname) for m, _ in members} == {(0, 0, "", "")}
    assert {m.mtime for m, _ in members} == {MTIME}
    raw = archive.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08  # gzip: mtime 0, no file name
    # xz too, and the default name in the current folder.
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("pack", str(spec), "-o", "e.tar.xz")
    assert code == 0, err
    assert lzma_magic(tmp_path / "e.tar.xz")
    code, out, err = cli("pack", str(spec), "--json")
    assert code == 0, err
    assert Path(json.loads(out)["file"]).name == default_name("env", doc["digest"])
    code, _, err = cli("pack", str(spec), "-o", "e.zip")
    assert code == 2 and ".tar.gz" in err

    # A hot-fixed environment is not shipped.
    site = next(env_dir.resolve().glob("lib/python*/site-packages"))
    hot = site / "tool" / "__init__.py"
    text = hot.read_text()
    hot.write_text(text + "# hot-fix\n")
    try:
        code, _, err = cli("pack", str(spec), "-o", str(tmp_path / "hot.tar.gz"))
        assert code == 2 and "differs from its manifest" in err and "tool/__init__.py" in err
        assert not (tmp_path / "hot.tar.gz").exists()
    finally:
        hot.write_text(text)
    os.utime(hot, (MTIME, MTIME))
    # No environment at all.
    empty = write(tmp_path / "none" / "env.yaml", spec.read_text())
    shutil.copy(spec.parent / "runtime.txt", empty.parent)
    (empty.parent / "wheelhouse").mkdir()
    code, _, err = cli("pack", str(empty))
    assert code == 2 and "no environment" in err


def lzma_magic(path: Path) -> bool:
    return path.read_bytes()[:6] == b"\xfd7zXZ\0"


@pytest.mark.slow
def test_unpack_relocates_probes_switches_and_keeps_the_previous(
        packed: tuple[Path, Path], tmp_path: Path) -> None:
    spec, archive = packed
    built = read_record((spec.parent / "env").resolve())
    assert built is not None
    # A DEST long enough that a plain #! line would pass the kernel's limit.
    dest = tmp_path / ("h" * 60) / ("o" * 60) / "app"
    first = run_json("unpack", str(archive), "--path", str(dest))
    env_dir = Path(first["env_dir"])
    assert dest.resolve() == env_dir and first["digest"] == built.digest
    assert first["sha256_file"] == f"{archive}.sha256"
    assert {"pyvenv.cfg", "bin/tool-hello", "bin/activate"} <= set(first["relocated"])
    assert {p["name"] for p in first["facts"]["probes"]} >= {"files", "lock", "import tool",
                                                             "script tool-hello", "script app"}
    hello = (env_dir / "bin" / "tool-hello").read_bytes()
    assert hello.startswith(b"#!/bin/sh\n'''exec' " + str(env_dir).encode() + b"/bin/python ")
    assert str(built.python.executable) in (env_dir / "pyvenv.cfg").read_text()
    assert str(spec.parent) not in (env_dir / "bin" / "activate").read_text()
    done = subprocess.run([dest / "bin" / "tool-hello"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "hello\n"
    manifest = read_manifest(env_dir)
    assert manifest is not None and manifest.digest == built.digest
    assert (env_dir / "lib").exists() and not (env_dir / PACK_FILE).exists()

    # check without env.yaml: the probes of the pack, and the files.
    doc = run_json("check", "--path", str(dest))
    assert doc["digest"] == built.digest and "files" in {p["name"] for p in doc["facts"]["probes"]}
    assert run_json("check", "--files", "--path", str(dest))["ok"]

    # A second unpack: a new directory, the first one kept for rollback.
    second = run_json("unpack", str(archive), "--path", str(dest))
    assert second["env_dir"] != first["env_dir"] and env_dir.is_dir()
    assert run_json("rollback", "--path", str(dest))["to"] == first["env_dir"]
    assert dest.resolve() == env_dir
    # Without the checksum file beside it: said so, and the manifest still checks every file.
    bare = tmp_path / "bare.tar.gz"
    shutil.copy(archive, bare)
    code, out, err = cli("unpack", str(bare), "--path", str(dest), "--json")
    assert code == 0 and json.loads(out)["sha256_file"] is None
    assert "no bare.tar.gz.sha256 beside it: its hash was not checked" in err
    third = Path(json.loads(out)["env_dir"])
    removed = run_json("gc", "--path", str(dest), "--keep", "1")["removed"]
    assert sorted(removed) == sorted([first["env_dir"], second["env_dir"]])
    assert dest.resolve() == third and not env_dir.exists()
    # A hot-fix on the host is named by check.
    script = third / "bin" / "tool-hello"
    text = script.read_bytes()
    script.write_bytes(text + b"# hot-fix\n")
    code, out, err = cli("check", "--files", "--path", str(dest))
    assert code == 1 and "changed bin/tool-hello" in out + err
    script.write_bytes(text)
    code, _, err = cli("check", "--path", str(dest), str(spec))
    assert code == 2 and "not both" in err
    # An environment built here has its probes in its env.yaml.
    code, _, err = cli("check", "--path", str(spec.parent / "env"))
    assert code == 2 and "not placed by `pinfold unpack`" in err


_LIMITED = """\
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from pinfold.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_write_error_keeps_the_previous_environment(packed: tuple[Path, Path], tmp_path: Path) -> None:
    """No file may grow past 4 KiB (as a full disk would stop it): exit 1, DEST as it was."""
    _, archive = packed
    dest = tmp_path / "app"
    before = Path(run_json("unpack", str(archive), "--path", str(dest))["env_dir"])
    done = subprocess.run([sys.executable, "-c", _LIMITED, "unpack", str(archive), "--path", str(dest)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "cannot write" in done.stderr and "previous environment is unchanged" in done.stderr
    _unchanged(dest, before)


@pytest.mark.slow
def test_hostile_and_damaged_archives_change_nothing(packed: tuple[Path, Path], tmp_path: Path) -> None:
    _spec, archive = packed
    dest = tmp_path / "app"
    good = run_json("unpack", str(archive), "--path", str(dest))
    before = Path(good["env_dir"])

    def refused(bad: Path, *words: str) -> None:
        code, out, err = cli("unpack", str(bad), "--path", str(dest))
        assert code == 2, out + err
        for word in words:
            assert word in err, err
        _unchanged(dest, before)

    def add(info: tarfile.TarInfo, data: bytes = b"") -> Callable[
            [list[tuple[tarfile.TarInfo, bytes]]], list[tuple[tarfile.TarInfo, bytes]]]:
        return lambda members: [*members, (info, data)]

    def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = kind, link, 0o644
        return info

    outside = tmp_path / "outside"
    refused(_rewrite(archive, tmp_path / "t1.tar.gz", add(member("env/../outside"), b"x")),
            "not a relative name inside env/")
    refused(_rewrite(archive, tmp_path / "t2.tar.gz", add(member(str(outside)), b"x")),
            "not a relative name")
    # A link out of the environment, then a file written through it.
    def escape(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
        return [*members, (member("env/lib/escape", tarfile.SYMTYPE, str(tmp_path)), b""),
                (member("env/lib/escape/outside"), b"x")]
    refused(_rewrite(archive, tmp_path / "t3.tar.gz", escape), "outside the environment")
    assert not outside.exists()
    # Below a link the manifest does list (bin/python3 -> python).
    refused(_rewrite(archive, tmp_path / "t3b.tar.gz", add(member("env/bin/python3/evil"), b"x")),
            "below a symlink")
    up = member("env/lib/up", tarfile.SYMTYPE, "../../..")
    refused(_rewrite(archive, tmp_path / "t3c.tar.gz", add(up)), "outside the environment")
    # A link that looks inside as text but climbs out through another link (say a/b/L -> ../..)
    # is refused by its target alone, before its manifest entry is even looked up.
    chain = member("env/lib/esc", tarfile.SYMTYPE, "a/b/L/../../../../x")
    refused(_rewrite(archive, tmp_path / "t3d.tar.gz", add(chain)), "'..' after a name")
    # bin/ itself a link (relocation rewrites what is in bin/): refused before anything is read.
    def bin_link(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
        kept = [(m, d) for m, d in members if not m.name.startswith("env/bin/")]
        return [*kept, (member("env/bin", tarfile.SYMTYPE, "lib"), b"")]
    refused(_rewrite(archive, tmp_path / "t3e.tar.gz", bin_link), "env/bin is a symlink")
    refused(_rewrite(archive, tmp_path / "t4.tar.gz", add(member("env/dev", tarfile.CHRTYPE))),
            "device")
    # A file of the manifest replaced by other bytes.
    def swap(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
        return [(m, d.replace(b"hello", b"HELLO") if m.name.endswith("tool/__init__.py") else d)
                for m, d in members]
    refused(_rewrite(archive, tmp_path / "t5.tar.gz", swap), "does not match its manifest")
    refused(_rewrite(archive, tmp_path / "t6.tar.gz", lambda ms: ms[:-2]), "missing")
    # Truncated, one flipped byte, a wrong checksum file.
    raw = archive.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(raw[: len(raw) // 2])
    refused(tmp_path / "cut.tar.gz", "not an intact pinfold pack")
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    (tmp_path / "flip.tar.gz").write_bytes(bytes(flipped))
    refused(tmp_path / "flip.tar.gz", "not an intact pinfold pack")
    shutil.copy(archive, tmp_path / "same.tar.gz")
    (tmp_path / "same.tar.gz.sha256").write_text("0" * 64 + "  same.tar.gz\n")
    refused(tmp_path / "same.tar.gz", "does not match", "same.tar.gz.sha256")
    # Built for another interpreter: both named.
    def other_python(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
        doc = json.loads(members[0][1])
        doc["python"]["version"], doc["python"]["abi"] = "3.99.0", "cpython-399"
        return [(members[0][0], json.dumps(doc).encode()), *members[1:]]
    refused(_rewrite(archive, tmp_path / "py.tar.gz", other_python), "3.99.0 (cpython-399", "cpython-3")
    refused(tmp_path / "nothing.tar.gz", "no such archive")


@pytest.mark.slow
def test_the_bytes_unpacked_are_the_bytes_checked(packed: tuple[Path, Path], tmp_path: Path) -> None:
    """extract() hashes what it reads through the one open handle: an archive whose bytes are
    not the ones whose sha256 was checked (changed in place meanwhile) is refused."""
    _spec, archive = packed
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    with archive.open("rb") as fh:
        info = read_info(archive, fh)
        with pytest.raises(SpecError, match="changed while it was being unpacked"):
            extract(archive, env_dir, info, fh=fh, sha256="0" * 64)
    fresh = tmp_path / "env2"
    fresh.mkdir()
    with archive.open("rb") as fh:
        extract(archive, fresh, info, fh=fh, sha256=verify_checksum(archive, fh).sha256)
    assert (fresh / "pyvenv.cfg").is_file()


@pytest.mark.slow
def test_a_failing_probe_keeps_the_previous_environment(packed: tuple[Path, Path], tmp_path: Path) -> None:
    _spec, archive = packed
    dest = tmp_path / "app"
    before = Path(run_json("unpack", str(archive), "--path", str(dest))["env_dir"])

    def failing(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
        doc = json.loads(members[0][1])
        doc["check"]["probes"]["imports"] = ["no_such_module"]
        return [(members[0][0], json.dumps(doc).encode()), *members[1:]]

    bad = _rewrite(archive, tmp_path / "probe.tar.gz", failing)
    doc = run_json("unpack", str(bad), "--path", str(dest), form="error", code=1)
    assert any(p["name"] == "import no_such_module" and p["status"] == "fail" for p in doc["probes"])
    _unchanged(dest, before)


@pytest.mark.slow
def test_plugin_caches_stay_fresh_after_unpack(tmp_path: Path) -> None:
    plugin = ("from twisted.plugin import IPlugin\nfrom zope.interface import implementer\n"
              "@implementer(IPlugin)\nclass P:\n    pass\np = P()\n")
    wh = tmp_path / "b" / "wheelhouse"
    wh.mkdir(parents=True)
    real = copy_real(wh, "twisted", "attrs", "automat", "constantly", "hyperlink", "idna", "incremental",
                     "packaging", "typing-extensions", "zope-interface")
    plug = make_wheel(wh, "myplug", "1.0", files={"twisted/plugins/myplug.py": plugin}, requires=["twisted"])
    spec = _builder(tmp_path / "b", extra=[*real, plug])
    assert cli("build", "-q", str(spec))[0] == 0
    archive = tmp_path / "p.tar.gz"
    assert cli("pack", str(spec), "-o", str(archive))[0] == 0
    doc = run_json("unpack", str(archive), "--path", str(tmp_path / "h" / "app"))
    probes = {p["name"]: p["status"] for p in doc["facts"]["probes"]}
    assert probes["plugin-caches"] == "ok", probes
    caches = [m for m, _ in _members(archive) if m.name.endswith("/dropin.cache")]
    assert caches and {m.mtime for m in caches} == {MTIME + 1}


@pytest.mark.slow
@pytest.mark.skipif(not CAN_UNSHARE, reason="unshare -n is not permitted here")
def test_build_once_deploy_on_two_hosts_without_network(tmp_path: Path) -> None:
    """The README's pipeline: a builder builds and packs; two hosts, with no network and no
    wheelhouse in reach, unpack from an artifact store and check."""
    builder, store = tmp_path / "builder", tmp_path / "store"
    spec = _builder(builder)
    assert cli("build", "-q", str(spec))[0] == 0
    store.mkdir()
    code, out, err = cli("pack", str(spec), "-o", str(store / "app.tar.gz"), "--json")
    assert code == 0, err
    digest = json.loads(out)["digest"]
    # The builder's inputs are out of reach of the hosts.
    shutil.move(builder / "wheelhouse", tmp_path / "elsewhere")
    for host in ("host-a", "host-b"):
        folder = tmp_path / host
        folder.mkdir()
        script = (f"ip link set lo up; cd {folder} && "
                  f"{sys.executable} -m pinfold unpack {store / 'app.tar.gz'} --path {folder / 'app'} -q && "
                  f"{sys.executable} -m pinfold check --path {folder / 'app'} --json")
        env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL")}
        done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                              timeout=300, env=env, cwd=folder)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["ok"] and doc["digest"] == digest
        assert (folder / "app").resolve().parent == folder / "app.d"
        assert not list(folder.glob("**/wheelhouse"))


@pytest.mark.slow
def test_a_uv_environment_built_at_a_long_path_unpacks_at_a_short_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv's scripts, and the trampoline a long build path gets, relocate too."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "uv-cache"))
    root = tmp_path / ("b" * 70) / ("u" * 70)
    spec = _builder(root, yaml=ENV_YAML.replace("path: env\n", "path: env\ninstaller: uv\n"))
    assert cli("build", "-q", str(spec))[0] == 0
    built = (root / "env").resolve()
    assert (built / "bin" / "tool-hello").read_bytes().startswith(b"#!/bin/sh\n")
    archive = tmp_path / "uv.tar.gz"
    assert cli("pack", str(spec), "-o", str(archive))[0] == 0
    dest = tmp_path / "h" / "app"
    doc = run_json("unpack", str(archive), "--path", str(dest))
    assert doc["digest"] == read_digest(built) and "bin/tool-hello" in doc["relocated"]
    done = subprocess.run([dest / "bin" / "tool-hello"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "hello\n"
    assert run_json("check", "--path", str(dest))["ok"]


def _other_minor(version: str) -> Path | None:
    """A pyenv Python of another X.Y than ``version`` on this machine, or None."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    done = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=60)
    minor = ".".join(version.split(".")[:2])
    for folder in sorted(Path(done.stdout.strip()).glob("versions/3.*")):
        found = [p for p in folder.glob("bin/python3.*") if p.name.count(".") == 1
                 and p.name != f"python{minor}" and not p.name.endswith("-config")]
        if found and not folder.name.startswith(minor + "."):
            return found[0]
    return None


@pytest.mark.slow
def test_unpack_with_the_hosts_own_path_to_the_interpreter(
        packed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--python`: the same interpreter at another path (a symlink in a folder of its own, and
    a name on PATH) runs the environment, and the digest does not change; another X.Y or
    no such file is refused, naming both."""
    spec, archive = packed
    built = read_record((spec.parent / "env").resolve())
    assert built is not None and built.digest is not None
    real = built.python.executable
    host_python = tmp_path / "opt" / "bin" / Path(real).name
    host_python.parent.mkdir(parents=True)
    host_python.symlink_to(real)
    dest = tmp_path / "app"
    doc = run_json("unpack", str(archive), "--path", str(dest), "--python", str(host_python))
    env_dir = Path(doc["env_dir"])
    assert doc["digest"] == built.digest
    assert doc["python"] == {"executable": str(host_python), "version": built.python.version,
                             "abi": built.python.abi, "built_for": real}
    assert {"pyvenv.cfg", "bin/python"} <= set(doc["relocated"])
    assert all(p["status"] == "ok" for p in doc["facts"]["probes"]), doc["facts"]["probes"]
    assert os.readlink(env_dir / "bin" / "python") == str(host_python)
    cfg = (env_dir / "pyvenv.cfg").read_text()
    assert f"home = {host_python.parent}\n" in cfg and f"base-executable = {host_python}\n" in cfg
    assert real not in cfg
    manifest = read_manifest(env_dir)
    assert manifest is not None and manifest.digest == built.digest
    record = read_record(env_dir)
    assert record is not None and record.python.executable == str(host_python)
    done = subprocess.run([dest / "bin" / "tool-hello"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "hello\n"
    checked = run_json("check", "--path", str(dest))
    assert checked["ok"] and checked["digest"] == built.digest
    assert run_json("check", "--files", "--path", str(dest))["ok"]

    # A bare name is looked up on PATH.
    monkeypatch.setenv("PATH", f"{host_python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    again = run_json("unpack", str(archive), "--path", str(dest), "--python", host_python.name)
    assert again["python"]["executable"] == str(host_python) and again["digest"] == built.digest
    versions = dest.with_name("app.d")

    def unchanged() -> None:
        assert dest.resolve() == Path(again["env_dir"])
        assert sorted(p for p in versions.iterdir() if not p.name.startswith(".")) == [
            env_dir, Path(again["env_dir"])]

    # No such interpreter: exit 2, nothing changed.
    code, _, err = cli("unpack", str(archive), "--path", str(dest), "--python", str(tmp_path / "nope"))
    assert code == 2 and f"--python {tmp_path / 'nope'}: there is no such interpreter" in err, err
    unchanged()
    code, _, err = cli("unpack", str(archive), "--path", str(dest), "--python", "no-such-python3")
    assert code == 2 and "no such interpreter on PATH" in err, err
    unchanged()

    # Another X.Y: refused, both named.
    other = _other_minor(built.python.version)
    if other is None:
        pytest.skip("no Python of another X.Y version under `pyenv root` to refuse")
    code, _, err = cli("unpack", str(archive), "--path", str(dest), "--python", str(other))
    assert code == 2, err
    assert f"{built.python.version} ({built.python.abi}" in err and real in err and str(other) in err
    assert other.name.removeprefix("python") in err
    unchanged()
