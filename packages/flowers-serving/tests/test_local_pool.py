"""The invoke queue: one invoke at a time per execution environment, N side by side, restarts, limits.

Most cases drive the pool with ``CountingRuntime``, a runtime of our own
protocol that records how many invokes it holds at once (as the RIE would
panic on two); the last ones run the real handler in the built-in Python
runtime behind the real direct-invoke front.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from flowers_serving.local.invoke import InvokeFront
from flowers_serving.local.pool import INVOKE_PAYLOAD_LIMIT, Busy, FunctionPool, InvokeRefused, Reply, RuntimeGone
from flowers_serving.local.pyruntime import PythonRuntime

PATIENCE_S = 60.0


class CountingRuntime:
    """Answers every invoke with its payload after ``hold`` is set; fails like a dead RIE when told to."""

    kind = "counting runtime"
    port = None
    timeout_s = 28

    def __init__(self, name: str) -> None:
        self.name = name
        self.in_flight = 0
        self.most_in_flight = 0
        self.invokes = 0
        self.starts = 0
        self.running = False
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.die_during_invoke = False
        self.fail_starts = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("cannot start")
        self.starts += 1
        self.running = True

    def stop(self) -> None:
        self.running = False

    def alive(self) -> bool:
        return self.running

    def describe(self) -> str:
        return f"the {self.name}"

    @property
    def returncode(self) -> int | None:
        return None if self.running else -9

    def invoke(self, payload: bytes, timeout: float) -> Reply:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.entered.set()
            self.hold.wait(PATIENCE_S)
            if self.die_during_invoke:
                self.die_during_invoke = False
                self.running = False
                raise RuntimeGone("died", sent=True)
            if not self.running:
                raise RuntimeGone("not running", sent=False)
            self.invokes += 1
            if payload == b'{"ping": true}':
                return Reply(200, b'{"status": "ok"}')
            return Reply(200, payload)
        finally:
            with self._lock:
                self.in_flight -= 1


def started_pool(*runtimes: CountingRuntime) -> FunctionPool:
    return FunctionPool(retry_s=0.05).start(list(runtimes))


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_concurrent_invokes_queue_one_at_a_time_on_one_runtime() -> None:
    runtime = CountingRuntime("one")
    pool = started_pool(runtime)
    try:
        with ThreadPoolExecutor(8) as executor:
            replies = list(executor.map(lambda i: pool.invoke(b'{"n": %d}' % i, wait_s=PATIENCE_S), range(24)))
    finally:
        pool.stop()
    assert [json.loads(r.body)["n"] for r in replies] == list(range(24))
    assert runtime.most_in_flight == 1


def test_n_runtimes_serve_side_by_side_and_never_two_at_once_each() -> None:
    first, second = CountingRuntime("first"), CountingRuntime("second")
    pool = started_pool(first, second)
    first.hold.clear()
    second.hold.clear()
    try:
        with ThreadPoolExecutor(6) as executor:
            futures = [executor.submit(pool.invoke, b"{}", wait_s=PATIENCE_S) for _ in range(6)]
            wait_for(lambda: first.in_flight == 1 and second.in_flight == 1, "both runtimes busy")
            first.hold.set()
            second.hold.set()
            assert all(f.result().status == 200 for f in futures)
    finally:
        pool.stop()
    assert first.most_in_flight == second.most_in_flight == 1


def test_a_payload_over_lambdas_limit_is_413_and_never_invoked() -> None:
    runtime = CountingRuntime("one")
    pool = started_pool(runtime)
    try:
        pool.invoke(b"x" * INVOKE_PAYLOAD_LIMIT, wait_s=1)  # exactly the limit is fine
        with pytest.raises(InvokeRefused) as caught:
            pool.invoke(b"x" * (INVOKE_PAYLOAD_LIMIT + 1), wait_s=1)
    finally:
        pool.stop()
    assert (caught.value.status, caught.value.code) == (413, "payload_too_large")
    assert str(INVOKE_PAYLOAD_LIMIT) in caught.value.message
    assert runtime.invokes == 2  # the warm-up ping and the one at the limit


def test_a_runtime_that_dies_mid_invoke_costs_that_invoke_a_502_and_is_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = CountingRuntime("one")
    pool = started_pool(runtime)
    runtime.die_during_invoke = True
    try:
        with caplog.at_level(logging.INFO, logger="flowers_serving.local"):
            with pytest.raises(InvokeRefused) as caught:
                pool.invoke(b"{}", wait_s=PATIENCE_S)
            assert (caught.value.status, caught.value.code) == (502, "internal_error")
            assert "restarted" in caught.value.message
            assert pool.invoke(b'{"again": 1}', wait_s=PATIENCE_S).body == b'{"again": 1}'
    finally:
        pool.stop()
    assert runtime.starts == 2
    assert any("died; restarting it" in r.getMessage() for r in caplog.records)


def test_a_runtime_that_dies_while_idle_is_restarted_before_the_next_invoke() -> None:
    runtime = CountingRuntime("one")
    pool = started_pool(runtime)
    try:
        runtime.running = False  # as if killed
        wait_for(lambda: runtime.starts == 2, "the restart")
        assert pool.invoke(b"{}", wait_s=PATIENCE_S).status == 200
    finally:
        pool.stop()


def test_restarts_are_retried_and_the_failure_is_said() -> None:
    runtime = CountingRuntime("one")
    pool = started_pool(runtime)
    try:
        runtime.fail_starts = 2
        runtime.running = False
        with pytest.raises(Busy) as caught:
            pool.invoke(b"{}", wait_s=0.01)
        assert caught.value.status == 429
        wait_for(lambda: runtime.starts == 2, "the restart after two failures")
        assert pool.invoke(b"{}", wait_s=PATIENCE_S).status == 200
    finally:
        pool.stop()


class SlowToAnswer(CountingRuntime):
    """Honours the pool's timeout, as the real runtimes do."""

    def invoke(self, payload: bytes, timeout: float) -> Reply:
        if not self.hold.wait(timeout):
            raise TimeoutError
        return super().invoke(payload, timeout)


