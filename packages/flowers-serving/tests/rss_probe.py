"""Run the real handler on image files and report the peak RSS of each request.

``python rss_probe.py FILE...`` imports ``flowers_serving.handler`` (which loads
the model, as a Lambda cold start does), then sends each file as a direct
invoke, one after the other in this one process, as a warm function would
see them. Before each request the kernel's peak-RSS mark (VmHWM) is reset to
the current RSS through ``/proc/self/clear_refs``, so each figure is that
request's own peak, model and runtime included. One JSON line per file goes to
stdout: ``{"file", "status", "code", "peak_rss_mb", "seconds"}`` (the request's own time); the last line is
``{"baseline_rss_mb", "max_rss_mb"}`` (``getrusage``'s peak over the whole run).
The handler's own log lines go to stderr.

``python rss_probe.py --batch N FILE...`` sends the files as batch requests of
N images each instead; each line then reports an item's code with its batch's
peak.
"""

from __future__ import annotations

import base64
import contextlib
import json
import resource
import sys
import time
from pathlib import Path


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main(paths: list[str]) -> None:
    if paths[:1] == ["--batch"]:
        batches(paths[2:], int(paths[1]))
        return
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        from flowers_serving.handler import lambda_handler

        baseline = _status_kb("VmRSS")
        for path in paths:
            event = {"image": base64.b64encode(Path(path).read_bytes()).decode()}
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            started = time.perf_counter()
            body = lambda_handler(event, None)
            seconds = time.perf_counter() - started
            peak = _status_kb("VmHWM")
            del event
            error = body.get("error") or {}
            line = {
                "file": Path(path).name,
                "status": "error" if error else "ok",
                "code": error.get("code"),
                "peak_rss_mb": round(peak / 1024, 1),
                "seconds": round(seconds, 3),
            }
            print(json.dumps(line), file=out, flush=True)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    print(json.dumps({"baseline_rss_mb": round(baseline / 1024, 1), "max_rss_mb": round(max_rss / 1024, 1)}), file=out)


def batches(paths: list[str], size: int) -> None:
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        from flowers_serving.handler import lambda_handler

        for start in range(0, len(paths), size):
            group = paths[start : start + size]
            event = {"images": [{"image": base64.b64encode(Path(p).read_bytes()).decode()} for p in group]}
            Path("/proc/self/clear_refs").write_text("5")
            body = lambda_handler(event, None)
            peak = _status_kb("VmHWM")
            del event
            results = body.get("results") or [body] * len(group)  # a refused batch: its error for every file
            for path, result in zip(group, results, strict=False):
                error = result.get("error") or {}
                line = {"file": Path(path).name, "code": error.get("code"), "peak_rss_mb": round(peak / 1024, 1)}
                print(json.dumps(line), file=out, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
