"""The wire format of each way to reach the function (no I/O here).

* :class:`ApiGatewayWire`: ``POST .../predict`` on a REST API (deployed, or
  the local front). HTTP status codes mean what they say.
* :class:`RieWire`: ``POST .../2015-03-31/functions/function/invocations``
  on the Lambda Runtime Interface Emulator (or the Lambda Invoke API shape).
  Every reply is HTTP 200; errors are in the body. The RIE serves one invoke
  at a time, so this wire is ``serialised`` (see ``_endpoint_lock``).

Both turn a :class:`RawResponse` into a result dict or one of our exceptions.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any, ClassVar, Final

from pydantic import ValidationError

from flowers_client._config import API_GATEWAY_MAX_PAYLOAD, LAMBDA_MAX_PAYLOAD
from flowers_client._exceptions import (
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    FunctionError,
    InternalServerError,
    NotAFlowerError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableImageError,
    UnsupportedMediaTypeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from flowers_client._models import Prediction
from flowers_client._response import RawResponse

__all__ = [
    "CODE_STATUS",
    "RIE_PATH",
    "ApiGatewayWire",
    "BatchEntry",
    "RieWire",
    "Wire",
    "encode_payload",
    "parse_retry_after",
    "select_wire",
    "status_error",
]

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
}
#: Errors that name the image URL's server rather than ours: only the
#: service's own codes say so. A bare 502/504 (API Gateway's own
#: {"message": "Internal server error"}) is our side failing.
_CODE_CLASSES: Final[dict[str, type[APIStatusError]]] = {
    "upstream_error": UpstreamError,
    "upstream_timeout": UpstreamTimeoutError,
    "not_a_flower": NotAFlowerError,
}
#: Direct invokes carry no HTTP status: the service's stable codes say it.
CODE_STATUS: Final = {
    "bad_request": 400,
    "forbidden_url": 400,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "undecodable_image": 422,
    "image_too_large": 413,
    "not_a_flower": 422,
    "upstream_error": 502,
    "upstream_timeout": 504,
    "rate_limited": 429,
    "integration_timeout": 504,
    "internal_error": 500,
}
#: Services that predate the ``upstream_status`` field say it only in the
#: message ("the image URL answered HTTP 404"); read it from there until then.
_UPSTREAM_STATUS_IN_MESSAGE: Final = re.compile(r"\bHTTP (\d{3})\b")


def status_error(
    status: int,
    message: str,
    *,
    code: str | None,
    request_id: str | None,
    body: object,
    response: RawResponse | None = None,
) -> APIStatusError:
    """The exception for an error reply: by the service's code where it names one, else by status."""
    fields: dict[str, Any] = {
        "status_code": status,
        "code": code,
        "request_id": request_id,
        "body": body,
        "response": response,
    }
    cls = _CODE_CLASSES.get(code or "")
    details = _error_object(body)
    if cls is UpstreamError:
        return UpstreamError(message, upstream_status=_upstream_status(details, message), **fields)
    if cls is NotAFlowerError:
        score, predictions = _rejection(body, details)
        return NotAFlowerError(message, flower_score=score, predictions=predictions, **fields)
    if cls is None:
        cls = _STATUS_CLASSES.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    return cls(message, **fields)


def _error_object(body: object) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _upstream_status(details: dict[str, Any], message: str) -> int | None:
    value = details.get("upstream_status")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _UPSTREAM_STATUS_IN_MESSAGE.search(message)
    return int(match.group(1)) if match else None


def _rejection(body: object, details: dict[str, Any]) -> tuple[float | None, list[Prediction]]:
    """The score and closest guesses of a not_a_flower error, in the error object or beside it."""
    top = body if isinstance(body, dict) else {}
    score = details.get("flower_score", top.get("flower_score"))
    raw_predictions = details.get("predictions", top.get("predictions"))
    predictions: list[Prediction] = []
    if isinstance(raw_predictions, list):
        for item in raw_predictions:
            try:
                predictions.append(Prediction.model_validate(item))
            except ValidationError:
                continue
    valid_score = float(score) if isinstance(score, (int, float)) and 0.0 <= score <= 1.0 else None
    return valid_score, predictions


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


def _json(raw: RawResponse) -> object:
    try:
        return raw.json()
    except ValueError:
        return None


def _error_fields(body: object) -> tuple[str | None, str]:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return (str(error.get("code")) if error.get("code") else None), str(error.get("message") or "")
        if "message" in body:  # API Gateway's own {"message": "..."} replies
            return None, str(body["message"])
    return None, ""


def _result(body: object, request_id: str | None, raw: RawResponse, *, batch: bool = False) -> dict[str, Any]:
    if batch:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise ResponseValidationError(
                "the service's reply is not a batch reply (does it accept batches yet?)",
                request_id=request_id,
                body=body,
                response=raw,
            )
        if request_id and not body.get("request_id"):
            body["request_id"] = request_id
        return body
    if not isinstance(body, dict) or "predictions" not in body:
        raise ResponseValidationError(
            "the service's reply is not a classification result", request_id=request_id, body=body, response=raw
        )
    if request_id and not body.get("request_id"):
        body["request_id"] = request_id
    return body


