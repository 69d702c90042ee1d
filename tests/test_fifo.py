"""A FIFO where pinfold reads a file (env.yaml itself, on the no-op path first) never hangs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_build_of_a_fifo_env_yaml_says_so_and_returns(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "env.yaml")
    # In a subprocess with a timeout: opening the FIFO for reading would block for good.
    done = subprocess.run([sys.executable, "-m", "pinfold", "build", "env.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "env.yaml: cannot read it: not a regular file" in done.stderr