def test_a_runtime_that_does_not_answer_in_time_is_504_and_recycled() -> None:
    runtime = SlowToAnswer("slow")
    pool = started_pool(runtime)
    runtime.hold.clear()
    try:
        with pytest.raises(InvokeRefused) as caught:
            pool.invoke(b"{}", wait_s=1, deadline=time.monotonic() + 0.1)
        assert (caught.value.status, caught.value.code) == (504, "integration_timeout")
        runtime.hold.set()
        wait_for(lambda: runtime.starts == 2, "the recycled runtime")
        assert pool.invoke(b"{}", wait_s=PATIENCE_S).status == 200
    finally:
        runtime.hold.set()
        pool.stop()


# --- the built-in Python runtime, for real ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InvokeFront]:
    log = Path(tmp_path_factory.mktemp("pyruntime")) / "runtime.log"
    pool = FunctionPool().start([PythonRuntime(log_file=log, timeout_s=10)])
    front = InvokeFront(pool, port=0).start()
    yield front
    front.stop()
    pool.stop()
    assert pool.runtimes[0].alive() is False


def test_python_runtime_serves_concurrent_invokes(python_front: InvokeFront, flower_bytes: bytes) -> None:
    import base64

    body = {"image": base64.b64encode(flower_bytes).decode(), "top_k": 1}
    with ThreadPoolExecutor(6) as executor:
        replies = list(
            executor.map(lambda _: requests.post(python_front.url, json=body, timeout=PATIENCE_S), range(12))
        )
    assert {r.status_code for r in replies} == {200}
    assert {r.json()["predictions"][0]["class_id"] for r in replies} == {54}


def test_python_runtime_mimics_the_rie_on_bad_input(python_front: InvokeFront) -> None:
    reply = python_front._pool.invoke(b"not json", wait_s=PATIENCE_S)  # past the front, which refuses it
    assert reply.status == 200
    assert json.loads(reply.body)["errorType"] == "Runtime.UnmarshalError"
    handled = requests.post(python_front.url, json={"image": "%%%"}, timeout=PATIENCE_S)
    assert handled.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"", b"\xff\xfe{}", b'{"top_k": NaN}', b"[" * 100_000 + b"]" * 100_000, b"9" * 5000],
    ids=["text", "empty", "not-utf8", "nan", "deep", "huge-int"],
)
def test_a_payload_that_is_not_json_is_a_400_as_lambda_answers_it(python_front: InvokeFront, payload: bytes) -> None:
    reply = requests.post(python_front.url, data=payload, timeout=PATIENCE_S)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "bad_request"
    assert "not valid JSON" in reply.json()["error"]["message"]


def test_python_runtime_killed_is_restarted(python_front: InvokeFront) -> None:
    import os
    import signal

    runtime = python_front._pool.runtimes[0]
    assert isinstance(runtime, PythonRuntime)
    assert runtime.pid is not None
    killed = runtime.pid
    os.kill(runtime.pid, signal.SIGKILL)
    wait_for(lambda: runtime.returncode is not None or runtime.pid != killed, "the kill")
    reply = requests.post(python_front.url, json={"ping": True}, timeout=PATIENCE_S)
    assert reply.json()["status"] == "ok"
