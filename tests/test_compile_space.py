"""A full disk while byte-compiling is said as such, where it happens: not as files that do not compile.

Real: a small tmpfs (root, as here and in CI) holds a tree of sources; the compile script
fills it with bytecode until the kernel says ENOSPC.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinfold.inside import script


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_compiling_with_its_own_status(small_disk: Path) -> None:
    site = small_disk / "site-packages"
    site.mkdir()
    body = "".join(f"def f{i}(x):\n    return [x * {i} for _ in range(3)]\n" for i in range(300))
    written = 0
    for i in range(40):  # sources fill about half; their bytecode cannot all fit
        try:
            (site / f"m{i}.py").write_text(body)
            written += 1
        except OSError:
            break
        if os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize < 128 * 1024:
            break
    done = subprocess.run([sys.executable, "-I", str(script("compile")), str(site)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, (written, done.stdout, done.stderr)
    nospace = [ln for ln in done.stdout.splitlines() if ln.startswith("NOSPACE ")]
    assert nospace and "No space left on device" in nospace[0], done.stdout
    assert not [ln for ln in done.stdout.splitlines() if ln.startswith("FAILED ")], done.stdout
