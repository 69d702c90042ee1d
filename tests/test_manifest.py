"""The manifest of every file, the environment digest, and ``pinfold check --files``.

Real builds (both installers) from real wheels: Twisted's closure (its plugin cache is
generated), a plugin wheel, a wheel with a console script, and a generated script with an
``initialization`` block. Reproducibility is shown by building the same inputs twice: in
the same folder (``--fresh``) and in two checkouts at different absolute paths, of
different lengths (the path is embedded in shebangs, pyvenv.cfg and bytecode).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinfold import build, check, load_spec
from pinfold.envdir import MARKER, PENDING, PYC_STAMPS
from pinfold.errors import ProbeError
from pinfold.manifest import (
    BOOKKEEPING,
    HASHES_FILE,
    MANIFEST_FILE,
    NOT_OWNED,
    Entry,
    Manifest,
    Tokens,
    _by_kind,
    compare,
    digest,
    read_manifest,
    scan,
    write_manifest,
)
from pinfold.record import STATE_FILE, read_digest, read_record
from tests.artifacts import Artifact, copy_real, make_wheel
from tests.conftest import cli, write

REAL = ("twisted", "attrs", "automat", "constantly", "hyperlink", "idna", "incremental",
        "packaging", "typing-extensions", "zope-interface")
PLUGIN = ("from twisted.plugin import IPlugin\nfrom zope.interface import implementer\n"
          "from twisted.application.service import IServiceMaker\n"
          "@implementer(IPlugin, IServiceMaker)\nclass M:\n    tapname = 'mp'\n"
          "    description = 'a plugin'\n    options = None\nmaker = M()\n")
SCRIPTS = """\
scripts:
  - name: app
    entry_point: tool:main
    initialization: |
      GREETING = "hi"
