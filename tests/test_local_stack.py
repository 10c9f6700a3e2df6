"""The local stack as its users meet it: concurrent invokes, oversized and malformed requests, slow
clients, a runtime killed under it, busy ports, and ``flowers-serve`` stopped by a signal.

Each case runs through the real RIE and through the built-in Python runtime
(the path macOS and Windows take); the RIE cases skip, saying why, where no
RIE runs. Time limits are configured short; no test asserts a duration, only
that things end (every wait is bounded far above the configured limit).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
from contract.cases import FLOWERS, STACK_ENV
from upstream import QuietServer

from flowers_serving.local import INVOKE_PAYLOAD_LIMIT, LocalStack, PortInUse, RieWorker, find_rie_binary, free_port
from flowers_serving.local.gateway import MAX_REQUEST_BYTES
from flowers_serving.local.gateway import default_limits as gateway_limits
from flowers_serving.local.rie import answers_like_the_rie
from flowers_serving.local.server import Limits

PATIENCE_S = 90.0
FLOWER = FLOWERS[0]
FLOWER_CLASS = int(FLOWER.name.split("-")[0])


def _rie_missing() -> str | None:
    try:
        find_rie_binary()
    except FileNotFoundError as exc:
        return str(exc)
    return None


RIE_MISSING = _rie_missing()
needs_rie = pytest.mark.skipif(RIE_MISSING is not None, reason=RIE_MISSING or "")
RUNTIMES = [pytest.param("rie", marks=needs_rie), "python"]


def wait_for(condition: Callable[[], bool], what: str, patience: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def image_request(path: Path = FLOWER, top_k: int = 1) -> dict[str, Any]:
    return {"image": base64.b64encode(path.read_bytes()).decode(), "top_k": top_k}


# --- a loopback image host that can hold requests ------------------------------------------------------------------


class ImageHost:
    """``/together.jpg`` answers only once two requests are in it at once; ``/hold.jpg`` waits for ``release``."""

    def __init__(self) -> None:
        self.together = threading.Barrier(2, timeout=10)
        self.arrived = threading.Event()
        self.release = threading.Event()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    if self.path.startswith("/together"):
                        host.together.wait()
                    elif self.path.startswith("/hold"):
                        host.arrived.set()
                        host.release.wait(PATIENCE_S)
                except threading.BrokenBarrierError:
                    self.send_error(500)
                    return
                body = FLOWER.read_bytes()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    yield host
    host.close()


# --- stacks ------------------------------------------------------------------------------------------------------

SLOW_CLIENT_LIMITS = Limits(
    max_body=MAX_REQUEST_BYTES,
    body_limit_note=gateway_limits().body_limit_note,
    header_timeout_s=1.0,
    body_timeout_s=1.0,
    idle_timeout_s=2.0,
)


@pytest.fixture(scope="module", params=RUNTIMES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One execution environment, the gateway with short client time limits."""
    with LocalStack(
        rie_port=0,
        gateway_port=0,
        env=STACK_ENV,
        runtime=request.param,
        log_dir=tmp_path_factory.mktemp(f"logs-{request.param}"),
        gateway_limits=SLOW_CLIENT_LIMITS,
    ) as local:
        assert local.runtime_kind == request.param
        yield local


def test_concurrent_direct_invokes_all_succeed(stack: LocalStack) -> None:
    """The RIE alone panics on the second concurrent invoke; through the front they queue."""
    body = image_request()
    with ThreadPoolExecutor(8) as executor:
        replies = list(executor.map(lambda _: requests.post(stack.rie_url, json=body, timeout=PATIENCE_S), range(16)))
    assert [r.status_code for r in replies] == [200] * 16
    assert {r.json()["predictions"][0]["class_id"] for r in replies} == {FLOWER_CLASS}
    assert all(r.headers["Content-Type"] == "application/json" for r in replies)


