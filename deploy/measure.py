"""Measure what a Lambda bills for one request: the real handler and model, at the CPU share of each memory size.

Lambda gives a function a share of a vCPU proportional to its memory (one full vCPU at 1,769 MB). Here each
memory size becomes a Linux CFS quota (``cpu.cfs_quota_us`` / ``cpu.max``, period 100 ms) on a child process
that runs ``flowers_serving.handler.lambda_handler`` in-process, back to back: one core of this machine stands
in for a Lambda x86_64 vCPU. Without cgroup access (not root, no cpu controller) only the full core is measured
and the shares are modelled as full-core time / share; the results say which.

Per request the timed section is what a Lambda runtime does between receiving the event and posting the reply:
decode the event JSON, call the handler, encode the reply. The image is the one ``nox -s bench`` times (the
passion-flower fixture at 500x500, JPEG q90), sent as the client sends a local file: ``{"image": <base64>}``,
once as a REST API (v1) proxy event and once as an HTTP API / function URL (v2) event; then the same image
sixteen times in one batch request (``{"images": [...]}``, kinds ``v1-batch16`` and ``v2-batch16``, fewer
requests: each takes sixteen times as long). Metrics are on (``POWERTOOLS_METRICS_NAMESPACE``), so the EMF
line's cost is in the time and in the log bytes.

``python deploy/measure.py [--rounds 3] [--requests 300] [--batch-requests 20] > measured.json``;
``deploy/cost.py`` calls it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLOWER = ROOT / "tests" / "fixtures" / "flowers" / "077-passion-flower.jpg"
FULL_VCPU_MB = 1769  # https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html
MEMORY_SIZES = (512, 1024, FULL_VCPU_MB)
CFS_PERIOD_US = 100_000
CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
CONTENDED_BELOW = 0.85  # fraction of its CPU share each run must get for the figures to count
BATCH = 16  # images per batch request (the service's maximum)
SINGLE_KINDS = ("v1", "v2")
BATCH_KINDS = ("v1-batch16", "v2-batch16")

__all__ = ["cpu_share", "main", "measure"]


def cpu_share(memory_mb: int) -> float:
    """The fraction of one vCPU a function of this size gets (proportional up to 1,769 MB)."""
    return min(1.0, memory_mb / FULL_VCPU_MB)


# --- the child: one process, one CPU share ----------------------------------------------------------------------


def _jpeg_500() -> bytes:
    from PIL import Image

    img = Image.open(FLOWER).convert("RGB").resize((500, 500), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _v2_event(body: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event as AWS documents it; a function URL sends the same shape."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "POST /predict",
        "rawPath": "/predict",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "http": {"method": "POST", "path": "/predict", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "POST /predict",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }


@contextlib.contextmanager
def _stdout_to(sink: io.StringIO) -> Iterator[None]:
    saved, sys.stdout = sys.stdout, sink
    try:
        yield
    finally:
        sys.stdout = saved


def _child(out: Path, requests: int, warmup: int, batch_requests: int) -> None:
    # The handler's dependencies first, so the Powertools import is timed on top of them (as at a cold start).
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import requests as _requests  # noqa: F401

    import_started = time.perf_counter()
    import aws_lambda_powertools.metrics  # noqa: F401

    powertools_import_ms = (time.perf_counter() - import_started) * 1000
    from flowers_serving import handler
    from flowers_serving.local import build_proxy_event

    jpeg = _jpeg_500()
    image = base64.b64encode(jpeg).decode()
    body = json.dumps({"image": image, "top_k": 10})
    batch_body = json.dumps({"images": [{"image": image}] * BATCH, "top_k": 10})
    headers = {"Content-Type": "application/json"}
    events = {
        "v1": json.dumps(build_proxy_event("POST", "/predict", headers, body.encode(), request_id="cost")),
        "v2": json.dumps(_v2_event(body)),
    }
    batch_events = {
        "v1-batch16": json.dumps(build_proxy_event("POST", "/predict", headers, batch_body.encode(), request_id="b")),
        "v2-batch16": json.dumps(_v2_event(batch_body)),
    }

    def invoke(raw_event: str) -> str:
        return json.dumps(handler.lambda_handler(json.loads(raw_event), None))

    sink = io.StringIO()
    with _stdout_to(sink):
        for _ in range(warmup):
            for raw in events.values():
                invoke(raw)
        sink.seek(0)
        sink.truncate()
        replies = {kind: invoke(raw) for kind, raw in events.items()}
        written = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        batch_replies = {kind: invoke(raw) for kind, raw in batch_events.items()}
        batch_written = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        samples: dict[str, list[float]] = {kind: [] for kind in (*events, *batch_events)}
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        timed = [*([events] * requests), *([batch_events] * batch_requests)]
        for group in timed:
            for kind, raw in group.items():
                started = time.perf_counter()
                invoke(raw)
                samples[kind].append((time.perf_counter() - started) * 1000)
                sink.seek(0)
                sink.truncate()
        # CPU time over wall time: the CPU share this process really got (1.0 on a core of its own).
        cpu_share_got = (time.process_time() - cpu_started) / (time.perf_counter() - wall_started)
    reply = json.loads(json.loads(replies["v2"])["body"])
    assert reply["predictions"][0]["class_id"] == 77, reply
    batch_reply = json.loads(json.loads(batch_replies["v2-batch16"])["body"])
    assert [r["predictions"][0]["class_id"] for r in batch_reply["results"]] == [77] * BATCH, batch_reply
    out.write_text(
        json.dumps(
            {
                "samples_ms": samples,
                "image_bytes": len(jpeg),
                "request_body_bytes": len(body.encode()),
                "response_body_bytes": len(json.loads(replies["v2"])["body"].encode()),
                "log_bytes_per_request": len(written.encode()) / len(events),
                "log_lines_per_request": written.count("\n") / len(events),
                "emf_bytes_per_request": sum(len(line) + 1 for line in written.splitlines() if '"_aws"' in line)
                / len(events),
                "batch_size": BATCH,
                "batch_request_body_bytes": len(batch_body.encode()),
                "batch_response_body_bytes": len(json.loads(batch_replies["v2-batch16"])["body"].encode()),
                "batch_log_bytes_per_request": len(batch_written.encode()) / len(batch_events),
                "powertools_import_ms": powertools_import_ms,
                "cpu_share_got": cpu_share_got,
            }
        )
    )


# --- the parent: cgroups, rounds, summary -------------------------------------------------------------------------


def _cgroup_for(memory_mb: int, favoured: bool) -> tuple[Path, str] | None:
    """A cgroup holding a CPU quota of this memory size's share, or None if this machine won't let us.

    ``favoured``: the group also gets the largest CPU weight, so other work on the machine cannot keep it below
    its quota (inside a cgroup, niceness does not count against processes outside it).
    """
    share = cpu_share(memory_mb)
    if share >= 1.0:
        return None
    quota = int(share * CFS_PERIOD_US)
    name = f"flowers-cost-{memory_mb}-{os.getpid()}"
    try:
        if (CGROUP_V1 / "cpu.cfs_quota_us").exists():
            group = CGROUP_V1 / name
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
            if favoured:
                (group / "cpu.shares").write_text("262144")
            return group, "cgroup v1 cpu.cfs_quota_us"
        if "cpu" in (CGROUP_V2 / "cgroup.subtree_control").read_text().split():
            group = CGROUP_V2 / name
            group.mkdir(exist_ok=True)
            (group / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
            if favoured:
                (group / "cpu.weight").write_text("10000")
            return group, "cgroup v2 cpu.max"
    except OSError:
        return None
    return None


def _run_child(memory_mb: int, requests: int, warmup: int, nice: int, batch_requests: int) -> dict[str, Any]:
    cgroup = _cgroup_for(memory_mb, favoured=nice < 0)
    env = {
        **os.environ,
        "FLOWERS_NUM_THREADS": "1",
        "FLOWERS_LOG_LEVEL": "INFO",
        "POWERTOOLS_METRICS_NAMESPACE": "flowers",
        "POWERTOOLS_SERVICE_NAME": "flowers-cost",
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        command = [
            *(sys.executable, __file__, "--child", str(out)),
            *("--requests", str(requests), "--warmup", str(warmup), "--batch-requests", str(batch_requests)),
        ]
        # The shell joins the cgroup (everything it runs is under the quota) and, with the Linux scheduler's
        # autogroups, sets the niceness of its own new session, then becomes the measuring Python.
        setup = f'echo $$ > "{cgroup[0] / "cgroup.procs"}" && ' if cgroup else ""
        if nice:
            setup += f"{{ echo {nice} > /proc/self/autogroup; }} 2>/dev/null; renice -n {nice} -p $$ >/dev/null && "
        command = ["sh", "-c", f'{setup}exec "$@"', "sh", *command]
        try:
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, start_new_session=True)
        finally:
            if cgroup:
                with contextlib.suppress(OSError):
                    cgroup[0].rmdir()
        result: dict[str, Any] = json.loads(out.read_text())
    result["cpu_limit"] = cgroup[1] if cgroup else ("none (full core)" if cpu_share(memory_mb) >= 1 else "modelled")
    return result


def _billed_mean(samples: list[float]) -> float:
    """Lambda bills each request rounded up to the next millisecond; the cost follows the mean of those."""
    return statistics.fmean(math.ceil(ms) for ms in samples)


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def measure(
    rounds: int = 3, requests: int = 300, warmup: int = 30, nice: int = 0, batch_requests: int = 20
) -> dict[str, Any]:
    """Rounds of one child per memory size, interleaved so drift on this shared machine hits all sizes alike.

    ``nice`` (negative needs root) lets the children hold their core against background jobs; the quota still
    caps them at their share.
    """
    load_before = os.getloadavg()[0]
    runs: dict[int, list[dict[str, Any]]] = {mb: [] for mb in MEMORY_SIZES}
    for _ in range(rounds):
        for mb in MEMORY_SIZES:
            runs[mb].append(_run_child(mb, requests, warmup, nice, batch_requests))
    full = runs[FULL_VCPU_MB]
    per_memory: dict[str, Any] = {}
    for mb, results in runs.items():
        entry: dict[str, Any] = {
            "cpu_share": cpu_share(mb),
            "cpu_limit": results[0]["cpu_limit"],
            "cpu_share_got": _spread([r["cpu_share_got"] for r in results]),
        }
        for kind in (*SINGLE_KINDS, *(BATCH_KINDS if batch_requests > 1 else ())):
            if results[0]["cpu_limit"] == "modelled":
                means = [statistics.fmean(r["samples_ms"][kind]) / cpu_share(mb) for r in full]
                billed = [_billed_mean(r["samples_ms"][kind]) / cpu_share(mb) for r in full]
            else:
                means = [statistics.fmean(r["samples_ms"][kind]) for r in results]
                billed = [_billed_mean(r["samples_ms"][kind]) for r in results]
            entry[kind] = {
                "mean_ms": _spread(means),
                "billed_ms_mean": _spread(billed),
                "p50_ms": _spread([statistics.median(r["samples_ms"][kind]) for r in results]),
                "p99_ms": _spread([statistics.quantiles(r["samples_ms"][kind], n=100)[98] for r in results]),
            }
        per_memory[str(mb)] = entry
    first = full[0]
    # Each run should have had all of its share (a full core, or its quota); if not, other work skewed it.
    contended = any(
        statistics.median(r["cpu_share_got"] for r in results) < CONTENDED_BELOW * cpu_share(mb)
        for mb, results in runs.items()
    )
    if contended:
        print("measure: this machine was busy (a run got under its CPU share); figures are skewed", file=sys.stderr)
    options = f"{' --nice ' + str(nice) if nice else ''}{'' if rounds == 3 else ' --rounds ' + str(rounds)}"
    options += "" if batch_requests == 20 else f" --batch-requests {batch_requests}"
    return {
        "command": f"python deploy/measure.py{options}",
        "machine": _machine(),
        "load_average_before": load_before,
        "nice": nice,
        "contended": contended,
        "rounds": rounds,
        "requests_per_round": requests,
        "cfs_period_us": CFS_PERIOD_US,
        "image_bytes": first["image_bytes"],
        "request_body_bytes": first["request_body_bytes"],
        "response_body_bytes": first["response_body_bytes"],
        "log_bytes_per_request": first["log_bytes_per_request"],
        "log_lines_per_request": first["log_lines_per_request"],
        "emf_bytes_per_request": first["emf_bytes_per_request"],
        "batch_size": first["batch_size"],
        "batch_requests_per_round": batch_requests,
        "batch_request_body_bytes": first["batch_request_body_bytes"],
        "batch_response_body_bytes": first["batch_response_body_bytes"],
        "batch_log_bytes_per_request": first["batch_log_bytes_per_request"],
        "powertools_import_ms": _spread([r["powertools_import_ms"] for r in full]),
        "powertools_install_kb": _install_kb("aws-lambda-powertools", "jmespath"),
        "memory": per_memory,
    }


def _machine() -> str:
    """CPU model and vector extensions (int8 inference speed depends on them), kernel."""
    model, flags = "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    vector = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{model} ({', '.join(vector) or 'no AVX2'}), {os.cpu_count()} vCPUs, Linux {os.uname().release}"


def _install_kb(*distributions: str) -> dict[str, float]:
    from importlib.metadata import distribution

    sizes = {}
    for name in distributions:
        files = distribution(name).files or []
        sizes[name] = round(sum(f.locate().stat().st_size for f in files if Path(f.locate()).is_file()) / 1024, 1)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per event kind per round")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--batch-requests", type=int, default=20, help=f"timed batch requests ({BATCH} images) per event kind per round"
    )
    parser.add_argument("--nice", type=int, default=0, help="run the measurement at this niceness (root: < 0)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Stopped (SIGTERM, Ctrl-C): unwind, so the cgroups made so far are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.child:
        _child(args.child, args.requests, args.warmup, args.batch_requests)
        return 0
    json.dump(measure(args.rounds, args.requests, args.warmup, args.nice, args.batch_requests), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
