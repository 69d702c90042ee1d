"""Probe results for CI: a JUnit XML report file, one testcase per probe.

The text people read about probes is rendered by the CLI (:func:`pinfold.render.probe_lines`).
"""

from __future__ import annotations

import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from ..paths import write_atomic
from . import ProbeResult

__all__ = ["junit_xml", "write_junit"]

#: Characters XML 1.0 cannot hold (control characters from command output, e.g. colours).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(results: Sequence[ProbeResult], *, suite: str, error: str | None = None) -> bytes:
    """A JUnit XML report: one testcase per probe, failing probes as ``<failure>``.

    ``error`` (a build that failed before or outside the probes) becomes one more
    testcase, ``pinfold``, with an ``<error>``, so CI shows why there were no probes.
    """
    failures = sum(r.status == "fail" for r in results)
    total = sum(r.seconds for r in results)
    attrs = {"tests": str(len(results) + (error is not None)), "failures": str(failures),
             "errors": str(int(error is not None)), "skipped": "0", "time": f"{total:.3f}"}
    root = ET.Element("testsuites", {"name": "pinfold", **attrs})
    node = ET.SubElement(root, "testsuite", {
        "name": _clean(suite), **attrs, "hostname": socket.gethostname(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
    })
    for result in results:
        case = ET.SubElement(node, "testcase", {"classname": "pinfold.probes", "name": _clean(result.name),
                                                "time": f"{result.seconds:.3f}"})
        body = _clean("\n".join(result.evidence))
        if result.status == "fail":
            failure = ET.SubElement(case, "failure", {"message": _clean(result.summary), "type": "probe"})
            failure.text = body
        else:
            out = ET.SubElement(case, "system-out")
            prefix = "WARNING: " if result.status == "warn" else ""
            out.text = _clean(f"{prefix}{result.summary}") + (f"\n{body}" if body else "")
    if error is not None:
        case = ET.SubElement(node, "testcase", {"classname": "pinfold", "name": "pinfold", "time": "0"})
        first, _, rest = _clean(error).partition("\n")
        ET.SubElement(case, "error", {"message": first, "type": "pinfold"}).text = rest
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(path: Path, results: Sequence[ProbeResult], *, suite: str,
                error: str | None = None) -> None:
    """Write :func:`junit_xml` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, junit_xml(results, suite=suite, error=error))
