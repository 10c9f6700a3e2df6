"""A sync httpx transport whose every socket operation ends by the attempt's end.

httpx's sync timeouts apply to each socket read on its own: a server that
trickles its status line and headers a byte at a time never trips them, and
no chunk of the body arrives to be checked against a clock either. So the
synchronous client sends through :class:`AttemptClockTransport`: its network
backend clamps every connect, read and write to the time the attempt has
left (set per thread with :func:`attempt_ends_at`), and raises httpcore's own
timeout once it is gone, which httpx reports as usual. The asyncio client
needs none of this: ``asyncio.wait_for`` bounds its whole exchange.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

__all__ = ["AttemptClockTransport", "attempt_ends_at"]

_clock = threading.local()  # one request per thread at a time: the sync client's batches use threads


@contextlib.contextmanager
def attempt_ends_at(when: float | None) -> Iterator[None]:
    """Within the block, this thread's socket operations end by ``when`` (``time.monotonic()``)."""
    previous = getattr(_clock, "ends_at", None)
    _clock.ends_at = when
    try:
        yield
    finally:
        _clock.ends_at = previous


def _clamp(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    ends_at: float | None = getattr(_clock, "ends_at", None)
    if ends_at is None:
        return timeout
    left = ends_at - time.monotonic()
    if left <= 0:
        raise error("the attempt's time is up")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout))
        return _Stream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout = _clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class AttemptClockTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose sockets obey :func:`attempt_ends_at`.

    httpcore's pools keep their network backend in ``_network_backend`` (the
    only private name used here). Should a future httpcore rename it, the
    transport works as a plain one, and the client still checks its clock
    between the chunks of a reply (``nox -s client`` then fails, on purpose).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        pool = getattr(self, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