def test_concurrent_direct_and_gateway_requests_share_the_queue(stack: LocalStack) -> None:
    body = image_request()

    def call(i: int) -> int:
        url = stack.rie_url if i % 2 else f"{stack.gateway_url}/predict"
        return requests.post(url, json=body, timeout=PATIENCE_S).status_code

    with ThreadPoolExecutor(6) as executor:
        assert list(executor.map(call, range(12))) == [200] * 12


def test_a_direct_invoke_over_6_mb_is_413_with_the_limit(stack: LocalStack) -> None:
    payload = json.dumps({"image": "A" * (7 * 1024 * 1024)}).encode()
    reply = requests.post(stack.rie_url, data=payload, timeout=PATIENCE_S)
    assert reply.status_code == 413
    error = reply.json()["error"]
    assert error["code"] == "payload_too_large"
    assert str(INVOKE_PAYLOAD_LIMIT) in error["message"]
    # and the stack is fine after it
    assert requests.post(stack.rie_url, json={"ping": True}, timeout=PATIENCE_S).json()["status"] == "ok"


def test_a_direct_invoke_at_exactly_6_mb_reaches_the_function(stack: LocalStack) -> None:
    filler = INVOKE_PAYLOAD_LIMIT - len(b'{"image": ""}')
    payload = b'{"image": "' + b"A" * filler + b'"}'
    assert len(payload) == INVOKE_PAYLOAD_LIMIT
    reply = requests.post(stack.rie_url, data=payload, timeout=PATIENCE_S)
    assert reply.status_code == 200
    assert reply.json()["error"]["code"] in {"bad_request", "payload_too_large", "unsupported_media_type"}


def test_a_mixed_batch_through_both_fronts(stack: LocalStack, image_host: ImageHost) -> None:
    """A batch reaches the function through either front and each item is answered alone (RIE and Python runtime)."""
    truncated = FLOWER.parent.parent / "hostile" / "truncated.jpg"
    batch = {
        "images": [
            {"image": image_request()["image"]},
            {"image": "%%% not base64 %%%"},
            {"image": base64.b64encode(truncated.read_bytes()).decode()},
            {"url": image_host.url("/flower.jpg")},
            {"url": "http://169.254.169.254/latest/meta-data/"},
        ],
        "top_k": 2,
    }
    expected = [None, "bad_request", "undecodable_image", None, "forbidden_url"]
    for url in (stack.rie_url, f"{stack.gateway_url}/predict"):
        reply = requests.post(url, json=batch, timeout=PATIENCE_S)
        assert reply.status_code == 200, reply.text
        results = reply.json()["results"]
        assert [r.get("error", {}).get("code") for r in results] == expected
        assert [r["status"] for r in results] == [200, 400, 422, 200, 400]
        assert results[0]["predictions"][0]["class_id"] == FLOWER_CLASS
        assert results[3]["predictions"][0]["class_id"] == FLOWER_CLASS
    refused = requests.post(stack.rie_url, json={"images": []}, timeout=PATIENCE_S)
    assert refused.json()["error"]["code"] == "bad_request"


def test_a_gateway_body_over_10_mb_is_413_with_the_limit(stack: LocalStack) -> None:
    reply = requests.post(
        f"{stack.gateway_url}/predict",
        data=b"\xff" * (MAX_REQUEST_BYTES + 1),
        headers={"Content-Type": "image/jpeg"},
        timeout=PATIENCE_S,
    )
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"
    assert str(MAX_REQUEST_BYTES) in reply.json()["error"]["message"]


def test_a_gateway_body_whose_event_exceeds_6_mb_is_413_not_502(stack: LocalStack) -> None:
    """5 MB of image bytes become a 6.7 MB event (base64): Lambda refuses it, so API Gateway answers 413."""
    reply = requests.post(
        f"{stack.gateway_url}/predict",
        data=b"\xff" * (5 * 1024 * 1024),
        headers={"Content-Type": "image/jpeg"},
        timeout=PATIENCE_S,
    )
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"
    assert str(INVOKE_PAYLOAD_LIMIT) in reply.json()["error"]["message"]


