"""A stand-in flowers service on 127.0.0.1 that speaks both wires, for CLI and end-to-end client tests.

It answers ``POST /predict`` as API Gateway would (statuses mean what they
say) and ``POST /2015-03-31/functions/function/invocations`` as the Lambda
RIE does (always 200, errors in the body; and, like the real emulator, a
second invoke while one is running breaks it: the connection is dropped and
the overlap counted).

What to do with an image is written in the image itself (bytes sent inline, or
the URL), as space-separated directives:

* ``sleep=S``       answer after S seconds (bounded; interrupted when the service stops)
* ``hold``          answer only once the test calls ``release()`` (bounded at 60 s)
* ``code=X``        answer the service's error X (status from the contract's table)
* ``upstream=N``    with code=upstream_error: the image URL answered N (in the message)
* ``notflower``     a result with is_flower false (422 not_a_flower when the request says reject)
* ``apigw502``      API Gateway's own ``{"message": "Internal server error"}`` 502
* ``flaky=N``       503 for the first N requests of this image, then an answer

Everything else is a flower: a result whose top species depends on the bytes.
A batch (``{"images": [...]}``) answers each item by the same rules, as the
service does: 200 ``{"results": [...]}``, each entry with its ``status``.
Only loopback, and every wait ends by itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RIE_PATH = "/2015-03-31/functions/function/invocations"
STATUS_OF_CODE = {
    "bad_request": 400,
    "forbidden_url": 400,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "undecodable_image": 422,
    "image_too_large": 413,
    "not_a_flower": 422,
    "upstream_error": 502,
    "upstream_timeout": 504,
    "internal_error": 500,
}
LABELS = ["pink primrose", "sunflower", "rose", "lotus", "daisy", "tulip", "foxglove", "water lily"]


class QuietServer(ThreadingHTTPServer):
    """A test server that does not print a traceback when a client hangs up: the tests' clients do, on purpose."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def result_body(key: str, top_k: int, *, is_flower: bool = True) -> dict[str, Any]:
    first = int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(LABELS)
    scores = [0.9, 0.05, 0.02, 0.01, 0.005] + [0.004 / n for n in range(1, 98)]
    predictions = [
        {
            "label": LABELS[(first + i) % len(LABELS)] if i < len(LABELS) else f"species {i + 1}",
            "class_id": (first + i) % len(LABELS) + 1 if i < len(LABELS) else i + 1,
            "score": s,
        }
        for i, s in enumerate(scores[:top_k])
    ]
    return {
        "predictions": predictions,
        "model": "fake-flowers",
        "model_version": "0.0.1",
        "timings_ms": {"total": 1.0},
        "is_flower": is_flower,
        "flower_score": 0.97 if is_flower else 0.04,
    }


class FakeService:
    """``with FakeService() as service: service.url, service.rie_url``"""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # path, headers, json body: everything that came in
        self.rie_overlaps = 0
        self.rie_max_in_flight = 0
        self._rie_in_flight = 0
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._stopping = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                service._serve(self)

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/predict"
        self.rie_url = f"http://127.0.0.1:{self.port}{RIE_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._gate.set()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """Let every ``hold`` image be answered."""
        self._gate.set()

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length)
        body = json.loads(raw) if raw else {}
        rie = http.path.split("?", 1)[0] == RIE_PATH
        with self._lock:
            self.requests.append({"path": http.path, "headers": dict(http.headers.items()), "body": body})
            if rie:
                self._rie_in_flight += 1
                self.rie_max_in_flight = max(self.rie_max_in_flight, self._rie_in_flight)
                overlap = self._rie_in_flight > 1
                self.rie_overlaps += overlap
        try:
            if rie and overlap:
                http.close_connection = True  # the real RIE panics here; the client gets no answer
                return
            status, reply = self._answer_batch(body) if "images" in body else self._answer(body)
            if rie:
                status = 200  # the RIE says 200 to everything
                with self._lock:  # free again once the answer is ready, before it is sent
                    self._rie_in_flight -= 1
                    rie = False
            data = json.dumps(reply).encode()
            http.send_response(status)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(data)))
            http.send_header("x-amzn-RequestId", f"fake-{len(self.requests)}")
            http.end_headers()
            http.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if rie:
                with self._lock:
                    self._rie_in_flight -= 1

    def _answer_batch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        options = {k: body[k] for k in ("top_k", "reject") if k in body}
        entries = []
        for item in body["images"]:
            status, reply = self._answer({**item, **options})
            entries.append({**reply, "status": status})
        return 200, {"results": entries, "request_id": f"batch-{len(self.requests)}"}

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = str(body["url"]) if "url" in body else base64.b64decode(body.get("image", "")).decode("latin-1")
        directives = dict(re.findall(r"(\w+)=([\w.]+)", text))
        with self._lock:
            self._seen[text] += 1
            seen = self._seen[text]
        if "sleep" in directives:
            self._stopping.wait(min(float(directives["sleep"]), 60.0))
        if _flag("hold", text):
            self._gate.wait(60.0)
        request_id = f"req-{seen}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
        if _flag("apigw502", text):
            return 502, {"message": "Internal server error"}
        if "flaky" in directives and seen <= int(directives["flaky"]):
            return 503, {"error": {"code": "internal_error", "message": "try again"}, "request_id": request_id}
        code = directives.get("code")
        if code:
            message = f"fake {code}"
            error: dict[str, Any] = {"code": code, "message": message}
            if code == "upstream_error" and "upstream" in directives:
                error["message"] = f"the image URL answered HTTP {directives['upstream']}"
            return STATUS_OF_CODE.get(code, 500), {"error": error, "request_id": request_id}
        top_k = int(body.get("top_k", 10))
        if _flag("notflower", text):
            result = result_body(text, top_k, is_flower=False)
            if body.get("reject") is True:
                error = {
                    "code": "not_a_flower",
                    "message": "the photo shows none of the 102 species",
                    "flower_score": result["flower_score"],
                    "predictions": result["predictions"],
                }
                return 422, {"error": error, "request_id": request_id}
            return 200, {**result, "request_id": request_id}
        return 200, {**result_body(text, top_k), "request_id": request_id}


def _flag(name: str, text: str) -> bool:
    return re.search(rf"\b{name}\b", text) is not None
