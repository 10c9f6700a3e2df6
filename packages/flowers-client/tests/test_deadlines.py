"""A server on loopback that trickles its reply cannot hold a call past its time, sync or async.

Each byte comes quickly, so no per-read timeout ever trips: only the
attempt's budget (connect + read) and the call's deadline can end the call.
The server would take 100 s to finish; the tests count how much it got to
send rather than timing the client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

import flowers_client
from flowers_client import APITimeoutError, AsyncFlowersClient, FlowersClient

BYTES = 2000
PAUSE = 0.05  # seconds between two bytes: 100 s for the whole reply


class Trickler:
    """Answers every connection with a reply that trickles out: the headers, or the body."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.sent: list[int] = []  # bytes sent on each connection
        self.stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/predict"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(connection, len(self.sent)), daemon=True).start()
            self.sent.append(0)

    def _answer(self, connection: socket.socket, n: int) -> None:
        with connection:
            connection.settimeout(5)
            try:
                connection.recv(65536)
                if self.part == "headers":
                    connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                else:
                    connection.sendall(
                        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {BYTES}\r\n\r\n".encode()
                    )
                for _ in range(BYTES):
                    if self.stop.wait(PAUSE):
                        return
                    connection.sendall(b"a" if self.part == "headers" else b" ")
                    self.sent[n] += 1
            except OSError:  # the client hung up: what the tests want
                return

    def close(self) -> None:
        self.stop.set()
        self._thread.join()
        self._server.close()


@pytest.fixture(params=["headers", "body"])
def trickler(request: pytest.FixtureRequest) -> Iterator[Trickler]:
    server = Trickler(request.param)
    yield server
    server.close()


def test_sync_attempt_budget_bounds_a_trickling_reply(trickler: Trickler) -> None:
    with (
        FlowersClient(trickler.url, timeout=(0.5, 0.5), max_retries=0, deadline=None) as client,
        pytest.raises(APITimeoutError, match=r"\b1 s\b"),
    ):
        client.classify(b"image")
    assert len(trickler.sent) == 1
    assert trickler.sent[0] < BYTES


def test_sync_deadline_bounds_every_attempt_and_retry(trickler: Trickler) -> None:
    with (
        FlowersClient(trickler.url, timeout=(0.5, 0.5), max_retries=50, deadline=2.0) as client,
        pytest.raises(APITimeoutError, match="deadline"),
    ):
        client.classify(b"image")
    assert 1 <= len(trickler.sent) < 50  # it retried, then the deadline ended the call
    assert all(n < BYTES for n in trickler.sent)


def test_with_options_gives_one_call_a_shorter_deadline(trickler: Trickler) -> None:
    with FlowersClient(trickler.url, timeout=(60, 60), max_retries=2) as client:
        with pytest.raises(APITimeoutError, match=r"1\.5 s deadline"):
            client.with_options(deadline=1.5).classify(b"image")
        assert client.deadline == flowers_client.DEFAULT_DEADLINE
    assert all(n < BYTES for n in trickler.sent)


def test_async_deadline_bounds_every_attempt_and_retry(trickler: Trickler) -> None:
    async def call() -> None:
        async with AsyncFlowersClient(trickler.url, timeout=(0.5, 0.5), max_retries=50, deadline=2.0) as client:
            await client.classify(b"image")

    with pytest.raises(APITimeoutError, match="deadline"):
        asyncio.run(call())
    assert 1 <= len(trickler.sent) < 50
    assert all(n < BYTES for n in trickler.sent)


def test_a_batch_item_that_trickles_fails_alone(trickler: Trickler) -> None:
    with FlowersClient(trickler.url, timeout=(0.5, 0.5), max_retries=0, deadline=1.0) as client:
        items = client.classify_many([b"one", b"two"], concurrency=2)
    assert [item.ok for item in items] == [False, False]
    assert all(isinstance(item.error, APITimeoutError) for item in items)