@pytest.mark.parametrize("front", ["gateway", "invoke"])
@pytest.mark.parametrize("length", ["abc", "-5", "5, 6"])
def test_a_malformed_content_length_is_400(stack: LocalStack, front: str, length: str) -> None:
    host, port = _address(stack, front)
    with socket.create_connection((host, port), timeout=PATIENCE_S) as sock:
        path = "/predict" if front == "gateway" else "/2015-03-31/functions/function/invocations"
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
        data = _read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_a_header_trickle_on_the_gateway_is_closed_by_the_timeout(stack: LocalStack) -> None:
    host, port = _address(stack, "gateway")
    closed_by_server = False
    with socket.create_connection((host, port), timeout=PATIENCE_S) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"X-Trickle: 1\r\n")
                sock.settimeout(0.2)
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                closed_by_server = True
                break
            if not chunk or chunk.startswith(b"HTTP/1.1 408 "):
                closed_by_server = True
                break
    assert closed_by_server


def test_a_stalled_gateway_body_is_408_and_the_function_never_runs(stack: LocalStack) -> None:
    host, port = _address(stack, "gateway")
    with socket.create_connection((host, port), timeout=PATIENCE_S) as sock:
        sock.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"image": "')
        data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 408 ")


def test_the_runtime_killed_while_idle_is_restarted(stack: LocalStack, caplog: pytest.LogCaptureFixture) -> None:
    runtime = stack.workers[0]
    pid = _pid(runtime)
    with caplog.at_level("INFO", logger="flowers_serving.local"):
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: getattr(runtime, "pid", None) not in (None, pid) and runtime.alive(), "the restart")
        reply = requests.post(stack.rie_url, json=image_request(), timeout=PATIENCE_S)
    assert reply.status_code == 200
    assert reply.json()["predictions"][0]["class_id"] == FLOWER_CLASS
    assert any("restarting it" in r.getMessage() for r in caplog.records)


def test_the_runtime_killed_mid_invoke_answers_502_then_recovers(stack: LocalStack, image_host: ImageHost) -> None:
    runtime = stack.workers[0]
    with ThreadPoolExecutor(1) as executor:
        pending = executor.submit(
            requests.post, f"{stack.gateway_url}/predict", json={"url": image_host.url("/hold.jpg")}, timeout=PATIENCE_S
        )
        assert image_host.arrived.wait(PATIENCE_S)
        os.kill(_pid(runtime), signal.SIGKILL)
        reply = pending.result()
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "internal_error"
    assert "restarted" in reply.json()["error"]["message"]
    after = requests.post(stack.rie_url, json=image_request(), timeout=PATIENCE_S)
    assert after.json()["predictions"][0]["class_id"] == FLOWER_CLASS


def _address(stack: LocalStack, front: str) -> tuple[str, int]:
    server = (stack.gateway if front == "gateway" else stack.invoke_front).server  # type: ignore[union-attr]
    return server.host, server.port


def _pid(runtime: object) -> int:
    pid = getattr(runtime, "pid", None)
    assert isinstance(pid, int)
    return pid


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(PATIENCE_S)
    while chunk := sock.recv(65536):
        data += chunk
    return data


# --- more than one environment, and the function's own timeout ------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_workers_run_side_by_side(runtime: str, image_host: ImageHost, tmp_path: Path) -> None:
    """Two requests that can only finish together (the image host waits for both) finish with two workers."""
    with LocalStack(rie_port=0, gateway_port=0, workers=2, env=STACK_ENV, runtime=runtime, log_dir=tmp_path) as local:
        body = {"url": image_host.url("/together.jpg"), "top_k": 1}
        with ThreadPoolExecutor(2) as executor:
            replies = list(
                executor.map(lambda _: requests.post(local.rie_url, json=body, timeout=PATIENCE_S), range(2))
            )
    assert [r.json().get("predictions", [{}])[0].get("class_id") for r in replies] == [FLOWER_CLASS] * 2


