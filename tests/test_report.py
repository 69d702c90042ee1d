"""Probe results for people (pinfold.render) and for CI (pinfold.probes.report): exact lines, exact XML.

Fast: no environment, no interpreter run.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pinfold.probes import ProbeResult
from pinfold.probes.report import junit_xml, write_junit
from pinfold.render import probe_lines

RESULTS = [
    ProbeResult(name="pip-check", status="ok", seconds=0.5, summary="no broken requirements"),
    ProbeResult(name="plugin-hygiene", status="warn", seconds=1.0, summary="1 allowed reactor import",
                evidence=("twisted.plugins.x: installs the reactor on import",)),
    ProbeResult(name="lock", status="fail", seconds=0.25, summary="1 difference",
                evidence=("not in the lock: evil==1 \x1b[31m", "second finding")),
]


def test_summary_has_one_line_per_probe_and_the_evidence_under_it() -> None:
    assert probe_lines(RESULTS) == [
        "  ok    0.50s  pip-check: no broken requirements",
        "  WARN  1.00s  plugin-hygiene: 1 allowed reactor import",
        "              twisted.plugins.x: installs the reactor on import",
        "  FAIL  0.25s  lock: 1 difference",
        "              not in the lock: evil==1 \x1b[31m",
        "              second finding",
    ]
    # Without warning evidence, a failure still shows why.
    assert probe_lines(RESULTS, warn_evidence=False) == [
        "  ok    0.50s  pip-check: no broken requirements",
        "  WARN  1.00s  plugin-hygiene: 1 allowed reactor import",
        "  FAIL  0.25s  lock: 1 difference",
        "              not in the lock: evil==1 \x1b[31m",
        "              second finding",
    ]


def test_junit_has_one_testcase_per_probe_and_failures_as_failure() -> None:
    data = junit_xml(RESULTS, suite="pinfold check env.yaml")
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<testsuites") and data.endswith(b"\n")
    root = ET.fromstring(data)
    counts = {"tests": "3", "failures": "1", "errors": "0", "skipped": "0", "time": "1.750"}
    assert root.tag == "testsuites" and root.attrib == {"name": "pinfold", **counts}
    (suite,) = root
    assert {k: suite.get(k) for k in ("name", *counts)} == {"name": "pinfold check env.yaml", **counts}
    assert suite.get("hostname") and suite.get("timestamp")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name"), c.get("time")) for c in cases] == [
        ("pinfold.probes", "pip-check", "0.500"), ("pinfold.probes", "plugin-hygiene", "1.000"),
        ("pinfold.probes", "lock", "0.250")]
    ok, warn, fail = ([(child.tag, child.attrib, child.text) for child in case] for case in cases)
    assert ok == [("system-out", {}, "no broken requirements")]
    assert warn == [("system-out", {}, "WARNING: 1 allowed reactor import\n"
                                       "twisted.plugins.x: installs the reactor on import")]
    # A control character (a colour code) cannot be in XML 1.0: it is replaced, not dropped.
    assert fail == [("failure", {"message": "1 difference", "type": "probe"},
                     "not in the lock: evil==1 \ufffd[31m\nsecond finding")]


def test_a_failure_outside_the_probes_is_one_error_testcase() -> None:
    root = ET.fromstring(junit_xml([], suite="pinfold build env.yaml", error="cannot build\n  details"))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "1")
    (case,) = root.iter("testcase")
    assert (case.get("classname"), case.get("name")) == ("pinfold", "pinfold")
    assert [(e.tag, e.attrib, e.text) for e in case] == [
        ("error", {"message": "cannot build", "type": "pinfold"}, "  details")]


def test_write_junit_writes_the_report_atomically(tmp_path: Path) -> None:
    report = tmp_path / "reports" / "probes.xml"
    write_junit(report, RESULTS, suite="s")
    assert [c.get("name") for c in ET.parse(report).getroot().iter("testcase")] == [
        "pip-check", "plugin-hygiene", "lock"]
    assert [p.name for p in report.parent.iterdir()] == ["probes.xml"]  # no temporary file left
