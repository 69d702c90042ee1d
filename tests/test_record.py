"""The environment record (pinfold.json): one writer, one lenient reader, today's and older files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pinfold.record import SCHEMA, STATE_FILE, EnvRecord, PythonRecord, Watch, read_record, write_record
from pinfold.results import (
    BuildResult,
    CacheFile,
    CompileOutput,
    Plan,
    PluginCachesOutput,
    ProbeResult,
    ProbesOutput,
    StageOutputs,
    StageReport,
)

OUTPUTS = StageOutputs(
    compile=CompileOutput(failed=("lib/python3.11/site-packages/x/py2.py",)),
    plugin_caches=PluginCachesOutput(
        packages=("twisted.plugins",),
        caches=(CacheFile(package="twisted.plugins", path=Path("/env/twisted/plugins/dropin.cache"),
                          modules=12, mtime_ns=1_700_000_000_123_456_789, raised=0.5),),
        removed=(Path("/env/twisted/plugins/dropin.cache"),), fresh=True, margin=1.25),
    probes=ProbesOutput(results=(ProbeResult(name="lock", status="ok", seconds=0.25, summary="fine"),
                                 ProbeResult(name="hygiene", status="warn", seconds=1.0, summary="1",
                                             evidence=("a", "b")))),
)


def record() -> EnvRecord:
    return EnvRecord(
        fingerprint="f" * 64,
        inputs={"env.yaml": "1", "requirements": "2", "build_requirements": "", "python": "py",
                "pinfold": "0.1"},
        watch=Watch(spec="/p/env.yaml", files={"/p/env.yaml": "d"}, folders=("/p/wheelhouse",),
                    python="python3"),
        pinfold="0.1",
        spec=Path("/p/env.yaml"),
        python=PythonRecord(executable="/usr/bin/python3", version="3.11.9", abi="cpython-311",
                            markers={"python_version": "3.11"}),
        installed=("attrs==23.1.0", "twisted==24.3.0"),
        hashes={"attrs": ("sha256:aa",), "twisted": ("sha256:bb", "sha256:cc")},
        develop=(Path("/p/src/app"),),
        plan=Plan(mode="update", reasons=("the runtime lock changed",), install=("twisted==24.3.0",),
                  current=Path("/p/env.d/1")),
        stages=(StageReport("preflight", "ok", 0.5, "2 runtime pins"),
                StageReport("develop", "skipped", 0.0, "kept from the current environment")),
        outputs=OUTPUTS,
    )


def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    write_record(tmp_path, record())
    data = json.loads((tmp_path / STATE_FILE).read_text())
    assert data["schema"] == SCHEMA == 2
    assert not list(tmp_path.glob(".*.tmp"))
    assert read_record(tmp_path) == record()


def test_a_schema_1_record_is_read(tmp_path: Path) -> None:
    """The previous pinfold wrote the same keys without ``schema``."""
    data = record().to_json()
    del data["schema"]
    (tmp_path / STATE_FILE).write_text(json.dumps(data))
    got = read_record(tmp_path)
    assert got is not None and got.schema == 1 and got.installed == record().installed


def _broken() -> list[Any]:
    good = record().to_json()
    return [
        "not json {",
        "[1, 2]",
        "null",
        {**good, "schema": SCHEMA + 1},  # a newer pinfold's
        {**good, "schema": "2"},
        {k: v for k, v in good.items() if k != "inputs"},
        {**good, "installed": "attrs==23.1.0"},
        {**good, "inputs": {"python": 3}},
        {**good, "plan": {**good["plan"], "mode": "sideways"}},
        {**good, "facts": {"probes": [{"name": "x"}]}},
        {**good, "stages": [{"name": "create", "status": "maybe", "seconds": 0, "detail": ""}]},
    ]


@pytest.mark.parametrize("content", _broken())
def test_a_record_it_cannot_read_is_none(tmp_path: Path, content: Any) -> None:
    (tmp_path / STATE_FILE).write_text(content if isinstance(content, str) else json.dumps(content))
    assert read_record(tmp_path) is None


def test_no_record_is_none(tmp_path: Path) -> None:
    assert read_record(tmp_path) is None
    (tmp_path / STATE_FILE).write_bytes(b"\xff\xfe")
    assert read_record(tmp_path) is None


def test_build_result_json_keeps_the_facts_shape() -> None:
    result = BuildResult(spec_file=Path("/p/env.yaml"), path=Path("/p/env"), env_dir=Path("/p/env.d/2"),
                         up_to_date=False, stages=record().stages, warnings=("w",), seconds=1.5,
                         plan=record().plan, outputs=OUTPUTS)
    data = result.to_json()
    assert list(data["facts"]) == ["compile", "plugin_caches", "probes", "plan"]
    assert data["facts"]["plugin_caches"]["caches"][0] == {
        "package": "twisted.plugins", "path": "/env/twisted/plugins/dropin.cache", "modules": 12,
        "mtime_ns": 1_700_000_000_123_456_789, "raised_seconds": 0.5}
    assert data["facts"]["probes"][1] == {"name": "hygiene", "status": "warn", "seconds": 1.0,
                                          "summary": "1", "evidence": ["a", "b"]}
    assert data["stages"][1] == {"name": "develop", "status": "skipped", "seconds": 0.0,
                                 "detail": "kept from the current environment"}
    noop = BuildResult(spec_file=Path("/p/env.yaml"), path=Path("/p/env"), env_dir=Path("/p/env.d/2"),
                       up_to_date=True)
    assert noop.to_json()["facts"] == {}


def test_the_fast_path_reads_only_records_the_reader_reads(tmp_path: Path) -> None:
    """The no-op fast path reads pinfold.json as JSON (pinfold.uptodate): a record the full
    reader refuses (a key missing, any part of another JSON type) it refuses too; one pinfold
    wrote (its checksum holds) it reads without the reader."""
    from pinfold.envlayout import CHECKSUM, record_checksum
    from pinfold.uptodate import RECORD_KEYS, _raw_record

    written = record().to_json()
    assert set(RECORD_KEYS) == set(written) - {"schema", "digest", "packed"}
    write_record(tmp_path, record())
    on_disk = json.loads((tmp_path / STATE_FILE).read_text())
    assert on_disk[CHECKSUM] == record_checksum(on_disk) and _raw_record(tmp_path) == on_disk
    assert read_record(tmp_path) == record()

    def both(data: object) -> tuple[bool, bool]:
        (tmp_path / STATE_FILE).write_text(json.dumps(data))
        return read_record(tmp_path) is None, _raw_record(tmp_path) is None

    for key in RECORD_KEYS:
        assert both({k: v for k, v in on_disk.items() if k != key}) == (True, True), key
    # Every part, top level and one level down, as each other JSON type: the checksum no longer
    # holds, and the fast path refuses exactly what the reader refuses.
    others: list[object] = [None, 7, 1.5, True, "x", [], [1], {}, {"a": 1}]
    refused = 0
    for key, value in on_disk.items():
        places = [(key, None)] + [(key, sub) for sub in (value if isinstance(value, dict) else {})]
        for top, sub in places:
            for other in others:
                data = json.loads(json.dumps(on_disk))
                if sub is None:
                    data[top] = other
                else:
                    data[top][sub] = other
                reader, fast = both(data)
                assert fast == reader, (top, sub, other)
                refused += reader
    assert refused > 100  # the loop reached the reader's checks, not only missing keys
    # Hostile numbers and nesting: None from both, never an exception.
    huge = json.loads(json.dumps(on_disk))
    huge["stages"][0]["seconds"] = 10**400
    assert both(huge) == (True, True)
    (tmp_path / STATE_FILE).write_text("[" * 100_000 + "]" * 100_000)
    assert read_record(tmp_path) is None and _raw_record(tmp_path) is None
