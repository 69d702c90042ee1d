"""The no-op fast path reads ``path``/``python``/``extends`` of a plain env.yaml without YAML.

Whatever :func:`pinfold.uptodate._top_keys` (or, for a JSON env.yaml, ``_json_keys``) reads
must be what ``yaml.safe_load`` gives for those keys; whatever it is not sure of it leaves to
YAML (None). And how it knows the interpreter by its files (``interpreter_stamp``). Fast: no build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pinfold import uptodate
from pinfold.uptodate import _WANTED, _json_keys, _top_keys

READ_HERE = [
    "path: env\n", "path: env  # a comment\n", "path: 'my env'\n", 'path: "x # y"\n',
    "python: python3.11\n", "python: /usr/bin/python3\n", "python: ~/py/bin/python\n",
    "path: ./env\npython: ../x/python\n", "python-: x\n", "path: _x\n", "", "\n",
    "extends: base.yaml\n", "extends: [a.yaml, b.yaml]\n", "extends: []\n",
    "extends:\n  - a.yaml\n  - b.yaml\npath: e\n", "extends:\n- a.yaml\n- 'b c.yaml'\n",
    "extends: [a, 'b']  # x\n", "index: {a: b}  # c\npath: p\n",
    "version: 1\npath: env    # a symlink\nindex:\n  find_links: [wheelhouse]\n",
    "# comment\n\npath: env\nscripts:\n- name: x\n  initialization: |\n    path: no\n",
]
LEFT_TO_YAML = [
    "path: env#c\n", "path: yes\n", "path: on\n", "path: Null\n", "path: 3.11\n", "path: .env\n",
    "path: -x\n", "path: env\npath: other\n", "extends:\n", "path:\n", "path: a\n  b\n",
    "path: a\n\n  b\n", "index: {find_links: x,\npath: b}\n", "description: \"x\npath: b\nend: y\"\n",
    "---\npath: x\n", "path: &a x\n", "path: !!str x\n", "path+: [x]\n", "path: env\r\n",
    "path:\tx\n", "path: 'a'b\n", 'path: "a\\"b"\n', "path: x:y\n", "path: x: y\n", "key:value\n",
    "extends: [a, [b]]\n", "extends: [a,\n  b]\n", "path: /a/b c\n", "?x: y\n", "<<: {path: x}\n",
    "\ufeffpath: env\n", "[1, 2]\n", "- path: x\n",
]


Reader = Callable[[bytes], "dict[str, object] | None"]
READERS: dict[str, Reader] = {"lines": _top_keys, "json": _json_keys}


JSON_READ_HERE = [
    '{"path": "env", "python": "python3.11"}', '{\n "path": "env",\n "index": {"find_links": "w"}\n}',
    '{"extends": ["a.yaml", "b.yaml"], "path": "e"}', '{"path": "caf\\u00e9"}', "{}",
    '  \n{"version": 1, "path": "env", "final": {"probes": {"imports": ["twisted"]}}}',
]
JSON_LEFT_TO_YAML = [
    '{"path": "a", "path": "b"}', '{"index": {"x": 1, "x": 2}, "path": "p"}', '{"path": "é"}',
    '{path: env}', '{"path": "env",}', '{"path": "env"} # c', "[1, 2]", "{" * 5000 + "}" * 5000,
]


@pytest.mark.parametrize(("reader", "text"), [("lines", t) for t in READ_HERE]
                         + [("json", t) for t in JSON_READ_HERE])
def test_plain_files_are_read_as_yaml_reads_them(reader: str, text: str) -> None:
    loaded = yaml.safe_load(text) or {}
    assert READERS[reader](text.encode()) == {k: v for k, v in loaded.items() if k in _WANTED}


@pytest.mark.parametrize(("reader", "text"), [("lines", t) for t in LEFT_TO_YAML]
                         + [("json", t) for t in JSON_LEFT_TO_YAML])
def test_anything_else_is_left_to_yaml(reader: str, text: str) -> None:
    assert READERS[reader](text.encode()) is None


def _find_keys_fresh(file: Path, key: str) -> list[str]:
    """``_find_keys`` on ``file`` in a fresh interpreter: its answer, ``key``'s value, and
    whether YAML's parser got imported."""
    probe = ("import sys; from pathlib import Path; from pinfold.uptodate import _find_keys; "
             "found, read = {}, []; ok = _find_keys(Path(sys.argv[1]), found, read); "
             "print(ok, found[sys.argv[2]][1], 'yaml' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, str(file), key],
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_a_plain_env_yaml_needs_no_yaml_import_and_others_still_work(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("path: &p from-base\n")  # an anchor: YAML reads it
    (tmp_path / "env.yaml").write_text("extends: base.yaml  # the base\npython: python3\n")
    assert _find_keys_fresh(tmp_path / "env.yaml", "python") == ["True", "python3", "True"]
    (tmp_path / "base.yaml").write_text("path: from-base\n")
    assert _find_keys_fresh(tmp_path / "env.yaml", "python") == ["True", "python3", "False"]


def test_a_json_env_yaml_needs_no_yaml_import(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text('{"path": "env", "python": "python3"}\n')
    assert _find_keys_fresh(tmp_path / "env.yaml", "path") == ["True", "env", "False"]


def test_interpreter_stamp_names_the_files_python_runs_as(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A native executable through a link, the pyvenv.cfg candidates and a libpython: any write
    (mtime restored), replacement, new pyvenv.cfg or moved link shows; a script gets no stamp."""
    # Files made just now are "racy" (their ctime is now); the rule itself is tested below.
    monkeypatch.setattr(uptodate, "RACY_SECONDS", 0.0)
    exe = tmp_path / "base" / "bin" / "python3.99"
    exe.parent.mkdir(parents=True)
    exe.write_bytes(b"\x7fELF" + bytes(60))
    lib = tmp_path / "base" / "lib" / "libpython3.99.so"
    lib.parent.mkdir()
    lib.write_bytes(b"\x7fELF" + bytes(60))
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(exe)
    (tmp_path / "venv" / "pyvenv.cfg").write_text(f"home = {exe.parent}\n")
    stamp = uptodate.interpreter_stamp(str(link), [str(lib)])
    assert stamp is not None
    assert stamp[str(exe)] is not None and stamp[str(lib)] is not None
    assert stamp[str(tmp_path / "venv" / "pyvenv.cfg")] is not None
    assert stamp[str(tmp_path / "venv" / "bin" / "pyvenv.cfg")] is None
    assert stamp[str(exe.parent.parent / "pyvenv.cfg")] is None
    assert uptodate.stamp_holds(str(link), stamp)

    def rewritten(path: Path) -> None:  # the same bytes again, the mtime set back
        before = path.stat()
        time.sleep(0.02)  # past the file system clock's granularity
        path.write_bytes(path.read_bytes())
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    def replaced(path: Path) -> None:  # a copy with the same bytes and times, renamed over it
        shutil.copy2(path, path.with_name("new"))
        os.replace(path.with_name("new"), path)

    def moved(path: Path, target: Path) -> None:  # the link pointed at another executable
        path.unlink()
        path.symlink_to(target)

    other = exe.with_name("python3.98")
    other.write_bytes(exe.read_bytes())
    changes: dict[str, Callable[[], object]] = {
        "executable rewritten": lambda: rewritten(exe),
        "library rewritten": lambda: rewritten(lib),
        "pyvenv.cfg rewritten": lambda: rewritten(tmp_path / "venv" / "pyvenv.cfg"),
        "a pyvenv.cfg beside the executable": lambda: (exe.parent / "pyvenv.cfg").write_text("x\n"),
        "executable replaced": lambda: replaced(exe),
        "link moved": lambda: moved(link, other),
    }
    for name, change in changes.items():
        stamp = uptodate.interpreter_stamp(str(link), [str(lib)])
        assert stamp is not None and uptodate.stamp_holds(str(link), stamp), name
        change()
        assert not uptodate.stamp_holds(str(link), stamp), name
        (exe.parent / "pyvenv.cfg").unlink(missing_ok=True)
        if link.resolve() != exe:
            link.unlink()
            link.symlink_to(exe)

    script = tmp_path / "shim"
    script.write_text("#!/bin/sh\nexec python3 \"$@\"\n")
    assert uptodate.interpreter_stamp(str(script)) is None
    assert uptodate.interpreter_stamp(str(tmp_path / "missing")) is None
    assert uptodate.interpreter_stamp(str(link), [str(tmp_path / "no-such-lib.so")]) is None
    os.mkfifo(tmp_path / "fifo")  # must not hang
    assert uptodate.interpreter_stamp(str(tmp_path / "fifo")) is None


def test_interpreter_stamp_is_not_taken_of_a_file_changed_just_now(tmp_path: Path) -> None:
    exe = tmp_path / "python"
    exe.write_bytes(b"\x7fELF" + bytes(60))
    assert uptodate.interpreter_stamp(str(exe)) is None  # its ctime is now: within the racy window