def test_a_function_timeout_is_answered_and_the_next_invoke_works(image_host: ImageHost, tmp_path: Path) -> None:
    """The built-in runtime times out as the RIE does ("Task timed out"), and starts a fresh environment."""
    env = {**STACK_ENV, "FLOWERS_FETCH_READ_TIMEOUT": "60", "FLOWERS_FETCH_TOTAL_TIMEOUT": "60"}
    with LocalStack(rie_port=0, gateway_port=0, env=env, runtime="python", timeout_s=2, log_dir=tmp_path) as local:
        direct = requests.post(local.rie_url, json={"url": image_host.url("/hold.jpg")}, timeout=PATIENCE_S)
        assert (direct.status_code, direct.text) == (200, "Task timed out after 2.00 seconds")
        through_gateway = requests.post(
            f"{local.gateway_url}/predict", json={"url": image_host.url("/hold.jpg")}, timeout=PATIENCE_S
        )
        assert through_gateway.status_code == 504
        assert through_gateway.json()["error"]["code"] == "integration_timeout"
        image_host.release.set()
        after = requests.post(local.rie_url, json=image_request(), timeout=PATIENCE_S)
        assert after.json()["predictions"][0]["class_id"] == FLOWER_CLASS


# --- ports -----------------------------------------------------------------------------------------------------------


class ForeignServer:
    """Another program's HTTP server on a loopback port: answers everything with 200 and some text."""

    def __init__(self, body: bytes = b"hello from someone else", status: int = 200) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.do_GET()

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def foreign() -> Iterator[ForeignServer]:
    server = ForeignServer()
    yield server
    server.close()


@pytest.mark.parametrize(("option", "which"), [("--port", "gateway"), ("--rie-port", "invoke")])
def test_flowers_serve_names_a_busy_port_and_exits_2(foreign: ForeignServer, option: str, which: str) -> None:
    other = "--rie-port" if option == "--port" else "--port"
    done = subprocess.run(
        [sys.executable, "-m", "flowers_serving.local", option, str(foreign.port), other, "0"],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        env={**os.environ, "FLOWERS_LOCAL_RUNTIME": "python"},
    )
    assert done.returncode == 2
    assert f"port {foreign.port}" in done.stderr
    assert f"{option} PORT" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_busy_port_is_found_before_anything_starts(foreign: ForeignServer, tmp_path: Path) -> None:
    stack = LocalStack(rie_port=0, gateway_port=foreign.port, runtime="python", log_dir=tmp_path / "logs")
    with pytest.raises(PortInUse) as caught:
        stack.start()
    assert caught.value.option == "--port"
    assert stack.workers == []  # no runtime was even created
    assert not (tmp_path / "logs").exists()


def test_a_stack_that_fails_to_start_keeps_its_logs(tmp_path: Path) -> None:
    # No model where the handler looks: the runtime fails to start, and the error names its log to read.
    env = {**STACK_ENV, "FLOWERS_MODEL_DIR": str(tmp_path)}
    stack = LocalStack(rie_port=0, gateway_port=0, runtime="python", env=env)
    with pytest.raises(RuntimeError, match=r"did not (start|warm up)"):
        stack.start()
    assert stack.log_dir is not None
    try:
        assert any(stack.log_dir.iterdir())
        stack.stop()  # flowers-serve stops the stack once more as it exits
        assert any(stack.log_dir.iterdir())
    finally:
        shutil.rmtree(stack.log_dir, ignore_errors=True)


def test_a_port_held_by_another_flowers_serve_is_named_so(stack: LocalStack, tmp_path: Path) -> None:
    _, port = _address(stack, "invoke")
    with pytest.raises(PortInUse) as caught:
        LocalStack(rie_port=port, gateway_port=0, runtime="python", log_dir=tmp_path).start()
    assert caught.value.option == "--rie-port"
    assert f"another flowers-serve (pid {os.getpid()})" in str(caught.value)


