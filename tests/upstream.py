"""A hostile image host on 127.0.0.1 for fetch tests: slow, endless, lying, redirecting.

Shared by the serving unit tests and the contract tests. It only ever listens
on loopback, and every route ends by itself (bounded sleeps and sizes).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

FIXTURES = Path(__file__).parent / "fixtures"
FLOWER = FIXTURES / "flowers" / "054-sunflower.jpg"
NONFLOWER = FIXTURES / "nonflowers" / "cat.jpg"


class QuietServer(ThreadingHTTPServer):
    """A test server that does not print a traceback when a client hangs up: the tests' clients do, on purpose."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, str]] = {}
    #: Set when the server stops: routes that stall wait on it, so none outlives the tests.
    stopping: ClassVar[threading.Event] = threading.Event()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "image/jpeg", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        # The fetcher hanging up early is the point of most routes.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(path)

    def _trickle(self, data: bytes, every: float) -> None:
        for i in range(len(data)):
            if self.stopping.wait(every):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def _route(self, path: str) -> None:
        if path == "/flower.jpg":
            self._send(200, FLOWER.read_bytes())
        elif path == "/nonflower.jpg":
            self._send(200, NONFLOWER.read_bytes())
        elif path == "/flower-octet":
            self._send(200, FLOWER.read_bytes(), "application/octet-stream")
        elif path == "/page.html":
            self._send(200, b"<html>not a flower</html>", "text/html; charset=utf-8")
        elif path == "/text-as-jpeg":
            self._send(200, b"plain text pretending", "image/jpeg")
        elif path == "/missing":
            self._send(404, b"not found", "text/plain")
        elif path == "/error":
            self._send(500, b"boom", "text/plain")
        elif path == "/redirect":
            self._send(302, b"", "text/plain", Location="/flower.jpg")
        elif path == "/redirect-metadata":
            self._send(302, b"", "text/plain", Location="http://169.254.169.254/latest/meta-data/")
        elif path == "/redirect-file":
            self._send(302, b"", "text/plain", Location="file:///etc/passwd")
        elif path == "/redirect-unparsable":
            self._send(302, b"", "text/plain", Location="http://[::1/")  # urljoin raises ValueError
        elif path == "/redirect-loop":
            self._send(302, b"", "text/plain", Location="/redirect-loop")
        elif path == "/slow":
            time.sleep(4)  # longer than the test stacks' read timeout
            self._send(200, FLOWER.read_bytes())
        elif path == "/trickle":
            # Headers at once, then a byte every 0.5 s: each read is quick, the whole is not.
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"\xff")
                self.wfile.flush()
                time.sleep(0.5)
        elif path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b"\xff\xd8" + b"\x00" * 1024)
        elif path == "/endless":
            # No Content-Length, chunked, never ends on its own (bounded at 64 MB).
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\x00" * 65536
            for _ in range(1024):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/stall-headers":
            # Accepts the request, then says nothing for 30 s.
            self.stopping.wait(30)
        elif path == "/trickle-headers":
            # A header byte every 0.5 s: every single read is quick, the headers never end in time.
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._trickle(b"Content-Type: image/jpeg\r\nX-Padding: " + b"a" * 60 + b"\r\n\r\n", 0.5)
        elif path.startswith("/slow-redirect/"):
            # Each hop answers after 1.5 s (under the read timeout); three hops pass the deadline.
            hops = int(path.rsplit("/", 1)[1])
            if self.stopping.wait(1.5):
                return
            target = f"/slow-redirect/{hops - 1}" if hops > 1 else "/flower.jpg"
            self._send(302, b"", "text/plain", Location=target)
        elif path == "/redirect-endless-body":
            # A redirect whose body never ends: following it must not read that body.
            self.send_response(302)
            self.send_header("Location", "/flower.jpg")
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(4096):
                self.wfile.write(b"\x00" * 65536)
        elif path == "/reset-mid-body":
            # Half the promised body, then a TCP reset.
            body = FLOWER.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif path == "/short-body":
            # Promises more bytes than it sends, then closes cleanly.
            body = FLOWER.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body) * 2))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        else:
            self._send(404, b"no such route", "text/plain")


class Upstream:
    """``with Upstream() as up: up.url("/flower.jpg")``"""

    def __init__(self) -> None:
        self._server = QuietServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Upstream:
        _Handler.stopping.clear()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _Handler.stopping.set()
        self._server.shutdown()
        self._server.server_close()