"""


# -- unit: no build ------------------------------------------------------------------------


def test_bookkeeping_names_are_pinfolds() -> None:
    assert {STATE_FILE, MANIFEST_FILE, HASHES_FILE, MARKER, PENDING, PYC_STAMPS} == BOOKKEEPING


def test_scan_compare_and_owners(tmp_path: Path) -> None:
    env = tmp_path / "env-one"
    site = env / "lib" / "python3.11" / "site-packages"
    write(site / "six.py", "x = 1\n")
    write(site / "six-1.0.dist-info" / "RECORD", "six.py,sha256=abc,6\n../../../bin/six,,\n"
          "six-1.0.dist-info/RECORD,,\n")
    write(env / "bin" / "six", f"#!{env}/bin/python\n")
    os.symlink("python3", env / "bin" / "python")
    write(env / STATE_FILE, "{}")
    write(env / MARKER, "x")
    manifest = scan(env, Tokens.of(env))
    assert STATE_FILE not in manifest.entries and MARKER not in manifest.entries
    assert manifest.entries["lib/python3.11/site-packages/six.py"].owner == "six 1.0"
    assert manifest.entries["bin/six"].owner == "six 1.0"
    assert manifest.entries["bin/six"].normalised  # the shebang names the environment
    assert manifest.entries["bin/python"] == Entry(path="bin/python", kind="link", size=7, mode=0o777,
                                                   target="python3")
    again = Manifest.from_json(json.loads(json.dumps(manifest.to_json())))
    assert again.entries == manifest.entries and again.digest == manifest.digest

    # The same tree at a path of another length: the same digest.
    other = tmp_path / "environment-two"
    shutil.copytree(env, other, symlinks=True)
    write(other / "bin" / "six", f"#!{other}/bin/python\n")
    assert scan(other, Tokens.of(other)).digest == manifest.digest

    write(site / "six.py", "x = 2\n")  # a hot-fix
    write(site / "stray.py", "")
    (env / "bin" / "six").unlink()
    found = compare(manifest, env)
    assert found.changed == {"lib/python3.11/site-packages/six.py": "six 1.0"}
    assert found.removed == {"bin/six": "six 1.0"}
    assert found.added == {"lib/python3.11/site-packages/stray.py": ""}
    assert found.lines() == ["six 1.0:", "  removed bin/six", "  changed lib/python3.11/site-packages/six.py",
                             f"{NOT_OWNED}:", "  added lib/python3.11/site-packages/stray.py"]


def test_a_mode_change_is_a_change_but_only_the_x_bit_is_in_the_digest(tmp_path: Path) -> None:
    write(tmp_path / "a.py", "")
    os.chmod(tmp_path / "a.py", 0o644)
    before = scan(tmp_path)
    os.chmod(tmp_path / "a.py", 0o664)
    assert compare(before, tmp_path).changed == {"a.py": ""}
    assert scan(tmp_path).digest == before.digest
    os.chmod(tmp_path / "a.py", 0o755)
    assert scan(tmp_path).digest != before.digest


def test_pyc_and_record_normalisation(tmp_path: Path) -> None:
    pyc = tmp_path / "m" / "__pycache__" / "m.cpython-311.pyc"
    write(pyc, "")
    pyc.write_bytes(b"MAGI\0\0\0\0" + b"mtimsize" + b"code")
    first = scan(tmp_path).digest
    pyc.write_bytes(b"MAGI\0\0\0\0" + b"othrtime" + b"c0de")
    assert scan(tmp_path).digest == first          # the source's mtime, the marshalled code
    pyc.write_bytes(b"MAGI\1\0\0\0" + b"hashhash" + b"code")
    assert scan(tmp_path).digest != first          # checked-hash vs timestamp: it counts
    record = tmp_path / "x-1.dist-info" / "RECORD"
    write(record, "x.py,sha256=aaa,3\n")
    with_record = scan(tmp_path).digest
    write(record, "x.py,sha256=bbb,4\n")
    assert scan(tmp_path).digest == with_record
    write(record, "y.py,sha256=bbb,4\n")
    assert scan(tmp_path).digest != with_record


def test_digest_is_order_free_and_names_paths() -> None:
    a = Entry(path="a", kind="file", size=1, mode=0o644, sha256="0" * 64)
    b = Entry(path="b", kind="file", size=1, mode=0o644, sha256="0" * 64)
    assert digest([a, b]) == digest([b, a]) != digest([a])


def test_an_unreadable_manifest_reads_as_none(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    write(tmp_path / MANIFEST_FILE, "{not json")
    assert read_manifest(tmp_path) is None
    write(tmp_path / MANIFEST_FILE, '{"schema": 99}')
    assert read_manifest(tmp_path) is None
    assert read_digest(tmp_path) is None


# Every character a path, link target or owner can hold (no surrogates: the digest encodes
# paths as UTF-8, as they are on disk), quotes, backslashes and controls most of all.
TEXT = st.text(st.one_of(st.sampled_from('"\\/\n\t\x00\x7f\u2028é😀'),
                         st.characters(exclude_categories=["Cs"])), max_size=12)
# As scan() makes them: a file has no target, a link no sha256.
ENTRY = st.builds(
    lambda path, link, size, mode, text, norm, owner: Entry(
        path=path, kind="link" if link else "file", size=size, mode=mode, sha256="" if link else text,
        target=text if link else "", normalised=norm, owner=owner),
    TEXT, st.booleans(), st.integers(0, 2**63), st.integers(0, 0o7777), TEXT, TEXT, TEXT)


@settings(max_examples=150, deadline=None, database=None)
@given(entries=st.lists(ENTRY, max_size=6, unique_by=lambda e: e.path), bytecode=st.booleans())
def test_the_manifest_file_is_json_with_one_line_per_entry(entries: list[Entry], bytecode: bool) -> None:
    """write_manifest takes each row from Entry.json_row (for speed): it must be exactly the JSON
    encoder's text of that entry, and the whole file the manifest's own JSON."""
    manifest = Manifest(entries={e.path: e for e in entries}, tokens=Tokens((("/x/env", "<env>"),)),
                        runtime_bytecode=bytecode)
    with tempfile.TemporaryDirectory() as tmp:
        write_manifest(Path(tmp), manifest)
        text = (Path(tmp) / MANIFEST_FILE).read_text(encoding="ascii")
    assert json.loads(text) == manifest.to_json()
    one = json.JSONEncoder(sort_keys=True).encode
    rows = [f"  {one(p)}: {one(manifest.entries[p].to_json())}" for p in sorted(manifest.entries)]
    body = text.split('"files": {\n', 1)[1].split("\n }", 1)[0] if rows else ""
    assert body == ",\n".join(rows)
    assert Manifest.from_json(json.loads(text)).entries == manifest.entries


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(max_size=60) | st.lists(
    st.sampled_from([b",", b"\n", b"\r", b"\r\n", b"a", b"=", b"\x0c"]), max_size=30).map(b"".join))
def test_record_normalisation_drops_the_last_two_fields_of_each_line(data: bytes) -> None:
    """The rule, line by line (what the digest has always hashed), against _by_kind's one pass."""
    lines = [re.sub(rb"^(.*),[^,\n]*,[^,\n]*$", rb"\1", line) for line in data.splitlines()]
    assert _by_kind("x-1.dist-info/RECORD", data, Tokens()) == b"\n".join(lines) + b"\n"


