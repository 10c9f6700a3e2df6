"""One deadline for a whole fetch: DNS, connect, TLS, headers, every redirect hop and the body.

Socket timeouts bound each wait, not the sum: a server that sends one header
byte a second, or answers each redirect hop just in time, never trips them.
So a fetch runs under a :class:`Deadline` that

* runs each DNS lookup on a helper thread and stops waiting when time is up
  (``getaddrinfo`` cannot be interrupted; the lookup is left to finish alone);
* shortens the connect timeout of every new connection to the time left;
* knows every socket the fetch uses (urllib3 connections are subclassed to
  report them) and, when time is up, shuts them down from a timer thread, which
  wakes whatever read is blocked on them at once.

:class:`GuardedAdapter` is requests-hardened's adapter with those hooks and our
stricter address policy (:mod:`flowers_serving.addresses`) on the address it
resolved, before the connection to it opens.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Final

import requests
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError

from flowers_serving.addresses import forbidden_reason, parse_ip

__all__ = ["Deadline", "GuardedAdapter", "running"]

#: Lookups that outlive their deadline keep a thread until the resolver gives up;
#: a few threads are enough for a function that serves one request at a time.
_RESOLVER: Final = ThreadPoolExecutor(max_workers=4, thread_name_prefix="flowers-dns")
_local = threading.local()


class Deadline:
    """A point in time after which the fetch's sockets are shut down."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.expired:
                _shutdown(sock)
            elif sock not in self._sockets:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def running(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` govern every connection this thread opens inside the block."""
    _local.deadline = deadline
    deadline.start()
    try:
        yield deadline
    finally:
        deadline.stop()
        _local.deadline = None


def _active() -> Deadline | None:
    deadline: Deadline | None = getattr(_local, "deadline", None)
    return deadline


class _DeadlineMixin:
    """urllib3 connection hooks: clamp the connect timeout, report sockets to the deadline."""

    sock: socket.socket | None
    timeout: Any

    def _new_conn(self) -> socket.socket:
        deadline = _active()
        if deadline is not None:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise ConnectTimeoutError(self, "the fetch deadline passed before connecting")
            if not isinstance(self.timeout, int | float) or self.timeout > remaining:
                self.timeout = remaining
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        if deadline is not None:
            deadline.track(sock)  # before TLS: a stalled handshake is cut too
        return sock

    def getresponse(self) -> Any:
        deadline = _active()
        if deadline is not None:
            deadline.track(self.sock)  # a kept-alive connection never went through _new_conn
        return super().getresponse()  # type: ignore[misc]


class _HTTPConnection(_DeadlineMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class GuardedAdapter(IPFilterAdapter):  # type: ignore[misc]  # requests-hardened ships no types
    """requests-hardened's adapter + the deadline hooks + our address policy on the resolved address."""

    def __init__(self, *, is_https_proto: bool, allow_loopback: bool) -> None:
        super().__init__(is_https_proto=is_https_proto, allow_loopback=allow_loopback)
        self._allow = allow_loopback

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        parent = super().build_connection_pool_key_attributes
        deadline = _active()
        if deadline is None:
            host_params, pool_kwargs = parent(request, verify, cert)
        else:
            # requests-hardened resolves the host here (getaddrinfo): bound it by the deadline.
            future = _RESOLVER.submit(parent, request, verify, cert)
            try:
                host_params, pool_kwargs = future.result(timeout=max(0.0, deadline.remaining()))
            except FutureTimeout as exc:
                raise requests.exceptions.ConnectTimeout("the host name did not resolve in time") from exc
        ip = parse_ip(str(host_params["host"]))
        reason = "not an IP address" if ip is None else forbidden_reason(ip, allow_loopback=self._allow)
        if reason is not None:
            raise InvalidIPAddress(f"{host_params['host']}: {reason}")
        return host_params, pool_kwargs
