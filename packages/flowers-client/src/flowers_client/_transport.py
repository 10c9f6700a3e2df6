"""The wire format of each way to reach the function, and the HTTP session.

* :class:`ApiGatewayTransport`: ``POST .../predict`` on a REST API (deployed, or
  the local front). HTTP status codes mean what they say.
* :class:`RieTransport`: ``POST .../2015-03-31/functions/function/invocations``
  on the Lambda Runtime Interface Emulator (or the Lambda Invoke API shape).
  Every reply is HTTP 200; errors are in the body.

Both turn a reply into a result dict or one of our exceptions; nothing from
``requests`` escapes this module.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from typing import Any, Final

import requests

from flowers_client._config import API_GATEWAY_MAX_PAYLOAD, LAMBDA_MAX_PAYLOAD
from flowers_client._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    FunctionError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableImageError,
    UnsupportedMediaTypeError,
    UpstreamError,
    UpstreamTimeoutError,
)

__all__ = [
    "ApiGatewayTransport",
    "RieTransport",
    "Transport",
    "encode_payload",
    "parse_retry_after",
    "select_transport",
    "status_error",
]

logger = logging.getLogger("flowers_client")

RIE_PATH: Final = "/2015-03-31/functions/function/invocations"

_STATUS_CLASSES: Final[dict[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    405: NotFoundError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableImageError,
    429: RateLimitError,
    502: UpstreamError,
    504: UpstreamTimeoutError,
}
#: Direct invokes carry no HTTP status: the service's stable codes say it.
_CODE_STATUS: Final = {
    "bad_request": 400,
    "forbidden_url": 400,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "undecodable_image": 422,
    "image_too_large": 422,
    "upstream_error": 502,
    "upstream_timeout": 504,
    "rate_limited": 429,
    "integration_timeout": 504,
    "internal_error": 500,
}


def status_error(
    status: int, message: str, *, code: str | None, request_id: str | None, body: object
) -> APIStatusError:
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    if status == 502 and code not in (None, "upstream_error"):
        cls = InternalServerError  # a gateway-level 502 (crashed function), not the image URL
    return cls(message, status_code=status, code=code, request_id=request_id, body=body)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Transport:
    """Sends one JSON payload and returns the result dict or raises our errors."""

    name = "base"
    max_payload = API_GATEWAY_MAX_PAYLOAD

    def __init__(self, endpoint: str, session: requests.Session, *, api_key: str | None = None) -> None:
        self.endpoint = endpoint
        self.session = session
        self.api_key = api_key

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def send(self, payload: bytes, timeout: tuple[float, float]) -> dict[str, Any]:
        headers = self.headers()
        if logger.isEnabledFor(logging.DEBUG):
            shown = {k: ("***" if k.lower() == "x-api-key" else v) for k, v in headers.items()}
            logger.debug("POST %s via %s (%d bytes, headers %s)", self.endpoint, self.name, len(payload), shown)
        started = time.perf_counter()
        try:
            response = self.session.post(self.endpoint, data=payload, headers=headers, timeout=timeout)
        except requests.Timeout as exc:
            raise APITimeoutError(f"no answer from {self.endpoint} in time ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            raise APIConnectionError(f"could not reach {self.endpoint}: {type(exc).__name__}: {exc}") from exc
        logger.debug(
            "HTTP %d from %s in %.0f ms", response.status_code, self.endpoint, (time.perf_counter() - started) * 1000
        )
        return self.parse(response)

    def parse(self, response: requests.Response) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _json(response: requests.Response) -> object:
        try:
            return response.json()
        except ValueError:
            return None

    @staticmethod
    def _result(body: object, request_id: str | None) -> dict[str, Any]:
        if not isinstance(body, dict) or "predictions" not in body:
            raise ResponseValidationError(
                "the service's reply is not a classification result", request_id=request_id, body=body
            )
        if request_id and not body.get("request_id"):
            body["request_id"] = request_id
        return body


def _error_fields(body: object) -> tuple[str | None, str]:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return (str(error.get("code")) if error.get("code") else None), str(error.get("message") or "")
        if "message" in body:  # API Gateway's own {"message": "..."} replies
            return None, str(body["message"])
    return None, ""


class ApiGatewayTransport(Transport):
    name = "api-gateway"
    max_payload = API_GATEWAY_MAX_PAYLOAD

    def parse(self, response: requests.Response) -> dict[str, Any]:
        request_id = response.headers.get("x-amzn-RequestId") or response.headers.get("x-amz-apigw-id")
        body = self._json(response)
        if isinstance(body, dict) and body.get("request_id"):
            request_id = str(body["request_id"])
        if response.status_code >= 400:
            code, message = _error_fields(body)
            if not message:
                message = response.text[:200] or response.reason or "error"
            error = status_error(response.status_code, message, code=code, request_id=request_id, body=body)
            error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise error
        return self._result(body, request_id)


class RieTransport(Transport):
    name = "rie"
    max_payload = LAMBDA_MAX_PAYLOAD

    def parse(self, response: requests.Response) -> dict[str, Any]:
        request_id = response.headers.get("x-amzn-RequestId") or response.headers.get("Lambda-Runtime-Aws-Request-Id")
        if response.status_code >= 400:
            # The RIE itself refused (or a real Invoke API error).
            body = self._json(response)
            code, message = _error_fields(body)
            error = status_error(
                response.status_code,
                message or response.text[:200] or "error",
                code=code,
                request_id=request_id,
                body=body,
            )
            error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise error
        text = response.text
        if not text.strip():
            raise FunctionError("the function returned an empty reply (the runtime crashed?)", request_id=request_id)
        body = self._json(response)
        if body is None:
            if text.startswith("Task timed out"):
                raise FunctionError(text.strip(), error_type="Task.TimedOut", request_id=request_id, body=text)
            raise FunctionError(
                f"the function returned a non-JSON reply: {text[:200]}", request_id=request_id, body=text
            )
        if isinstance(body, dict) and body.get("request_id"):
            request_id = str(body["request_id"])
        if (isinstance(body, dict) and "errorType" in body) or response.headers.get("X-Amz-Function-Error"):
            error_type = str(body.get("errorType", "Unhandled")) if isinstance(body, dict) else "Unhandled"
            message = str(body.get("errorMessage", "")) if isinstance(body, dict) else str(body)
            raise FunctionError(f"{error_type}: {message}", error_type=error_type, request_id=request_id, body=body)
        code, message = _error_fields(body)
        if isinstance(body, dict) and "error" in body:
            status = _CODE_STATUS.get(code or "", 500)
            raise status_error(status, message or "error", code=code, request_id=request_id, body=body)
        return self._result(body, request_id)


def select_transport(endpoint: str, transport: str | None = None) -> type[Transport]:
    """``transport`` ('api-gateway' / 'rie'), else guessed from the endpoint's path."""
    if transport is not None:
        choices = {"api-gateway": ApiGatewayTransport, "rie": RieTransport}
        if transport not in choices:
            raise ValueError(f"transport must be one of {', '.join(choices)}")
        return choices[transport]
    return RieTransport if endpoint.rstrip("/").endswith(RIE_PATH) else ApiGatewayTransport


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
