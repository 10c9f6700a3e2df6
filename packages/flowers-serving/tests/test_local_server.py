"""The local fronts' HTTP server: strict framing, size caps and time limits, over real loopback sockets.

Each test serves a small recording app and talks raw HTTP to it, so what the
app receives (or never receives) is what is checked. Time limits are set to a
fraction of a second; no test asserts how long anything took, only that a
connection ends (the loops that wait for it are bounded far above the limit).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from flowers_serving.local.server import (
    HANDSHAKE_PATH,
    HttpServer,
    Limits,
    PortInUse,
    Request,
    Response,
    probe_owner,
)

LIMITS = Limits(
    max_body=1000,
    body_limit_note="this front accepts up to 1000 bytes",
    idle_timeout_s=0.5,
    header_timeout_s=0.5,
    body_timeout_s=0.5,
    send_timeout_s=2.0,
    max_header_bytes=4096,
    max_connections=4,
)
#: Far above every limit: only a front that never closes fails the tests that wait.
PATIENCE_S = 30.0


class Recorder:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        self.release.wait(PATIENCE_S)
        return Response(200, json.dumps({"got": len(request.body)}).encode())


@pytest.fixture
def app() -> Recorder:
    return Recorder()


@pytest.fixture
def server(app: Recorder) -> Iterator[HttpServer]:
    with HttpServer(app, name="test", limits=LIMITS, port=0) as running:
        yield running


def exchange(server: HttpServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the first response's status, headers and body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S) as sock:
        sock.sendall(raw)
        data = read_until_closed(sock)
    return parse_response(data)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, rest[: int(headers.get("content-length", len(rest)))]


def error_code(body: bytes) -> str:
    code: str = json.loads(body)["error"]["code"]
    return code


def post(length: str | list[str], body: bytes = b"", extra: str = "") -> bytes:
    lengths = [length] if isinstance(length, str) else length
    head = "POST /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    head += "".join(f"Content-Length: {v}\r\n" for v in lengths) + extra + "\r\n"
    return head.encode() + body


def test_a_good_request_reaches_the_app(server: HttpServer, app: Recorder) -> None:
    status, _, body = exchange(server, post("5", b"hello"))
    assert (status, json.loads(body)) == (200, {"got": 5})
    assert app.requests[0].body == b"hello"
    assert app.requests[0].header("content-length") == "5"


@pytest.mark.parametrize(
    "lengths", [["abc"], ["-1"], ["+5"], ["5 5"], ["0x5"], ["5", "6"], ["5, 6"], ["9" * 30]], ids=str
)
def test_a_malformed_content_length_is_400_and_never_reaches_the_app(
    server: HttpServer, app: Recorder, lengths: list[str]
) -> None:
    status, _, body = exchange(server, post(lengths, b"hello"))
    assert status == 400
    assert error_code(body) == "bad_request"
    assert app.requests == []


def test_head_gets_the_headers_of_the_reply_and_no_body(server: HttpServer, app: Recorder) -> None:
    raw = b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S) as sock:
        sock.sendall(raw)
        data = read_until_closed(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"HTTP/1.1 200")  # no body after the HEAD reply; the next request is answered
    assert [r.method for r in app.requests] == ["HEAD", "GET"]


def test_identical_duplicate_content_lengths_are_one(server: HttpServer, app: Recorder) -> None:
    status, _, _ = exchange(server, post(["5", "5"], b"hello"))
    assert status == 200
    assert app.requests[0].body == b"hello"


def test_content_length_with_transfer_encoding_is_refused(server: HttpServer, app: Recorder) -> None:
    status, _, body = exchange(server, post("5", b"0\r\n\r\n", extra="Transfer-Encoding: chunked\r\n"))
    assert status == 400
    assert "not both" in json.loads(body)["error"]["message"]
    assert app.requests == []


def test_a_body_cut_short_by_the_client_is_never_forwarded(server: HttpServer, app: Recorder) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S) as sock:
        sock.sendall(post("100", b"x" * 40))
        sock.shutdown(socket.SHUT_WR)  # the client gives up half way
        read_until_closed(sock)
    assert app.requests == []


def test_a_body_that_stalls_is_408_and_never_forwarded(server: HttpServer, app: Recorder) -> None:
    status, _, body = exchange(server, post("100", b"x" * 40))
    assert status == 408
    assert "40 of 100 bytes" in json.loads(body)["error"]["message"]
    assert app.requests == []


def test_a_declared_body_over_the_limit_is_413_before_it_is_read(server: HttpServer, app: Recorder) -> None:
    response = requests.post(f"{server.url}/x", data=b"x" * 50_000, timeout=PATIENCE_S)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "payload_too_large",
        "message": "the request body is 50,000 bytes; this front accepts up to 1000 bytes",
    }
    assert app.requests == []


def test_a_chunked_body_over_the_limit_is_413(server: HttpServer, app: Recorder) -> None:
    chunks = iter([b"x" * 600, b"x" * 600])
    response = requests.post(f"{server.url}/x", data=chunks, timeout=PATIENCE_S)
    assert response.status_code == 413
    assert error_code(response.content) == "payload_too_large"
    assert app.requests == []


def test_a_chunked_body_within_the_limit_is_read_whole(server: HttpServer, app: Recorder) -> None:
    response = requests.post(f"{server.url}/x", data=iter([b"ab", b"cd"]), timeout=PATIENCE_S)
    assert response.json() == {"got": 4}
    assert app.requests[0].body == b"abcd"


def test_expect_100_continue_is_answered(server: HttpServer, app: Recorder) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S) as sock:
        sock.sendall(post("3", extra="Expect: 100-continue\r\n"))
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"abc")
        status, _, body = parse_response(read_until_closed(sock))
    assert (status, json.loads(body)) == (200, {"got": 3})


def test_a_head_over_the_size_limit_is_431(server: HttpServer, app: Recorder) -> None:
    status, _, body = exchange(server, post("0", extra=f"X-Big: {'y' * 5000}\r\n"))
    assert status == 431
    assert error_code(body) == "bad_request"
    assert app.requests == []


def test_a_header_trickle_is_cut_off_by_the_head_timeout(server: HttpServer, app: Recorder) -> None:
    """Slowloris: one header line at a time, never finishing; the front must hang up."""
    closed = False
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\n")
        received = b""
        give_up = time.monotonic() + PATIENCE_S
        while time.monotonic() < give_up:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            sock.settimeout(0.1)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
            received += chunk
            if not chunk:
                closed = True
                break
    assert closed
    assert received == b"" or received.startswith(b"HTTP/1.1 408 ")
    assert app.requests == []


def test_an_idle_kept_alive_connection_is_closed(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        assert read_until_closed(sock) == b""  # then nothing more is sent: the front hangs up


def test_requests_on_a_kept_alive_connection(server: HttpServer, app: Recorder) -> None:
    with requests.Session() as session:
        for body in (b"one", b"three"):
            assert session.post(f"{server.url}/x", data=body, timeout=PATIENCE_S).json() == {"got": len(body)}
    assert [r.body for r in app.requests] == [b"one", b"three"]


def test_connections_over_the_cap_get_429(server: HttpServer, app: Recorder) -> None:
    app.release.clear()  # hold every request in the app
    held = []
    try:
        for _ in range(LIMITS.max_connections):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S)
            sock.sendall(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
            held.append(sock)
        deadline = time.monotonic() + PATIENCE_S
        while len(app.requests) < LIMITS.max_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        status, headers, body = exchange(server, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status == 429
        assert error_code(body) == "rate_limited"
        assert headers["retry-after"] == "1"
    finally:
        app.release.set()
        for sock in held:
            sock.close()


def test_the_handshake_names_the_service(server: HttpServer) -> None:
    info = requests.get(f"{server.url}{HANDSHAKE_PATH}", timeout=PATIENCE_S).json()
    assert info["service"] == "flowers-local"
    assert info["front"] == "test"


def test_probe_owner_tells_ours_from_foreign_from_nothing(server: HttpServer) -> None:
    assert probe_owner("127.0.0.1", server.port) is not None
    assert "flowers-serve" in (probe_owner("127.0.0.1", server.port) or "")
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert probe_owner("127.0.0.1", silent.getsockname()[1]) == "by another program"
        port = silent.getsockname()[1]
    assert probe_owner("127.0.0.1", port) is None


def test_a_busy_port_names_the_option_that_changes_it(server: HttpServer) -> None:
    with pytest.raises(PortInUse) as caught:
        HttpServer(lambda r: Response(200), name="second", limits=LIMITS, port=server.port, option="--rie-port")
    message = str(caught.value)
    assert f"port {server.port} " in message
    assert "--rie-port" in message
    assert "another flowers-serve" in message


def test_a_busy_port_held_by_a_foreign_listener(app: Recorder) -> None:
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        with pytest.raises(PortInUse) as caught:
            HttpServer(app, name="gateway", limits=LIMITS, port=port, option="--port")
    assert caught.value.option == "--port"
    assert "by another program" in str(caught.value)


def test_an_app_that_raises_gets_a_500_and_the_front_keeps_serving(app: Recorder) -> None:
    def broken(request: Request) -> Response:
        raise ValueError("boom")

    with HttpServer(broken, name="broken", limits=LIMITS, port=0) as front:
        first = requests.get(f"{front.url}/x", timeout=PATIENCE_S)
        second = requests.get(f"{front.url}/x", timeout=PATIENCE_S)
    assert first.status_code == second.status_code == 500
    assert error_code(first.content) == "internal_error"


def test_a_connection_that_never_sends_is_closed(server: HttpServer, app: Recorder) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S) as sock:
        assert read_until_closed(sock) == b""
    assert app.requests == []
