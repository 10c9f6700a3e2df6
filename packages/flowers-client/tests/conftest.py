"""Client unit tests: the service is mocked at the HTTP edge with `responses`;
every other socket is refused (the tests never reach a network)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import responses

GATEWAY = "https://api.example.test/prod/predict"
RIE = "http://127.0.0.1:9/2015-03-31/functions/function/invocations"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access in a unit test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries wait for real in production; here the waits are recorded instead."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


@pytest.fixture
def waits(_no_sleep: list[float]) -> list[float]:
    return _no_sleep


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


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


def error_body(code: str, message: str = "nope") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "request_id": "req-err"}
