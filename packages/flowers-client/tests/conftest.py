"""Client unit tests: the service is mocked at the HTTP edge (httpx's MockTransport) or
played by a fake service on loopback (CLI, README snippets); every other socket is refused
(pytest-socket, configured by the nox sessions)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_service import FakeService

GATEWAY = "https://api.example.test/prod/predict"
RIE = "http://127.0.0.1:9/2015-03-31/functions/function/invocations"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWERS_ENDPOINT", "FLOWERS_API_KEY", "FLOWERS_LOG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries wait for real in production; here the waits are recorded instead (sync and async)."""
    recorded: list[float] = []
    real_async_sleep = asyncio.sleep

    async def async_sleep(seconds: float, result: Any = None) -> Any:
        recorded.append(seconds)
        return await real_async_sleep(0, result)

    monkeypatch.setattr(time, "sleep", recorded.append)
    monkeypatch.setattr(asyncio, "sleep", async_sleep)
    return recorded


class Recorder:
    """A MockTransport handler that answers from a script and records every request."""

    def __init__(self, *replies: httpx.Response | Exception | Handler) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply) and not isinstance(reply, httpx.Response):
            return reply(request)
        return reply

    def sent(self, index: int = 0) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.requests[index].content)
        return body

    def sync(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def asynchronous(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def result_body(**extra: Any) -> dict[str, Any]:
    return {
        "predictions": [
            {"label": "sunflower", "class_id": 54, "score": 0.9},
            {"label": "daisy", "class_id": 49, "score": 0.05},
            {"label": "barbeton daisy", "class_id": 41, "score": 0.03},
        ],
        "model": "flowers-efficientnet-lite0",
        "model_version": "1.0.0",
        "request_id": "req-1",
        **extra,
    }


def error_body(code: str, message: str = "nope", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}, "request_id": "req-err"}


def ok(**extra: Any) -> httpx.Response:
    return httpx.Response(200, json=result_body(**extra))


@pytest.fixture
def service() -> Iterator[FakeService]:
    with FakeService() as fake:
        yield fake
