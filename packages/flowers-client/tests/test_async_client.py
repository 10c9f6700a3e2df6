"""AsyncFlowersClient: the same surface, errors and retry policy as the sync client (httpx MockTransport)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from conftest import GATEWAY, RIE, error_body, ok, result_body

import flowers_client
from flowers_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncFlowersClient,
    InternalServerError,
    NotAFlowerError,
    UnprocessableImageError,
    UpstreamError,
)

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes"
T = TypeVar("T")

AsyncHandler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


class AsyncRecorder:
    def __init__(self, *replies: httpx.Response | Exception | AsyncHandler) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return await reply(request)

    def client(self, endpoint: str = GATEWAY, **options: Any) -> AsyncFlowersClient:
        return AsyncFlowersClient(
            endpoint, http_client=httpx.AsyncClient(transport=httpx.MockTransport(self)), **options
        )


def test_classify_sends_the_same_request_and_reads_the_same_result() -> None:
    recorder = AsyncRecorder(ok(is_flower=True, flower_score=0.9))

    async def go() -> flowers_client.ClassifyResult:
        async with recorder.client(api_key="k") as client:
            return await client.classify("https://example.com/rose.jpg", top_k=3, reject=True)

    result = run(go())
    assert (result.best.label, result.is_flower, result.flower_score) == ("sunflower", True, 0.9)
    assert result.raw_response is not None
    assert result.raw_response.status_code == 200
    request = recorder.requests[0]
    assert json.loads(request.content) == {"url": "https://example.com/rose.jpg", "top_k": 3, "reject": True}
    assert request.headers["x-api-key"] == "k"
    assert request.headers["user-agent"] == flowers_client.USER_AGENT


@pytest.mark.parametrize(
    ("endpoint", "reply", "cls", "attempts"),
    [
        (GATEWAY, httpx.Response(422, json=error_body("undecodable_image")), UnprocessableImageError, 1),
        (GATEWAY, httpx.Response(502, json={"message": "Internal server error"}), InternalServerError, 3),
        (RIE, httpx.Response(200, json=error_body("not_a_flower", flower_score=0.2)), NotAFlowerError, 1),
        (
            RIE,
            httpx.Response(200, json=error_body("upstream_error", "the image URL answered HTTP 404")),
            UpstreamError,
            1,
        ),
        (GATEWAY, httpx.ConnectError("[Errno 111] Connection refused"), APIConnectionError, 3),
    ],
)
def test_the_same_errors_and_retries(
    endpoint: str, reply: httpx.Response | Exception, cls: type[Exception], attempts: int, waits: list[float]
) -> None:
    recorder = AsyncRecorder(reply)
    with pytest.raises(cls) as caught:
        run(recorder.client(endpoint, max_retries=2).classify(JPEG))
    assert type(caught.value) is cls
    assert len(recorder.requests) == attempts


def test_the_same_retry_policy(waits: list[float]) -> None:
    failure = httpx.Response(503, json=error_body("internal_error"))
    recorder = AsyncRecorder(failure, httpx.Response(429, json={}, headers={"Retry-After": "3"}), ok())
    assert run(recorder.client(max_retries=2).classify(JPEG)).best.class_id == 54
    assert len(recorder.requests) == 3
    assert 0.375 <= waits[0] <= 0.5
    assert waits[1] == 3.0


def test_a_trickling_reply_cannot_outlast_the_attempts_budget() -> None:
    chunks: list[int] = []

    async def trickle() -> AsyncIterator[bytes]:
        for i in range(200):
            await asyncio.sleep(0.05)
            chunks.append(i)
            yield b" "

    async def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())

    with pytest.raises(APITimeoutError):
        run(AsyncRecorder(reply).client(timeout=(0.1, 0.3), max_retries=0).classify(JPEG))
    assert len(chunks) < 200


def test_with_options(waits: list[float]) -> None:
    recorder = AsyncRecorder(httpx.Response(500, json=error_body("internal_error")))
    client = recorder.client(max_retries=4)
    quick = client.with_options(max_retries=0, timeout=(1, 2))
    with pytest.raises(InternalServerError):
        run(quick.classify(JPEG))
    assert len(recorder.requests) == 1
    assert (quick.timeout.connect, quick.timeout.read, client.max_retries) == (1, 2, 4)


async def url_reply(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body["url"].endswith("bad.jpg"):
        return httpx.Response(422, json=error_body("undecodable_image"))
    return httpx.Response(200, json=result_body(request_id=body["url"]))


def test_iter_classify_streams_with_bounded_concurrency() -> None:
    in_flight = [0, 0]
    release_first = asyncio.Event

    async def go() -> list[tuple[int, bool]]:
        first_may_answer = release_first()

        async def reply(request: httpx.Request) -> httpx.Response:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
            if json.loads(request.content)["url"].endswith("/0.jpg"):
                await first_may_answer.wait()
            await asyncio.sleep(0)
            in_flight[0] -= 1
            return await url_reply(request)

        urls = [f"https://example.com/{i}.jpg" for i in range(10)]
        urls[3] = "https://example.com/bad.jpg"
        seen = []
        async with AsyncRecorder(reply).client(max_retries=0) as client:
            async for item in client.iter_classify(urls, concurrency=3):
                seen.append((item.index, item.ok))
                if len(seen) == 1:
                    first_may_answer.set()
        return seen

    seen = run(go())
    assert seen[0][0] != 0  # input 0 was held: something else finished first
    assert sorted(seen) == [(i, i != 3) for i in range(10)]
    assert in_flight[1] <= 3


def test_classify_many_in_input_order_from_an_async_iterable() -> None:
    async def inputs() -> AsyncIterator[str]:
        for i in range(6):
            yield f"https://example.com/{i}.jpg"

    items = run(AsyncRecorder(url_reply).client().classify_many(inputs(), concurrency=4))
    assert [item.index for item in items] == list(range(6))
    assert all(item.ok and item.result.request_id == item.input for item in items)


def test_leaving_the_stream_cancels_requests_in_flight() -> None:
    cancelled: list[str] = []

    async def go() -> None:
        async def reply(request: httpx.Request) -> httpx.Response:
            url = json.loads(request.content)["url"]
            if not url.endswith("/0.jpg"):
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    cancelled.append(url)
                    raise
            return await url_reply(request)

        client = AsyncRecorder(reply).client()
        urls = [f"https://example.com/{i}.jpg" for i in range(5)]
        async with contextlib.aclosing(client.iter_classify(urls, concurrency=5)) as stream:  # type: ignore[type-var]
            async for item in stream:
                assert item.index == 0
                break

    run(go())
    assert len(cancelled) == 4
