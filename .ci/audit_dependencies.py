"""The dependency audit CI runs (see .ci/run): pip-audit over requirements.lock and torch
(installed apart from the lock), against PyPI's vulnerability data first and OSV when
PyPI does not answer.

    python .ci/audit_dependencies.py PIP_AUDIT [IGNORED_VULN_ID ...]

Exit 0: every package checked, none vulnerable; 1: known vulnerabilities (listed);
2: no service answered; 3: some packages could not be checked (listed). A service that
answers "skipped" for every package has not audited anything, so it counts as not
answering rather than as a pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

SERVICES = ("pypi", "osv")


def audit(pip_audit: str, service: str, ignored: list[str], tmp: Path) -> tuple[list[dict], str | None]:
    """The packages pip-audit reported on (with their vulnerabilities), or the reason the
    service could not be asked."""
    unlocked = tmp / "unlocked.txt"
    unlocked.write_text("torch==2.13.0\n")  # not in the lock: see the Makefile
    flags = [arg for vuln in ignored for arg in ("--ignore-vuln", vuln)]
    deps: list[dict] = []
    for n, args in enumerate((["--require-hashes", "-r", "requirements.lock"], ["--no-deps", "-r", str(unlocked)])):
        out = tmp / f"{service}-{n}.json"
        p = subprocess.run(
            [
                pip_audit,
                "-s",
                service,
                "--timeout",
                "30",
                "--progress-spinner",
                "off",
                "--disable-pip",
                "-f",
                "json",
                "-o",
                str(out),
                *flags,
                *args,
            ],
            capture_output=True,
            text=True,
        )
        if not out.exists():  # the service could not be reached at all
            return [], (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1][:300]
        deps += json.loads(out.read_text())["dependencies"]
    return deps, None


def main(pip_audit: str, ignored: list[str]) -> int:
    reasons = []
    tmp = Path(tempfile.mkdtemp())
    for service in SERVICES:
        deps, error = audit(pip_audit, service, ignored, tmp)
        if error:
            reasons.append(f"{service}: {error}")
            continue
        skipped = [d for d in deps if "skip_reason" in d]
        if len(skipped) == len(deps):
            reasons.append(f"{service}: answered for none of {len(deps)} packages ({skipped[0]['skip_reason']})")
            continue
        found = [(d["name"], d["version"], v) for d in deps for v in d.get("vulns", [])]
        if found:
            print(f"dependency audit ({service}): {len(found)} known vulnerabilities:")
            for name, version, v in found:
                fix = ", ".join(v.get("fix_versions", [])) or "none yet"
                print(f"  {name} {version}: {v['id']} (fixed in: {fix}) {v.get('description', '')[:200]}")
            print(
                "Upgrade the package (make lock LOCK_FLAGS='--upgrade-package NAME'), or add the ID to "
                "AUDIT_IGNORE in .ci/run with the reason it does not apply."
            )
            return 1
        if skipped:
            print(
                f"dependency audit ({service}): {len(deps) - len(skipped)} packages checked, no known "
                "vulnerabilities; NOT checked: " + ", ".join(f"{d['name']} ({d['skip_reason']})" for d in skipped)
            )
            return 3
        print(f"dependency audit ({service}): {len(deps)} packages checked, no known vulnerabilities")
        return 0
    print("\n".join(reasons))
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
