"""Print which nox sessions ran and which were skipped, and why, from ``nox --report FILE`` (one or more).

nox prints its own list as it finishes; this one is the last thing CI prints, one line per session, and ends
with a count over every report (``sessions: N passed, N failed, N skipped``). A report named
``ci-report-3.X.json`` came from nox running on Python 3.X; any other from this interpreter's nox (``python3``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def main(report_paths: list[str]) -> int:
    counts = {"success": 0, "failed": 0, "skipped": 0}
    code = 0
    for report_path in report_paths:
        path = Path(report_path)
        named = re.search(r"-(\d+\.\d+)\.json$", path.name)
        python = named[1] if named else ".".join(map(str, sys.version_info[:3]))
        if not path.exists():
            print(f"ci: no nox report at {path}: nox stopped before it finished", file=sys.stderr)
            code = 1
            continue
        sessions = json.loads(path.read_text())["sessions"]
        print(f"\n== CI summary: {len(sessions)} nox sessions, nox on Python {python}")
        for session in sessions:
            name = (session.get("signatures") or [session["name"]])[0]
            result = session["result"]
            counts["skipped" if result == "skipped" else "success" if result == "success" else "failed"] += 1
            took = f"{session.get('duration') or 0:6.0f} s"
            reason = f"  ({session['reason']})" if session.get("reason") else ""
            verb = {"success": "ran", "skipped": "skipped"}.get(result, result.upper())
            print(f"{verb:8} {name:34} {took}{reason}")
    print(f"sessions: {counts['success']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
