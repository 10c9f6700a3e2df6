"""The direct-invoke front: the RIE's URL (``POST /2015-03-31/functions/function/invocations``
on :8080, as ``docker run -p 8080:8080`` of the image), answered by us and run on the pool.

Users never reach an RIE directly: here concurrent invokes queue for a free
execution environment instead of crashing the emulator, a payload over
Lambda's 6 MB limit gets 413 instead of being truncated, a payload that is
not JSON gets 400 (Lambda's Invoke API refuses it with
``InvalidRequestContentException`` before any function runs; the RIE would
hand it to the runtime, which fails with an ``errorType`` reply that is not
our error shape), and a runtime that dies costs one clear 502 instead of a dead port. Replies are the function's
own bytes with HTTP 200, as from the RIE and Lambda's Invoke API.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Final

from flowers_serving.local.messages import Request, Response, json_error
from flowers_serving.local.pool import INVOKE_PAYLOAD_LIMIT, FunctionPool, InvokeRefused
from flowers_serving.local.rie import INVOKE_PATH
from flowers_serving.local.server import HttpServer, Limits

__all__ = ["INVOKE_PATH", "InvokeFront", "default_limits"]

_INVOKE_RE: Final = re.compile(r"/2015-03-31/functions/[^/]+/invocations")
#: How long an invoke may wait for a free execution environment before a 429.
QUEUE_TIMEOUT_S: Final = 60.0


def default_limits() -> Limits:
    return Limits(
        max_body=INVOKE_PAYLOAD_LIMIT,
        body_limit_note=f"Lambda accepts invoke payloads up to {INVOKE_PAYLOAD_LIMIT} bytes (6 MB)",
    )


class InvokeFront:
    """Serves the invocations URL on ``host:port`` (bound at construction), invoking through ``pool``."""

    def __init__(
        self,
        pool: FunctionPool,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        limits: Limits | None = None,
        queue_timeout_s: float = QUEUE_TIMEOUT_S,
    ) -> None:
        self._pool = pool
        self._queue_timeout_s = queue_timeout_s
        self.server = HttpServer(
            self._serve, name="invoke", limits=limits or default_limits(), host=host, port=port, option="--rie-port"
        )

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"{self.server.url}{INVOKE_PATH}"

    def start(self) -> InvokeFront:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def _serve(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        response = self._invoke(request)
        response.headers["x-amzn-RequestId"] = request_id
        return response

    def _invoke(self, request: Request) -> Response:
        if not _INVOKE_RE.fullmatch(request.path):
            return json_error(404, "bad_request", f"{request.path} is not a route; invoke with POST {INVOKE_PATH}")
        if request.method != "POST":
            return json_error(405, "bad_request", f"invoke with POST, not {request.method}", {"Allow": "POST"})
        problem = _not_json(request.body)
        if problem:
            return json_error(400, "bad_request", f"the invoke payload is not valid JSON: {problem}")
        try:
            reply = self._pool.invoke(request.body, wait_s=self._queue_timeout_s)
        except InvokeRefused as refused:
            return refused.response()
        headers = {"Content-Type": reply.content_type, "X-Amz-Executed-Version": "$LATEST"}
        try:
            body = json.loads(reply.body)
        except ValueError:  # "Task timed out after 28.00 seconds" is plain text, from the RIE as from us
            pass
        else:
            headers["Content-Type"] = "application/json"  # the RIE says text/plain; Lambda's Invoke API does not
            if isinstance(body, dict) and "errorType" in body:
                headers["X-Amz-Function-Error"] = "Unhandled"  # what Lambda's Invoke API adds
        return Response(reply.status, reply.body, headers)


def _not_json(payload: bytes) -> str | None:
    """Why ``payload`` is not one JSON value (NaN and Infinity are not JSON), or None if it is."""

    def no_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        json.loads(payload, parse_constant=no_constant)
    except RecursionError:
        return "nested too deeply"
    except ValueError as exc:  # UnicodeDecodeError included
        return str(exc)[:200]
    return None
