"""Property-based tests of the parsers: mutated env.yaml and lock texts never crash pinfold.

Each example is a valid file with one mutation: a value swapped for a hostile one (a
wrong type, an explicit tag, a NUL, a huge string, deep nesting), or the text cut at a
random point. Whatever comes out must be a clean outcome: a spec, or a :class:`SpecError`
whose message names the file; from the CLI exit 0, 1 or 2 and never "internal error";
and nothing created on disk. Bounded: a fixed number of examples, each with a deadline.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinfold import SpecError, load_spec
from pinfold.cli import main
from pinfold.locks import parse_lock

HASH = "sha256:" + "ab" * 32

ENV_LINES = [
    "version: 1",
    "path: env",
    "index:",
    "  find_links: [wheelhouse]",
    "requirements: runtime.txt",
    "installer: pip",
    "compile: true",
    "needs: [six]",
    "final:",
    "  probes:",
    "    reactor: poll",
    "    imports: [six]",
    "    commands: [{argv: [true], timeout: 5}]",
]

HOSTILE = st.sampled_from([
    "", "~", "null", "[]", "{}", "[[[]]]", "-5", "0", ".nan", "1.0", "true", "yes",
    "!!bool maybe", "!!int abc", "!!float fast", "!!timestamp yesterday", "!custom x",
    "!!python/name:os.system ''", "!!binary aGk=", "!!set {a: null}", "&a [*a]",
    '"a\\0b"', '"\\t"', "/", "..", "../..", "/dev/zero", "http://x/", "file:///nope/",
    "x" * 5000, "[" * 300 + "]" * 300, "{a: {b: {c: {d: [1, 2, {e: f}]}}}}", "'''", "'",
    "? complex key", "*undefined", "<<: {a: 1}", "@reserved", "%TAG ! tag:x,2000:",
])


def _tree(tmp: Path) -> None:
    (tmp / "wheelhouse").mkdir(exist_ok=True)
    (tmp / "runtime.txt").write_text(f"six==1.16.0 --hash={HASH}\n", encoding="utf-8")


def _mutate_env(data: st.DataObject) -> str:
    lines = list(ENV_LINES)
    kind = data.draw(st.sampled_from(["value", "truncate", "insert", "swap"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    if kind == "value":
        key, sep, _ = lines[i].partition(":")
        lines[i] = f"{key}{sep} {data.draw(HOSTILE)}"
    elif kind == "insert":
        lines.insert(i, data.draw(st.sampled_from(["", "  ", "  extra: 1", "extra: 1", "- item"]))
                     + data.draw(HOSTILE))
    elif kind == "swap":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    text = "\n".join(lines) + "\n"
    if kind == "truncate":
        text = text[: data.draw(st.integers(0, len(text)))]
    return text


# database=None: no .hypothesis/ folder written into the repository; deadline=None: a test
# asserts outcomes, not speed (a loaded machine would fail a per-example deadline).
@settings(max_examples=120, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_env_yaml_is_a_clean_outcome(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path_factory.mktemp("env")
    monkeypatch.chdir(tmp)
    _tree(tmp)
    text = _mutate_env(data)
    (tmp / "env.yaml").write_text(text, encoding="utf-8")
    before = sorted(p.name for p in tmp.iterdir())
    try:
        load_spec(tmp / "env.yaml")
    except SpecError as exc:
        assert "env.yaml" in str(exc), str(exc)
    command = data.draw(st.sampled_from(["plan", "status", "lock", "check", "gc", "rollback"]))
    args = [command, "--check", "env.yaml"] if command == "lock" else [command, "env.yaml"]
    err = io.StringIO()
    code = main(args, stdout=io.StringIO(), stderr=err)
    assert code in (0, 1, 2), (code, err.getvalue())
    assert "internal error" not in err.getvalue() and "Traceback" not in err.getvalue(), err.getvalue()
    # Reading and planning never create anything (gc and rollback take the build lock, in env.d).
    after = sorted(p.name for p in tmp.iterdir() if p.name != "env.d")
    assert after == before, (text, after)


LOCK_LINES = [
    "# via nothing",
    "six==1.16.0 \\",
    f"    --hash={HASH} \\",
    "    --hash=sha512:" + "cd" * 64,
    "    # via -r needs.in",
    'attrs==23.1.0 ; python_version >= "3.8" \\',
    f"    --hash={HASH}",
]

LOCK_HOSTILE = st.sampled_from([
    "", "\\", "-r other.txt", "--index-url http://x/", "six", "six>=1", "six==1.*",
    "six==not-a-version --hash=sha256:ab", "six==1.0 --hash=md5:ab", "six==1.0 --hash=sha256:zz",
    "six @ file:///x.whl", "\x00", "x" * 5000, "six==1.0 --hash", "# via", "#", "  --hash=sha256:",
    "six[extra]==1.0 --hash=sha256:" + "ab" * 32, "six==1.0 ; python_version >", "é==1 --hash=sha256:",
])


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_locks_parse_into_located_problems(data: st.DataObject,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    lines = list(LOCK_LINES)
    i = data.draw(st.integers(0, len(lines)))
    lines.insert(i, data.draw(LOCK_HOSTILE))
    text = "\n".join(lines)
    text = text[: data.draw(st.integers(0, len(text)))] if data.draw(st.booleans()) else text
    path = tmp_path_factory.mktemp("lock") / "runtime.txt"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    lock, problems = parse_lock(path, shown="runtime.txt")
    for problem in problems:
        assert problem.where.startswith("runtime.txt"), problem
    assert all(pin.hashes for pin in lock.pins)
    assert len({pin.name for pin in lock.pins}) == len(lock.pins)
