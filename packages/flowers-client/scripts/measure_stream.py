"""Measure the CLI as a person meets it, on the real local stack: when the first result line of a
40-photo batch appears, when the batch ends, and how long Ctrl-C takes to end a run.

Run it where flowers-serving[litert,local] and flowers-client are installed (the `contract` venv):

    FLOWERS_RIE_BINARY=.tools/samcli/local/rapid/aws-lambda-rie-x86_64 \\
        .nox/contract/bin/python packages/flowers-client/scripts/measure_stream.py [--repeat 3]

Photos: the repository's four fixture photos, ten times each (40 images, 26-83 KB each).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowers_serving.local import free_port
from flowers_serving.local.__main__ import LocalStack

ROOT = Path(__file__).resolve().parents[3]
PHOTOS = [str(p) for p in sorted((ROOT / "tests" / "fixtures" / "flowers").glob("*.jpg"))] * 10


def run_batch(endpoint: str) -> tuple[float, float]:
    """Seconds from start to the first JSON line, and to the end of the batch."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "flowers_client.cli", "classify", *PHOTOS, "--endpoint", endpoint, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    json.loads(process.stdout.readline())
    first = time.perf_counter() - started
    lines = 1 + sum(1 for _ in process.stdout)
    assert process.wait() == 0
    assert lines == len(PHOTOS)
    return first, time.perf_counter() - started


def run_interrupted(endpoint: str) -> float:
    """Seconds from SIGINT (sent after the fourth line) to the process's exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flowers_client.cli", "classify", *PHOTOS * 3, "--endpoint", endpoint, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for _ in range(4):
        process.stdout.readline()
    process.send_signal(signal.SIGINT)
    sent = time.perf_counter()
    code = process.wait()
    took = time.perf_counter() - sent
    assert code == 130, code
    return took


def drain(stack: LocalStack) -> None:
    """Wait for what the gateway still holds for a stopped run (it goes to the one RIE first)."""
    import requests

    requests.get(f"{stack.gateway_url}/health", timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with LocalStack(port=free_port(), gateway_port=free_port(), workers=1, log_dir=Path(tempfile.mkdtemp())) as stack:
        endpoints = {"gateway": f"{stack.gateway_url}/predict", "rie": stack.rie_url}
        print("| transport | first line (s) | batch of 40 (s) | Ctrl-C to exit (s) |")
        print("| --- | ---: | ---: | ---: |")
        for name, endpoint in endpoints.items():
            batches = [run_batch(endpoint) for _ in range(args.repeat)]
            stops = []
            for _ in range(args.repeat):
                stops.append(run_interrupted(endpoint))
                drain(stack)
            first = statistics.median(b[0] for b in batches)
            total = statistics.median(b[1] for b in batches)
            print(f"| {name} | {first:.2f} | {total:.2f} | {statistics.median(stops):.2f} (max {max(stops):.2f}) |")


if __name__ == "__main__":
    main()
