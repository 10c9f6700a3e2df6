"""Every error the client raises. Catch :class:`FlowersError` to catch them all.

::

    FlowersError
    ├── InvalidInputError (also a ValueError)    the image can't be sent: not found, unreadable, too big
    ├── APIConnectionError                       nothing usable came back: DNS, refused, reset, TLS
    │   └── APITimeoutError                      a timeout, or the call's deadline passed
    └── APIError                                 the service answered, with an error
        ├── APIStatusError                       an HTTP error status (or a direct-invoke error object)
        │   ├── BadRequestError                  400  malformed request, forbidden URL
        │   ├── AuthenticationError              401 / 403  missing or wrong API key
        │   ├── NotFoundError                    404 / 405  wrong endpoint path
        │   ├── PayloadTooLargeError             413  payload or image over a size limit, decompression bomb
        │   ├── UnsupportedMediaTypeError        415  not an image type the service accepts
        │   ├── UnprocessableImageError          422  undecodable image
        │   │   └── NotAFlowerError              422  not_a_flower: sent with reject=True
        │   ├── RateLimitError                   429  throttled by API Gateway
        │   └── InternalServerError              5xx  the service or API Gateway itself failed
        │       ├── UpstreamError                502  upstream_error: the image URL's server failed
        │       └── UpstreamTimeoutError         504  upstream_timeout: the image URL timed out
        ├── FunctionError                        the Lambda runtime reported a failure (RIE quirks)
        └── ResponseValidationError              a 2xx reply that isn't a valid result

Every :class:`APIError` carries ``status_code`` (``None`` where HTTP said 200),
``code`` (the service's stable error code), ``request_id`` and ``response``
(the raw reply: status, headers, body). ``to_dict()`` gives the JSON shape the
CLI prints: ``{type, code, status, message, request_id}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowers_client._models import Prediction
    from flowers_client._response import RawResponse

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "FlowersError",
    "FunctionError",
    "InternalServerError",
    "InvalidInputError",
    "NotAFlowerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "ResponseValidationError",
    "UnprocessableImageError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "UpstreamTimeoutError",
]


class FlowersError(Exception):
    """Base class of everything this package raises."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """``{type, code, status, message, request_id}``: what JSON output carries for a failure."""
        return {
            "type": type(self).__name__,
            "code": getattr(self, "code", None),
            "status": getattr(self, "status_code", None),
            "message": self.message,
            "request_id": getattr(self, "request_id", None),
        }


class InvalidInputError(FlowersError, ValueError):
    """The image could not be read or is too large to send; nothing was sent."""


class APIConnectionError(FlowersError):
    """No usable response: the request may or may not have reached the service."""

    def __init__(self, message: str = "could not connect to the flowers service") -> None:
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    def __init__(self, message: str = "the request to the flowers service timed out") -> None:
        super().__init__(message)


class APIError(FlowersError):
    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        body: object = None,
        response: RawResponse | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.body = body
        self.response = response
        self.retry_after: float | None = None  # seconds, from a Retry-After header

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " | ".join(parts)


class APIStatusError(APIError):
    """The service answered with an error status (or a direct-invoke error object)."""


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class PayloadTooLargeError(APIStatusError):
    pass


class UnsupportedMediaTypeError(APIStatusError):
    pass


class UnprocessableImageError(APIStatusError):
    pass


class NotAFlowerError(UnprocessableImageError):
    """``reject=True`` and the photo shows none of the 102 species (422 ``not_a_flower``).

    ``flower_score`` is the service's score in [0, 1] (higher: more likely one
    of our species) and ``predictions`` its closest guesses, best first.
    """

    def __init__(
        self,
        message: str,
        *,
        flower_score: float | None = None,
        predictions: list[Prediction] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.flower_score = flower_score
        self.predictions: list[Prediction] = predictions or []

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "flower_score": self.flower_score,
            "predictions": [p.model_dump(mode="json") for p in self.predictions],
        }


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class UpstreamError(InternalServerError):
    """The server of the image URL failed. ``upstream_status`` is its HTTP status, when known.

    An upstream 4xx (the image is not there, or not for us) is permanent and is
    not retried; a 5xx or a connection failure upstream is.
    """

    def __init__(self, message: str, *, upstream_status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upstream_status = upstream_status

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "upstream_status": self.upstream_status}


class UpstreamTimeoutError(InternalServerError):
    pass


class FunctionError(APIError):
    """The Lambda runtime reported a failure instead of a handler reply.

    Through the RIE this arrives as HTTP 200 with ``{"errorType", "errorMessage"}``
    (no ``X-Amz-Function-Error`` header), as plain text ``Task timed out after ...``,
    or as an empty body when the runtime crashed.
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        request_id: str | None = None,
        body: object = None,
        response: RawResponse | None = None,
    ) -> None:
        super().__init__(
            message, status_code=None, code=error_type, request_id=request_id, body=body, response=response
        )
        self.error_type = error_type


class ResponseValidationError(APIError):
    """A success reply whose body is not a valid classification result."""
