"""A thin local stand-in for API Gateway (REST API, Lambda proxy integration).

``POST /predict`` and ``GET /health`` become v1 proxy events shaped like AWS
SAM's own ``AwsProxy.json`` sample and are sent to a free RIE worker; the
worker's ``{statusCode, headers, body}`` becomes the HTTP reply. What API
Gateway itself answers (payload too large, unknown route, a Lambda that
crashed or timed out) gets the same JSON error shape the handler uses, as the
SAM template's gateway responses configure it in AWS.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import requests

from flowers_serving import web

__all__ = ["MAX_REQUEST_BYTES", "Gateway", "build_proxy_event"]

logger = logging.getLogger("flowers_serving.local.gateway")

#: API Gateway's hard limit on a request payload.
MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024
#: API Gateway's integration timeout (the function's own timeout is below it).
INTEGRATION_TIMEOUT_S: Final = 29.0
#: Content types sent to the function base64-encoded, as the REST API's
#: ``BinaryMediaTypes`` in deploy/template.yaml declares.
BINARY_MEDIA_PREFIXES: Final = ("image/", "application/octet-stream")
STAGE: Final = "local"
ROUTES: Final = {("POST", "/predict"), ("GET", "/health"), *(("GET", path) for path in web.paths())}


def build_proxy_event(
    method: str, raw_path: str, headers: dict[str, str], body: bytes, *, request_id: str, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """The REST API (v1) proxy event API Gateway would send for this request."""
    split = urlsplit(raw_path)
    path = split.path
    multi_query = parse_qs(split.query, keep_blank_values=True)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    binary = content_type.lower().startswith(BINARY_MEDIA_PREFIXES)
    now = time.time()
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "local",
            "stage": STAGE,
            "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "accessKey": None,
                "sourceIp": source_ip,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": headers.get("User-Agent", ""),
                "user": None,
            },
            "path": f"/{STAGE}{path}",
            "resourcePath": path,
            "httpMethod": method,
            "apiId": "local",
            "protocol": "HTTP/1.1",
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", errors="replace"))
        if body
        else None,
        "isBase64Encoded": bool(body) and binary,
    }


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class Gateway:
    """An HTTP server on ``host:port`` in front of one or more RIE workers."""

    def __init__(self, worker_urls: list[str], *, host: str = "127.0.0.1", port: int = 3000) -> None:
        if not worker_urls:
            raise ValueError("the gateway needs at least one RIE worker")
        self._free: queue.Queue[str] = queue.Queue()
        for url in worker_urls:
            self._free.put(url)
        self._local = threading.local()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "flowers-local-gateway"
            # Headers and body leave in two writes; with Nagle on, the body waits for the
            # client's delayed ACK of the headers (40 ms a request on a kept-alive connection).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                gateway._serve(self)

            def do_GET(self) -> None:
                gateway._serve(self)

            def do_PUT(self) -> None:
                gateway._serve(self)

            def do_DELETE(self) -> None:
                gateway._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug(format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> Gateway:
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        request_id = str(uuid.uuid4())
        apigw_id = secrets.token_urlsafe(12)[:16]
        try:
            status, headers, body = self._dispatch(http, request_id)
        except Exception:  # never let one request take the server down
            logger.exception("gateway error")
            status, headers, body = 500, {}, _error("internal_error", "Internal server error")
        http.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        headers["x-amzn-RequestId"] = request_id
        headers["x-amz-apigw-id"] = apigw_id
        headers["Content-Length"] = str(len(body))
        for key, value in headers.items():
            if key.lower() not in ("connection", "transfer-encoding"):
                http.send_header(key, value)
        http.end_headers()
        http.wfile.write(body)

    def _dispatch(self, http: BaseHTTPRequestHandler, request_id: str) -> tuple[int, dict[str, str], bytes]:
        method = http.command
        path = urlsplit(http.path).path.rstrip("/") or "/"
        length_header = http.headers.get("Content-Length")
        if http.headers.get("Transfer-Encoding", "").lower() == "chunked":
            http.close_connection = True
            return 411, {}, _error("bad_request", "send a Content-Length; chunked bodies are not accepted")
        length = int(length_header) if length_header and length_header.isdigit() else 0
        if length > MAX_REQUEST_BYTES:
            http.close_connection = True  # don't read (and buffer) what we refuse
            return 413, {}, _error("payload_too_large", f"the request is larger than {MAX_REQUEST_BYTES:,} bytes")
        body = http.rfile.read(length) if length else b""
        if (method, path) not in ROUTES:
            known = any(p == path for _, p in ROUTES)
            status = 405 if known else 404
            return (
                status,
                {},
                _error("bad_request", f"{method} {path} is not a route; use POST /predict or GET /health"),
            )
        headers = dict(http.headers.items())
        event = build_proxy_event(
            method, http.path, headers, body, request_id=request_id, source_ip=http.client_address[0]
        )
        return self._invoke(event)

    def _invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        worker = self._free.get()  # waits for a free execution environment, as Lambda queues
        try:
            response = self._session().post(worker, json=event, timeout=(2.0, INTEGRATION_TIMEOUT_S))
        except requests.Timeout:
            return 504, {}, _error("integration_timeout", "the function did not answer in time")
        except requests.RequestException:
            return 502, {}, _error("internal_error", "the function could not be reached")
        finally:
            self._free.put(worker)
        return _proxy_reply(response.content)


def _proxy_reply(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Map what the RIE returned to what API Gateway would answer."""
    try:
        reply = json.loads(raw) if raw else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        text = raw.decode("utf-8", errors="replace")
        if "Task timed out" in text:
            return 504, {}, _error("integration_timeout", "the function timed out")
        return 502, {}, _error("internal_error", "the function returned no valid response")
    if "errorType" in reply or "statusCode" not in reply:
        # An exception escaped the handler (or the reply is not a proxy response):
        # API Gateway answers 502 "Internal server error".
        return 502, {}, _error("internal_error", "Internal server error")
    status = int(reply["statusCode"])
    headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items()}
    body = reply.get("body") or ""
    data = base64.b64decode(body) if reply.get("isBase64Encoded") else str(body).encode()
    return status, headers, data
