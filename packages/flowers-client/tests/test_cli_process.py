"""The `flowers` CLI as a person runs it: a real process, real signals, a slow server on loopback.

No timing thresholds: the fake service holds chosen images until the test
releases them, so "mid-batch" and "before the batch ends" are states, not
durations. Timeouts below only keep a broken build from hanging the suite.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fake_service import FakeService

HANG_GUARD = 60  # seconds; never reached when things work


def flowers(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "0"}
    env.pop("FLOWERS_ENDPOINT", None)
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "flowers_client.cli", *args],
        stdout=kwargs.pop("stdout", subprocess.PIPE),
        stderr=kwargs.pop("stderr", subprocess.PIPE),
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        **kwargs,
    )


def batch(tmp_path: Path, fast: int, held: int) -> list[str]:
    """``fast`` images answered at once, then ``held`` ones answered only on ``service.release()``."""
    paths = []
    for i in range(fast + held):
        path = tmp_path / f"{i:03d}.jpg"
        path.write_text(f"photo {i}" + (" hold" if i >= fast else ""))
        paths.append(str(path))
    return paths


def test_the_first_line_comes_out_before_the_batch_ends(tmp_path: Path, service: FakeService) -> None:
    images = batch(tmp_path, fast=2, held=38)
    process = flowers("classify", *images, "--endpoint", service.url, "--json")
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        # 38 images are still held by the service: the batch cannot have ended.
        assert process.poll() is None
        assert (first["index"], first["ok"]) == (0, True)
        service.release()
        rest = [json.loads(line) for line in process.stdout]
        assert process.wait(HANG_GUARD) == 0
    finally:
        service.release()
        process.kill()
    assert [line["index"] for line in [first, *rest]] == list(range(40))


@pytest.mark.parametrize("endpoint", ["gateway", "rie"])
def test_ctrl_c_mid_batch_keeps_finished_lines_and_exits_130(
    endpoint: str, tmp_path: Path, service: FakeService
) -> None:
    images = batch(tmp_path, fast=3, held=20)
    out_file = tmp_path / "results.jsonl"
    url = service.url if endpoint == "gateway" else service.rie_url
    process = flowers("classify", *images, "--endpoint", url, "--json", "-o", str(out_file), "--concurrency", "4")
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        finished = [json.loads(process.stdout.readline()) for _ in range(3)]
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        code = process.wait(HANG_GUARD)
        took = time.monotonic() - sent
    finally:
        service.release()
        process.kill()
    rest = process.stdout.read()
    err = process.stderr.read()
    print(f"exit {code} {took:.2f} s after SIGINT")  # measured, not asserted (the machine is shared)
    assert code == 130
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert "3 classified, 0 failed in" in err
    assert "interrupted: 20 not done (run again with --resume)" in err
    assert [line["index"] for line in finished] == [0, 1, 2]
    assert rest == ""  # nothing else finished: the held images were never answered
    assert sorted(json.loads(line)["input"] for line in out_file.read_text().splitlines()) == images[:3]

    # Resume: only what is missing is sent. The service may still be taking in the first run's
    # last requests (it records each once its thread has read it), so count per image, not a total.
    resumed = flowers("classify", *images, "--endpoint", url, "--json", "-o", str(out_file), "--resume")
    out, err = resumed.communicate(timeout=HANG_GUARD)
    assert resumed.returncode == 0, err
    assert [json.loads(line)["index"] for line in out.splitlines()] == list(range(3, 23))
    # A request the interrupt cut short before its body was sent is recorded with an empty body.
    sent = Counter(_photo(request["body"]) for request in service.requests if request["body"])
    assert [sent[f"photo {i}"] for i in range(3)] == [1, 1, 1]  # never sent again
    # Each missing one once by the resume, plus at most once by the first run (4 in flight then).
    assert all(1 <= sent[f"photo {i} hold"] <= 2 for i in range(3, 23))
    assert sum(sent[f"photo {i} hold"] for i in range(3, 23)) <= 20 + 4
    assert "3 skipped" in err


def _photo(body: dict[str, str]) -> str:
    return base64.b64decode(body["image"]).decode()


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path, service: FakeService) -> None:
    """Stuck writing to a stdout nobody reads, the first Ctrl-C waits for the line; the second does not."""
    images = batch(tmp_path, fast=60, held=0)
    out_file = tmp_path / "results.jsonl"
    process = flowers("classify", *images, "--endpoint", service.url, "--json", "--top-k", "102",
                      "-o", str(out_file), "--concurrency", "1")  # fmt: skip
    assert process.stderr is not None
    try:
        # The pipe (64 KiB) fills after a dozen 5 KiB lines; the -o file keeps counting until then.
        deadline = time.monotonic() + HANG_GUARD
        previous = -1
        while time.monotonic() < deadline:
            time.sleep(0.5)
            lines = len(out_file.read_text().splitlines()) if out_file.exists() else 0
            if lines == previous and lines > 0:
                break
            previous = lines
        assert process.poll() is None  # blocked on stdout
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert process.poll() is None  # the first Ctrl-C waits for the line being written
        process.send_signal(signal.SIGINT)
        code = process.wait(HANG_GUARD)
    finally:
        process.kill()
    assert code == 130
    assert "interrupted again" in process.stderr.read()


def test_progress_bar_on_a_terminal_stderr_also_with_json(tmp_path: Path, service: FakeService) -> None:
    images = batch(tmp_path, fast=5, held=0)
    primary, secondary = pty.openpty()
    try:
        process = flowers("classify", *images, "--endpoint", service.url, "--json", stderr=secondary)
        os.close(secondary)
        out, _ = process.communicate(timeout=HANG_GUARD)
        screen = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the process closed its end
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(primary)
    text = screen.decode(errors="replace")
    assert process.returncode == 0
    assert "/5 [" in text
    assert "image/s" in text
    assert "5 classified, 0 failed" in text
    assert [json.loads(line)["index"] for line in out.splitlines()] == list(range(5))  # stdout untouched


@pytest.mark.parametrize(
    "moment",
    [
        r"\|\s+argparse\b",  # the CLI's handler is in (just before), its imports are loading
        r"\|\s+(pydantic|httpx)\b",  # the client loads, once the CLI runs
        "request in flight",  # the service holds the first request
    ],
)
def test_ctrl_c_while_starting_up_exits_130_without_a_traceback(
    moment: str, tmp_path: Path, service: FakeService
) -> None:
    """Importing httpx and pydantic takes seconds on a busy machine; a Ctrl-C then is a Ctrl-C too.

    ``-X importtime`` reports each module as it finishes loading: the signal goes
    out at a chosen point of the start-up, a state rather than a delay.
    """
    env = {k: v for k, v in os.environ.items() if k != "FLOWERS_ENDPOINT"}
    images = batch(tmp_path, fast=0, held=3)
    process = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "flowers_client.cli",
            "classify",
            *images,
            "--endpoint",
            service.url,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        seen = []
        if moment == "request in flight":
            deadline = time.monotonic() + HANG_GUARD
            while not service.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert service.requests
        else:
            for line in process.stderr:
                seen.append(line)
                if re.search(moment, line):
                    break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=HANG_GUARD)
    finally:
        service.release()
        process.kill()
    err = "".join(seen) + err
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err  # not even "Exception ignored in ...": no Ctrl-C is lost
    assert "flowers: interrupted" in err or "interrupted: 3 not done" in err


def test_a_first_ctrl_c_swallowed_by_a_finalizer_still_stops_the_command() -> None:
    """A KeyboardInterrupt raised while a ``__del__`` runs is printed as ignored and lost.

    The command's handler raises it again until the command has it, even while the
    main thread waits for a result that would never come.
    """
    script = """
import gc, os, queue, signal, sys
from flowers_client._cli_interrupts import INTERRUPTS

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100_000):  # the handler runs here, inside __del__
            pass

INTERRUPTS.install()
try:
    Finalized()
    print("lost once", flush=True)
    queue.Queue().get()  # nothing ever comes
except KeyboardInterrupt:
    INTERRUPTS.taken()
    print("interrupted", flush=True)
    sys.exit(130)
"""
    process = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=HANG_GUARD, check=False
    )
    assert process.stdout.splitlines() == ["lost once", "interrupted"], process.stderr
    assert process.returncode == 130
    assert "Exception ignored" in process.stderr  # the finalizer did swallow the first one
