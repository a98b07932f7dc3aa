"""Helpers the tests share: run the installed CLI, read its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
CSBOT = Path(sys.executable).with_name("csbot")


def run_csbot(
    *args: str, workspace: Path | None = None, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the installed `csbot` console script; fail with its output when check is set."""
    cmd = [str(CSBOT), *args]
    if workspace is not None:
        cmd += ["--workspace", str(workspace)]
    proc = subprocess.run(cmd, capture_output=True, text=True, input=stdin, cwd=REPO, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])