# -- real builds ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Artifact]]:
    wh = tmp_path_factory.mktemp("wheelhouse")
    pins = [*copy_real(wh, *REAL),
            make_wheel(wh, "tool", "1.0",
                       files={"tool/__init__.py": "import sys\ndef main(argv=None):\n    return 0\n"},
                       entry_points={"console_scripts": {"tool-hello": "tool:main"}}),
            make_wheel(wh, "myplug", "1.0", files={"twisted/plugins/myplug.py": PLUGIN},
                       requires=["twisted"])]
    return wh, pins


def project(root: Path, wheelhouse: tuple[Path, list[Artifact]], installer: str, *,
            pins: str | None = None, scripts: str = SCRIPTS) -> Path:
    """A checkout: its own copy of the wheelhouse, env.yaml, the lock."""
    wh, artifacts = wheelhouse
    if not (root / "wheelhouse").exists():
        shutil.copytree(wh, root / "wheelhouse")
    write(root / "runtime.txt", pins if pins is not None else "".join(f"{a.pin()}\n" for a in artifacts))
    return write(root / "env.yaml", (
        f"version: 1\npath: env\ninstaller: {installer}\n"
        "index:\n  find_links: [wheelhouse]\n"
        "requirements: runtime.txt\n"
        "final:\n  probes:\n    imports: [twisted]\n"
    ) + scripts)


def differing(one: Path, two: Path) -> list[str]:
    """What makes two environments' digests differ, for the assertion's message."""
    a, b = read_manifest(one), read_manifest(two)
    assert a is not None and b is not None
    return sorted(p for p in a.entries.keys() | b.entries.keys()
                  if p not in a.entries or p not in b.entries
                  or digest([a.entries[p]]) != digest([b.entries[p]]))[:20]


@pytest.fixture(params=["pip", "uv"])
def installer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              monkeypatch: pytest.MonkeyPatch) -> str:
    """Both installers; never the user's uv cache."""
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path_factory.mktemp("uv-cache")))
    return str(request.param)


@pytest.mark.slow
def test_two_checkouts_give_the_same_digest(tmp_path: Path, wheelhouse: tuple[Path, list[Artifact]],
                                            installer: str) -> None:
    one = project(tmp_path / "a", wheelhouse, installer)
    two = project(tmp_path / "a-much-longer-checkout-name" / "deeper", wheelhouse, installer)
    first, second = build(load_spec(one)), build(load_spec(two))
    d1, d2 = read_digest(first.env_dir), read_digest(second.env_dir)
    assert d1 is not None and d1.startswith("sha256:")
    assert d1 == d2, differing(first.env_dir, second.env_dir)
    record = read_record(first.env_dir)
    assert record is not None and record.digest == d1
    manifest = read_manifest(first.env_dir)
    assert manifest is not None and manifest.digest == d1
    assert any(p.endswith("dropin.cache") for p in manifest.entries)

    # Again in the same folder, from scratch (another directory name, another time): the same.
    code, out, _ = cli("build", "--fresh", "--json", str(one))
    assert code == 0
    doc = json.loads(out)
    assert doc["digest"] == d1 and doc["env_dir"] != str(first.env_dir), differing(
        first.env_dir, Path(doc["env_dir"]))

    # One input byte changes the digest: a pin (a lock without the plugin), then a line of
    # a generated script's initialization.
    artifacts = wheelhouse[1]
    project(tmp_path / "a", wheelhouse, installer,
            pins="".join(f"{a.pin()}\n" for a in artifacts if a.name != "myplug"))
    assert read_digest(build(load_spec(one), fresh=True).env_dir) != d1
    project(tmp_path / "a", wheelhouse, installer, scripts=SCRIPTS.replace('"hi"', '"ho"'))
    changed = build(load_spec(one), fresh=True)
    assert read_digest(changed.env_dir) not in (d1, None)
    project(tmp_path / "a", wheelhouse, installer)
    assert read_digest(build(load_spec(one), fresh=True).env_dir) == d1


