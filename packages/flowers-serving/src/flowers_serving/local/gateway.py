"""A thin local stand-in for API Gateway (REST API, Lambda proxy integration).

``POST /predict`` and ``GET /health`` become v1 proxy events shaped like AWS
SAM's own ``AwsProxy.json`` sample and are invoked through the stack's pool
(one invoke per execution environment at a time); the function's
``{statusCode, headers, body}`` becomes the HTTP reply. What API Gateway
itself answers (body over 10 MB, an event over Lambda's 6 MB, unknown route,
a Lambda that crashed or timed out, a client too slow to send its request)
gets the same JSON error shape the handler uses, as the SAM template's gateway
responses configure it in AWS.

Routes live in one table, :data:`ROUTES`: ``(method, path) -> route``, where a
route takes the gateway and the request and returns the response;
:func:`forward_to_function` is the Lambda proxy integration.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from flowers_serving import web
from flowers_serving.local.messages import Request, Response, json_error
from flowers_serving.local.pool import INVOKE_PAYLOAD_LIMIT, Busy, FunctionPool, InvokeRefused
from flowers_serving.local.server import HttpServer, Limits

__all__ = ["MAX_REQUEST_BYTES", "ROUTES", "Gateway", "Route", "build_proxy_event", "forward_to_function"]

#: API Gateway's hard limit on a request payload.
MAX_REQUEST_BYTES: Final = 10 * 1024 * 1024
#: API Gateway's integration timeout (the function's own timeout is below it).
INTEGRATION_TIMEOUT_S: Final = 29.0
#: Content types sent to the function base64-encoded, as the REST API's
#: ``BinaryMediaTypes`` in deploy/template.yaml declares.
BINARY_MEDIA_PREFIXES: Final = ("image/", "application/octet-stream")
STAGE: Final = "local"


def build_proxy_event(
    method: str,
    raw_path: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]],
    body: bytes,
    *,
    request_id: str,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The REST API (v1) proxy event API Gateway would send for this request.

    ``headers`` as a mapping or as the (name, value) pairs received; a repeated
    header keeps its last value in ``headers`` and all of them in ``multiValueHeaders``.
    """
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    multi_headers: dict[str, list[str]] = {}
    for name, value in pairs:
        multi_headers.setdefault(name, []).append(value)
    single_headers = {name: values[-1] for name, values in multi_headers.items()}
    split = urlsplit(raw_path)
    path = split.path
    multi_query = parse_qs(split.query, keep_blank_values=True)
    content_type = next((v for k, v in reversed(pairs) if k.lower() == "content-type"), "")
    binary = content_type.lower().startswith(BINARY_MEDIA_PREFIXES)
    now = time.time()
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
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
                "userAgent": next((v for k, v in reversed(pairs) if k.lower() == "user-agent"), ""),
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


Route = Callable[["Gateway", Request], Response]


def forward_to_function(gateway: Gateway, request: Request) -> Response:
    """The Lambda proxy integration: the request as a v1 event, the function's reply as the response."""
    return gateway.invoke(request)


#: What the gateway answers, and how. Add a route here (e.g. a static page) and it is served.
ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/predict"): forward_to_function,
    ("GET", "/health"): forward_to_function,
    # The web page and its files come from the function too (flowers_serving.web), as deployed.
    **{("GET", path): forward_to_function for path in web.paths()},
}


def default_limits() -> Limits:
    return Limits(
        max_body=MAX_REQUEST_BYTES,
        body_limit_note=f"API Gateway accepts request bodies up to {MAX_REQUEST_BYTES} bytes (10 MB)",
    )


class Gateway:
    """The API Gateway front on ``host:port`` (bound at construction), invoking through ``pool``."""

    def __init__(
        self,
        pool: FunctionPool,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        limits: Limits | None = None,
        routes: Mapping[tuple[str, str], Route] | None = None,
    ) -> None:
        self._pool = pool
        self.routes = dict(ROUTES if routes is None else routes)
        self.server = HttpServer(
            self._serve, name="gateway", limits=limits or default_limits(), host=host, port=port, option="--port"
        )

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Gateway:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        route = self.routes.get((request.method, path))
        if route is None:
            methods = sorted(m for m, p in self.routes if p == path)
            known = ", ".join(f"{m} {p}" for m, p in sorted(self.routes, key=lambda r: (r[1], r[0])))
            if methods:
                response = json_error(
                    405,
                    "bad_request",
                    f"{request.method} {path} is not a route; use {known}",
                    {"Allow": ", ".join(methods)},
                )
            else:
                response = json_error(404, "bad_request", f"{request.method} {path} is not a route; use {known}")
        else:
            response = route(self, request)
        response.headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
        response.headers["x-amz-apigw-id"] = secrets.token_urlsafe(12)[:16]
        return response

    def invoke(self, request: Request) -> Response:
        """Run the function for this request within API Gateway's 29 s integration timeout."""
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        event = build_proxy_event(
            request.method,
            request.target,
            request.headers,
            request.body,
            request_id=request_id,
            source_ip=request.client[0],
        )
        payload = json.dumps(event).encode()
        try:
            reply = self._pool.invoke(payload, wait_s=INTEGRATION_TIMEOUT_S, deadline=started + INTEGRATION_TIMEOUT_S)
        except Busy:
            response = json_error(504, "integration_timeout", "no execution environment became free in time")
        except InvokeRefused as refused:
            if refused.status == 413:
                refused.message = (
                    f"this request becomes a {len(payload):,}-byte Lambda event (binary bodies travel base64-encoded, "
                    f"a third larger), over Lambda's invoke payload limit of {INVOKE_PAYLOAD_LIMIT} bytes (6 MB)"
                )
            response = refused.response()
        else:
            response = _proxy_reply(reply.body)
        response.headers["x-amzn-RequestId"] = request_id
        return response


def _proxy_reply(raw: bytes) -> Response:
    """Map what the function returned to what API Gateway would answer."""
    try:
        reply = json.loads(raw) if raw else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        text = raw.decode("utf-8", errors="replace")
        if "Task timed out" in text:
            return json_error(504, "integration_timeout", "the function timed out")
        return json_error(502, "internal_error", "the function returned no valid response")
    if "errorType" in reply or "statusCode" not in reply:
        # An exception escaped the handler (or the reply is not a proxy response):
        # API Gateway answers 502 "Internal server error".
        return json_error(502, "internal_error", "Internal server error")
    try:
        status = int(reply["statusCode"])
        headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items()}
        body = reply.get("body") or ""
        data = base64.b64decode(body) if reply.get("isBase64Encoded") else str(body).encode()
    except (TypeError, ValueError, AttributeError):
        return json_error(502, "internal_error", "Malformed Lambda proxy response")
    return Response(status, data, headers)
