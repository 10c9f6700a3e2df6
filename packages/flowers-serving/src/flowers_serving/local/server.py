"""A small threaded HTTP/1.1 server for the local fronts, on h11.

h11 (python-hyper) does the parsing, strictly: a ``Content-Length`` that is
not a plain decimal number, or two that disagree, is an error with a 400
hint; heads over ``max_header_bytes`` get 431; a body that ends before its
declared length is an error, never a short request. This module adds what a
parser cannot know: time limits (idle between requests, the whole head, the
whole body, each send), a body cap answered with 413 before the body is read,
a connection cap, and one JSON error shape for everything it refuses. Each
request then goes to an ``app`` callable, whole, on the connection's thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

import h11

from flowers_serving.local.messages import Request, Response, json_error
from flowers_serving.local.ports import HANDSHAKE_PATH, SERVICE, PortInUse, bind_listener, probe_owner

__all__ = [
    "HANDSHAKE_PATH",
    "HttpServer",
    "Limits",
    "PortInUse",
    "Request",
    "Response",
    "json_error",
    "probe_owner",
]

logger = logging.getLogger("flowers_serving.local.server")

_DRAIN_BYTES: Final = 64 * 1024 * 1024
_DRAIN_S: Final = 2.0


@dataclass(frozen=True)
class Limits:
    """What one front accepts. Times are totals, not per read, so trickling bytes buys nothing."""

    max_body: int
    #: Said after "the request body is N bytes;" in the 413 message.
    body_limit_note: str
    idle_timeout_s: float = 60.0  # a kept-alive connection with no new request
    header_timeout_s: float = 10.0  # connection or first byte of a request -> end of its head
    body_timeout_s: float = 30.0  # end of the head -> end of the body
    send_timeout_s: float = 30.0  # a client that does not read its response
    max_header_bytes: int = 16 * 1024
    max_connections: int = 64


class _Timeout(Exception):
    pass


class _Refuse(Exception):
    """Answer this and close the connection (the request was not read whole)."""

    def __init__(self, response: Response) -> None:
        self.response = response


class HttpServer:
    """Binds ``host:port`` at construction (so a busy port fails at once), serves after :meth:`start`."""

    def __init__(
        self,
        app: Callable[[Request], Response],
        *,
        name: str,
        limits: Limits,
        host: str = "127.0.0.1",
        port: int = 0,
        option: str = "--port",
    ) -> None:
        self._app = app
        self.name = name
        self.limits = limits
        self._listener = bind_listener(host, port, option)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    # --- connections ---------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        # A selector with a short tick: closing a socket does not wake a thread blocked in accept() on Linux.
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not selector.select(timeout=0.2):
                    continue
                try:
                    sock, client = self._listener.accept()
                except OSError:
                    continue
                if not self._slots.acquire(blocking=False):
                    self._send_quietly(sock, _busy_bytes())
                    continue
                with self._lock:
                    self._open.add(sock)
                threading.Thread(
                    target=self._serve_connection, args=(sock, client), name=f"{self.name}-conn", daemon=True
                ).start()

    def _serve_connection(self, sock: socket.socket, client: tuple[str, int]) -> None:
        linger = True
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
            first = True
            while not self._stopping.is_set():
                try:
                    request = self._read_request(sock, conn, client, first=first)
                    first = False
                except _Refuse as refuse:
                    self._send(sock, conn, refuse.response, close=True)
                    return
                if request is None:
                    linger = False
                    return
                response = self._respond(request)
                self._send(sock, conn, response, close=False, head_only=request.method == "HEAD")
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    return
        except (OSError, h11.LocalProtocolError, _Timeout):
            return
        finally:
            self._close(sock, linger=linger)
            with self._lock:
                self._open.discard(sock)
            self._slots.release()

    def _respond(self, request: Request) -> Response:
        if request.path == HANDSHAKE_PATH and request.method == "GET":
            body = json.dumps({"service": SERVICE, "front": self.name, "pid": os.getpid()}).encode()
            return Response(200, body, {"Content-Type": "application/json"})
        try:
            return self._app(request)
        except Exception:  # one request never takes the front down
            logger.exception("%s: unexpected error", self.name)
            return json_error(500, "internal_error", "the local front failed on this request; see its log")

    def _read_request(
        self, sock: socket.socket, conn: h11.Connection, client: tuple[str, int], *, first: bool
    ) -> Request | None:
        """One whole request, or None when the client closed (or idled out) between requests."""
        limits = self.limits
        started = bool(conn.trailing_data[0])  # pipelined bytes already waiting
        # A new connection has the head's time to send one; only a kept-alive one may idle between requests.
        wait = limits.header_timeout_s if started or first else limits.idle_timeout_s
        deadline = time.monotonic() + wait
        try:
            while True:
                event = conn.next_event()
                if event is not h11.NEED_DATA:
                    break
                try:
                    data = _recv(sock, deadline)
                except _Timeout:
                    if not started:
                        return None  # idle: close quietly
                    raise _Refuse(
                        json_error(
                            408, "bad_request", f"the request head took longer than {limits.header_timeout_s:g} s"
                        )
                    ) from None
                if data and not started:
                    started = True
                    deadline = time.monotonic() + limits.header_timeout_s
                conn.receive_data(data)
            if isinstance(event, h11.ConnectionClosed):
                return None
            assert isinstance(event, h11.Request), event
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()]
            # h11 bounds a head that arrives in pieces; one that arrives whole is measured here.
            if len(event.target) + sum(len(k) + len(v) + 4 for k, v in headers) > limits.max_header_bytes:
                raise _Refuse(
                    json_error(431, "bad_request", f"the request head is larger than {limits.max_header_bytes:,} bytes")
                )
            names = {k.lower() for k, _ in headers}
            if "transfer-encoding" in names and "content-length" in names:
                # RFC 9112 lets a server refuse this: it is how requests are smuggled past proxies.
                raise _Refuse(
                    json_error(400, "bad_request", "send either Content-Length or Transfer-Encoding, not both")
                )
            declared = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
            if declared is not None and declared > limits.max_body:
                raise _Refuse(self._too_large(declared))
            if conn.they_are_waiting_for_100_continue:
                sock.settimeout(limits.send_timeout_s)
                sock.sendall(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            body = bytearray()
            deadline = time.monotonic() + limits.body_timeout_s
            while True:
                part = conn.next_event()
                if part is h11.NEED_DATA:
                    try:
                        conn.receive_data(_recv(sock, deadline))
                    except _Timeout:
                        raise _Refuse(
                            json_error(
                                408,
                                "bad_request",
                                f"the request body did not arrive within {limits.body_timeout_s:g} s "
                                f"({len(body):,} of {declared if declared is not None else 'unknown'} bytes)",
                            )
                        ) from None
                elif isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > limits.max_body:  # chunked bodies: counted as they come
                        raise _Refuse(self._too_large(None))
                elif isinstance(part, h11.EndOfMessage):
                    break
                elif isinstance(part, h11.ConnectionClosed):
                    return None
            return Request(event.method.decode("ascii"), event.target.decode("latin-1"), headers, bytes(body), client)
        except h11.RemoteProtocolError as exc:
            # Includes a body cut short by the client closing: nothing half-read is ever answered as a request.
            status = exc.error_status_hint
            message = str(exc) or "malformed HTTP request"
            if status == 431:
                message = f"the request head is larger than {limits.max_header_bytes:,} bytes"
            raise _Refuse(json_error(status, "bad_request", message)) from None

    def _too_large(self, declared: int | None) -> Response:
        size = f"{declared:,} bytes" if declared is not None else f"over {self.limits.max_body:,} bytes"
        return json_error(413, "payload_too_large", f"the request body is {size}; {self.limits.body_limit_note}")

    def _send(
        self, sock: socket.socket, conn: h11.Connection, response: Response, *, close: bool, head_only: bool = False
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        headers = {"Content-Type": "application/json", **response.headers, "Server": f"{SERVICE}-{self.name}"}
        # Framing is ours to say, whatever the app put in.
        pairs = [
            (k, v) for k, v in headers.items() if k.lower() not in ("content-length", "connection", "transfer-encoding")
        ]
        pairs.append(("Content-Length", str(len(response.body))))
        if close:
            pairs.append(("Connection", "close"))
        try:
            reason = HTTPStatus(response.status).phrase.encode()
        except ValueError:
            reason = b""
        data = conn.send(h11.Response(status_code=response.status, headers=pairs, reason=reason)) or b""
        if not head_only:  # a reply to HEAD has the headers of the full reply and no body (h11 refuses one)
            data += conn.send(h11.Data(data=response.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        sock.settimeout(self.limits.send_timeout_s)
        sock.sendall(data)

    @staticmethod
    def _close(sock: socket.socket, *, linger: bool) -> None:
        """Close so the client still reads our answer: stop sending, then discard what it is still sending."""
        try:
            if linger:
                sock.shutdown(socket.SHUT_WR)
                deadline, drained = time.monotonic() + _DRAIN_S, 0
                while drained < _DRAIN_BYTES:
                    chunk = _recv(sock, deadline)
                    if not chunk:
                        break
                    drained += len(chunk)
        except (OSError, _Timeout):
            pass
        finally:
            sock.close()

    @staticmethod
    def _send_quietly(sock: socket.socket, data: bytes) -> None:
        """Answer a connection over the cap without a thread: a short drain, so the answer is not lost to a reset."""
        try:
            sock.settimeout(0.5)
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 0.05
            while _recv(sock, deadline):
                pass
        except (OSError, _Timeout):
            pass
        finally:
            sock.close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Timeout
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except TimeoutError:
        raise _Timeout from None


def _busy_bytes() -> bytes:
    # What API Gateway answers a client over its limits: 429 rate_limited (the contract's code for it), with a hint.
    body = json.dumps(
        {"error": {"code": "rate_limited", "message": "too many open connections to the local front; retry"}}
    ).encode()
    head = (
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