@pytest.mark.slow
def test_check_files_names_a_hot_fix_and_a_stray_install(
        tmp_path: Path, wheelhouse: tuple[Path, list[Artifact]]) -> None:
    spec_file = project(tmp_path, wheelhouse, "pip")
    spec = load_spec(spec_file)
    res = build(spec)
    code, out, _ = cli("check", "--files", "--json", str(spec_file))
    assert code == 0, out
    doc = json.loads(out)
    assert [p["name"] for p in doc["facts"]["probes"]] == ["files"]
    assert doc["digest"] == read_digest(res.env_dir)
    # The full check runs the files probe too.
    assert "files" in [p.name for p in check(spec).outputs.probe_results]

    env = res.env_dir
    site = next(env.glob("lib/python*/site-packages"))
    hot = site / "tool" / "__init__.py"
    hot.write_text(hot.read_text() + "# hot-fix\n")
    # A stray `pip install` of a distribution the lock does not have.
    stray = make_wheel(tmp_path / "stray-wh", "stray-dist", "0.1")
    # (The environment has no pip of its own: the tool's pip, aimed at it.)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
                    "-q", "--no-index", "--no-deps", str(stray.path)], check=True, capture_output=True)
    code, out, err = cli("check", "--files", str(spec_file))
    assert code != 0
    text = out + err
    assert "tool 1.0:" in text and "changed lib/" in text and "tool/__init__.py" in text
    assert "stray-dist 0.1:" in text and "added lib/" in text
    with pytest.raises(ProbeError) as caught:
        check(spec, files_only=True)
    files = next(r for r in caught.value.results if r.name == "files")
    assert files.status == "fail"
    assert "tool 1.0:" in files.evidence and "stray-dist 0.1:" in files.evidence
    # Probes disabled: --files still compares.
    assert tuple(r.name for r in caught.value.results) == ("files",)


def test_tokens_needed_is_any_of_its_strings() -> None:
    """The shortcut (search only the strings no other one contains) answers as the full search."""
    tokens = Tokens.of(Path("/r/p.d/20240101-x"), path=Path("/r/p"), root=Path("/r"),
                       develop=[Path("/elsewhere/tree")])
    texts = [os.fsencode(text) for text, _ in tokens.pairs]
    samples = [b"", b"nothing here", b"/r", b"/r/", b"20240101-x", b"#!/r/p.d/20240101-x/bin/python",
               b"/elsewhere/tre", b"at /elsewhere/tree/src", b"prompt = 20240101-x", b"/r/p"]
    for data in samples:
        assert tokens.needed(data) == any(t in data for t in texts), data


def test_an_update_hashes_a_file_changed_in_place_with_its_size_and_mtime_kept(tmp_path: Path) -> None:
    """A hard-link clone shares inodes with the previous environment: a file written there in
    place, same size, mtime set back (``cp -p`` onto it), is read again, never taken from the
    previous manifest."""
    from pinfold.envdir import Environments  # the clone an update starts from

    envs = Environments(tmp_path / "env")
    old = envs.versions / "20240101-000000000-aaaaaa"
    envs.versions.mkdir()
    envs.create(old)
    (old / "bin").mkdir()
    module = old / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
    module.parent.mkdir(parents=True)
    module.write_bytes(b"x = 1\n")
    before = scan(old)
    info = module.stat()
    with module.open("r+b") as fh:  # in place: the inode every clone shares
        fh.write(b"x = 2\n")
    os.utime(module, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (module.stat().st_size, module.stat().st_mtime_ns) == (info.st_size, info.st_mtime_ns)
    new = envs.versions / "20240102-000000000-bbbbbb"
    envs.create(new)
    envs.clone(old, new)
    rel = "lib/python3.11/site-packages/pkg/__init__.py"
    after = scan(new)
    assert (new / rel).stat().st_ino == info.st_ino
    assert after.entries[rel].sha256 != before.entries[rel].sha256
    assert after.entries[rel].sha256 == hashlib.sha256(b"x = 2\n").hexdigest()
    # A file replaced by another of the same size and mtime (a new inode) likewise.
    replacement = tmp_path / "replacement"
    replacement.write_bytes(b"x = 3\n")
    os.utime(replacement, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(replacement, new / rel)
    assert scan(new).entries[rel].sha256 == hashlib.sha256(b"x = 3\n").hexdigest()
