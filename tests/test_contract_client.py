"""The client side of the contract, against the real local stack (RIE + gateway front, real model):
the asyncio client on every client case, the retry policy on real upstream failures, and the `flowers`
CLI as a person runs it through both transports (default concurrency, streaming, Ctrl-C, a dead endpoint)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest
from contract.cases import FLOWERS, Case
from test_contract import CLIENT_CASES, _client_input

import flowers_client

TRANSPORTS = ["gateway", "rie"]
HANG_GUARD = 120  # seconds; only keeps a broken build from hanging the suite


def endpoint_of(stack: Any, transport: str) -> str:
    return f"{stack.gateway_url}/predict" if transport == "gateway" else str(stack.rie_url)


def expected_class(path: Any) -> int:
    return int(path.name.split("-", 1)[0])


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", CLIENT_CASES, ids=str)
def test_async_client(case: Case, transport: str, stack: Any, upstream: Any) -> None:
    async def go() -> None:
        async with flowers_client.AsyncFlowersClient(endpoint_of(stack, transport), max_retries=0) as client:
            if case.code is None:
                result = await client.classify(_client_input(case, upstream), top_k=5, reject=case.reject)
                assert result.request_id
                assert len(result.predictions) == 5
                if case.class_id is not None:
                    assert result.best.class_id == case.class_id
                if case.is_flower is not None:
                    assert result.is_flower is case.is_flower
                return
            with pytest.raises(flowers_client.APIStatusError) as caught:
                await client.classify(_client_input(case, upstream), top_k=5, reject=case.reject)
            assert (caught.value.code, caught.value.status_code) == (case.code, case.status)
            assert caught.value.request_id
            if case.code == "not_a_flower":
                assert isinstance(caught.value, flowers_client.NotAFlowerError)
                assert caught.value.predictions

    asyncio.run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_async_batch_streams_every_photo(transport: str, stack: Any) -> None:
    photos = FLOWERS * 3

    async def go() -> list[flowers_client.BatchItem]:
        async with flowers_client.AsyncFlowersClient(endpoint_of(stack, transport)) as client:
            return [item async for item in client.iter_classify(photos, top_k=1)]  # default concurrency

    items = asyncio.run(go())
    assert sorted(item.index for item in items) == list(range(len(photos)))
    for item in items:
        assert item.ok, item.error
        assert item.result.best.class_id == expected_class(photos[item.index])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_results_carry_the_flower_fields_when_the_service_sends_them(transport: str, stack: Any) -> None:
    with flowers_client.FlowersClient(endpoint_of(stack, transport)) as client:
        result = client.classify(FLOWERS[0])
    raw = result.raw_response
    assert raw is not None
    assert raw.status_code == 200
    sent = raw.json()
    assert isinstance(sent, dict)
    assert result.is_flower == sent.get("is_flower")
    assert result.flower_score == sent.get("flower_score")
    if result.flower_score is not None:
        assert 0.0 <= result.flower_score <= 1.0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("route", "attempts"), [("/missing", 1), ("/error", 3)])
def test_upstream_4xx_is_not_retried_and_5xx_is(
    route: str, attempts: int, transport: str, stack: Any, upstream: Any
) -> None:
    sent: list[httpx.Request] = []
    spy = httpx.Client(event_hooks={"request": [sent.append]})
    client = flowers_client.FlowersClient(endpoint_of(stack, transport), max_retries=2, http_client=spy)
    with pytest.raises(flowers_client.UpstreamError) as caught:
        client.classify(upstream.url(route))
    spy.close()
    assert caught.value.upstream_status == (404 if route == "/missing" else 500)
    assert len(sent) == attempts


def flowers(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "FLOWERS_ENDPOINT"}
    return subprocess.Popen(
        [sys.executable, "-m", "flowers_client.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cli_batch_at_default_concurrency(transport: str, stack: Any) -> None:
    photos = [str(p) for p in FLOWERS * 4]
    process = flowers("classify", *photos, "--endpoint", endpoint_of(stack, transport), "--json", "--top-k", "1")
    out, err = process.communicate(timeout=HANG_GUARD)
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["input"] for line in lines] == photos
    assert [line["predictions"][0]["class_id"] for line in lines] == [expected_class(p) for p in FLOWERS * 4]
    assert f"{len(photos)} classified, 0 failed in" in err


def test_cli_ctrl_c_mid_batch_through_the_gateway(stack: Any, upstream: Any) -> None:
    """Four photos, then URLs the stack needs seconds for (the upstream is slow): interrupt after the photos."""
    photos = [str(p) for p in FLOWERS]
    slow = [upstream.url(f"/slow?{i}") for i in range(10)]
    args = ["--endpoint", endpoint_of(stack, "gateway"), "--json", "--concurrency", "2"]
    process = flowers("classify", *photos, *slow, *args)
    try:
        code, finished, rest, err = interrupt_after(process, len(photos))
    finally:
        # What the gateway still holds for the stopped run goes to the one RIE before anything else.
        httpx.get(f"{stack.gateway_url}/health", timeout=HANG_GUARD)
    assert code == 130
    assert "Traceback" not in err
    assert "interrupted" in err
    assert [line["input"] for line in finished] == photos
    assert all(line["ok"] for line in finished)
    assert all(isinstance(json.loads(line), dict) for line in rest)


def test_cli_ctrl_c_mid_batch_through_the_rie(stack: Any) -> None:
    """A long batch of photos through the RIE: interrupt after four; the emulator is free afterwards."""
    photos = [str(p) for p in FLOWERS * 30]
    process = flowers("classify", *photos, "--endpoint", endpoint_of(stack, "rie"), "--json")
    code, finished, rest, err = interrupt_after(process, 4)
    lines = finished + [json.loads(line) for line in rest]
    assert "Traceback" not in err
    if code == 0:  # the machine was quick enough to finish all 120 before the signal arrived
        assert len(lines) == len(photos)
    else:
        assert code == 130
        assert "interrupted" in err
        assert [line["index"] for line in finished] == [0, 1, 2, 3]
        assert all(line["ok"] for line in lines)
    with flowers_client.FlowersClient(endpoint_of(stack, "rie"), max_retries=0) as client:
        assert client.classify(FLOWERS[0]).best.class_id == expected_class(FLOWERS[0])  # not crashed


def interrupt_after(process: subprocess.Popen[str], lines: int) -> tuple[int, list[Any], list[str], str]:
    """Read ``lines`` JSON lines, send SIGINT, and collect what follows."""
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        finished = [json.loads(process.stdout.readline()) for _ in range(lines)]
        process.send_signal(signal.SIGINT)
        code = process.wait(HANG_GUARD)
    finally:
        process.kill()
    return code, finished, process.stdout.read().splitlines(), process.stderr.read()


def test_cli_dead_endpoint_exits_non_zero_with_a_hint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/predict"
    process = flowers("classify", *(str(p) for p in FLOWERS), "--endpoint", dead, "--json")
    out, err = process.communicate(timeout=HANG_GUARD)
    assert process.returncode == 1
    assert "nox -s serve" in err
    assert "FLOWERS_ENDPOINT" in err
    assert "Traceback" not in err
    for line in out.splitlines():
        assert json.loads(line)["error"]["type"] == "APIConnectionError"
