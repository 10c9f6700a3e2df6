"""Print which nox sessions ran and which were skipped, and why, from ``nox --report FILE``.

nox prints its own list as it finishes; this one is the last thing CI prints, one line per session, and ends
with a count (``sessions: N passed, N failed, N skipped``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(report_path: str) -> int:
    path = Path(report_path)
    if not path.exists():
        print(f"ci: no nox report at {path}: nox stopped before it finished", file=sys.stderr)
        return 1
    sessions = json.loads(path.read_text())["sessions"]
    counts = {"success": 0, "failed": 0, "skipped": 0}
    print(f"\n== CI summary: {len(sessions)} nox sessions")
    for session in sessions:
        name = (session.get("signatures") or [session["name"]])[0]
        result = session["result"]
        counts["skipped" if result == "skipped" else "success" if result == "success" else "failed"] += 1
        took = f"{session.get('duration') or 0:6.0f} s"
        reason = f"  ({session['reason']})" if session.get("reason") else ""
        verb = {"success": "ran", "skipped": "skipped"}.get(result, result.upper())
        print(f"{verb:8} {name:34} {took}{reason}")
    print(f"sessions: {counts['success']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