class Wire:
    """How one kind of endpoint is spoken to: limits, headers, and reading its replies."""

    name: ClassVar[str] = "base"
    max_payload: ClassVar[int] = API_GATEWAY_MAX_PAYLOAD
    #: One request at a time per endpoint (the RIE).
    serialised: ClassVar[bool] = False

    def parse(self, raw: RawResponse, *, batch: bool = False) -> dict[str, Any]:
        """A result, or with ``batch`` a batch reply (``{"results": [...]}``); an error reply raises."""
        raise NotImplementedError


class ApiGatewayWire(Wire):
    name = "api-gateway"
    max_payload = API_GATEWAY_MAX_PAYLOAD

    def parse(self, raw: RawResponse, *, batch: bool = False) -> dict[str, Any]:
        request_id = raw.headers.get("x-amzn-RequestId") or raw.headers.get("x-amz-apigw-id")
        body = _json(raw)
        if isinstance(body, dict) and body.get("request_id"):
            request_id = str(body["request_id"])
        if not 200 <= raw.status_code < 300:
            code, message = _error_fields(body)
            message = message or raw.text[:200].strip() or f"HTTP {raw.status_code}"
            error = status_error(raw.status_code, message, code=code, request_id=request_id, body=body, response=raw)
            error.retry_after = parse_retry_after(raw.headers.get("Retry-After"))
            raise error
        return _result(body, request_id, raw, batch=batch)


class RieWire(Wire):
    name = "rie"
    max_payload = LAMBDA_MAX_PAYLOAD
    serialised = True

    def parse(self, raw: RawResponse, *, batch: bool = False) -> dict[str, Any]:
        request_id = raw.headers.get("x-amzn-RequestId") or raw.headers.get("Lambda-Runtime-Aws-Request-Id")
        if raw.status_code >= 400:
            # The RIE itself refused (or a real Invoke API error).
            body = _json(raw)
            code, message = _error_fields(body)
            message = message or raw.text[:200].strip() or f"HTTP {raw.status_code}"
            error = status_error(raw.status_code, message, code=code, request_id=request_id, body=body, response=raw)
            error.retry_after = parse_retry_after(raw.headers.get("Retry-After"))
            raise error
        text = raw.text
        if not text.strip():
            raise FunctionError(
                "the function returned an empty reply (the runtime crashed?)", request_id=request_id, response=raw
            )
        body = _json(raw)
        if body is None:
            if text.startswith("Task timed out"):
                raise FunctionError(
                    text.strip(), error_type="Task.TimedOut", request_id=request_id, body=text, response=raw
                )
            raise FunctionError(
                f"the function returned a non-JSON reply: {text[:200]}", request_id=request_id, body=text, response=raw
            )
        if isinstance(body, dict) and body.get("request_id"):
            request_id = str(body["request_id"])
        if (isinstance(body, dict) and "errorType" in body) or raw.headers.get("X-Amz-Function-Error"):
            error_type = str(body.get("errorType", "Unhandled")) if isinstance(body, dict) else "Unhandled"
            message = str(body.get("errorMessage", "")) if isinstance(body, dict) else str(body)
            raise FunctionError(
                f"{error_type}: {message}", error_type=error_type, request_id=request_id, body=body, response=raw
            )
        code, message = _error_fields(body)
        if isinstance(body, dict) and "error" in body:
            status = CODE_STATUS.get(code or "", 500)
            raise status_error(status, message or "error", code=code, request_id=request_id, body=body, response=raw)
        return _result(body, request_id, raw, batch=batch)


class BatchEntry:
    """Reading one entry of a batch reply: a result dict, or the error a single request would have raised."""

    @staticmethod
    def read(entry: object, request_id: str | None, raw: RawResponse) -> dict[str, Any] | APIError:
        if not isinstance(entry, dict):
            return ResponseValidationError(
                "an entry of the batch reply is not an object", request_id=request_id, body=entry, response=raw
            )
        entry_id = str(entry["request_id"]) if entry.get("request_id") else request_id
        if "error" in entry:
            code, message = _error_fields(entry)
            status = entry.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or status < 400:
                status = CODE_STATUS.get(code or "", 500)
            return status_error(status, message or "error", code=code, request_id=entry_id, body=entry, response=raw)
        if "predictions" not in entry:
            return ResponseValidationError(
                "an entry of the batch reply is neither a result nor an error",
                request_id=entry_id,
                body=entry,
                response=raw,
            )
        return {**entry, "request_id": entry_id}


def select_wire(endpoint: str, transport: str | None = None) -> Wire:
    """``transport`` ('api-gateway' / 'rie'), else guessed from the endpoint's path."""
    choices: dict[str, type[Wire]] = {"api-gateway": ApiGatewayWire, "rie": RieWire}
    if transport is not None:
        if transport not in choices:
            raise ValueError(f"transport must be one of {', '.join(choices)}")
        return choices[transport]()
    path = endpoint.split("?", 1)[0].rstrip("/")
    return RieWire() if path.endswith(RIE_PATH) else ApiGatewayWire()


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