@needs_rie
def test_a_foreign_listener_is_never_taken_for_the_rie(foreign: ForeignServer) -> None:
    assert not answers_like_the_rie(foreign.port)
    lookalike = ForeignServer(b"404 page not found\n", status=200)  # right text, wrong status
    try:
        assert not answers_like_the_rie(lookalike.port)
    finally:
        lookalike.close()
    with pytest.raises(PortInUse):
        RieWorker(foreign.port).start()
    with RieWorker(free_port()) as worker:
        assert answers_like_the_rie(worker.port)


# --- flowers-serve stops everything it started ----------------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    """Live processes below ``pid`` (zombies waiting for a reaper count as gone)."""
    parents, states = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents[int(entry.name)], states[int(entry.name)] = int(fields[1]), fields[0]
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, child_parent in parents.items():
            if child_parent == parent and child not in found:
                found.add(child)
                frontier.append(child)
    return {p for p in found if states.get(p) != "Z"}


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _serve(tmp_path: Path, runtime: str, *extra: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``flowers-serve`` on free ports with its temp dir in ``tmp_path``; its two URLs once it is ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flowers_serving.local", "--port", "0", "--rie-port", "0", "--runtime", runtime, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **STACK_ENV, "TMPDIR": str(tmp_path)},
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("ready in"):
            break
    text = "".join(lines)
    gateway = re.search(r"POST (http://\S+)/predict", text)
    invoke = re.search(r"POST (http://\S+/invocations)", text)
    assert gateway, text
    assert invoke, text
    return process, gateway.group(1), invoke.group(1)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")
@pytest.mark.parametrize(
    ("runtime", "signum"),
    [
        pytest.param("rie", signal.SIGTERM, marks=needs_rie, id="rie-SIGTERM"),
        pytest.param("rie", signal.SIGINT, marks=needs_rie, id="rie-SIGINT"),
        pytest.param("rie", getattr(signal, "SIGHUP", signal.SIGTERM), marks=needs_rie, id="rie-SIGHUP"),
        pytest.param("python", signal.SIGTERM, id="python-SIGTERM"),
    ],
)
def test_a_stop_signal_leaves_no_process_and_no_log_dir(runtime: str, signum: int, tmp_path: Path) -> None:
    process, gateway, invoke = _serve(tmp_path, runtime, "--workers", "2")
    try:
        assert requests.post(invoke, json={"ping": True}, timeout=PATIENCE_S).json()["status"] == "ok"
        assert requests.get(f"{gateway}/health", timeout=PATIENCE_S).json()["status"] == "ok"
        children = _descendants(process.pid)
        assert len(children) >= 2  # both environments (and, under each RIE, its Python runtime)
        assert list(tmp_path.glob("flowers-local-*"))
        process.send_signal(signum)
        assert process.wait(timeout=PATIENCE_S) == 0
        wait_for(lambda: not _alive(children), f"the children {children} to go")
    finally:
        if process.poll() is None:
            process.kill()
    assert list(tmp_path.glob("flowers-local-*")) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{gateway}/health", timeout=5)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")
def test_keep_logs_keeps_the_run_directory(tmp_path: Path) -> None:
    process, _, invoke = _serve(tmp_path, "python", "--keep-logs")
    try:
        assert requests.post(invoke, json={"ping": True}, timeout=PATIENCE_S).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=PATIENCE_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
    (kept,) = tmp_path.glob("flowers-local-*")
    assert [p.name for p in kept.iterdir()] == ["python-runtime-1.log"]


@needs_rie
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")
def test_a_program_that_dies_without_stop_leaves_no_emulator(tmp_path: Path) -> None:
    script = (
        "from flowers_serving.local import LocalStack\n"
        "stack = LocalStack(rie_port=0, gateway_port=0).start()\n"
        "print(stack.workers[0].pid, flush=True)\n"
        "raise RuntimeError('the program fails without calling stop()')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 1
    rie_pid = int(done.stdout.split()[0])
    wait_for(lambda: not _alive({rie_pid}), "the RIE to go")
    assert list(tmp_path.glob("flowers-local-*")) == []
