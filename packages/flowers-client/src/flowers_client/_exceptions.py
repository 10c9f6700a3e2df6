"""Every error the client raises. Catch :class:`FlowersError` to catch them all.

::

    FlowersError
    ├── InvalidInputError (also a ValueError)    the image can't be sent: not found, unreadable, too big
    ├── APIConnectionError                       nothing usable came back: DNS, refused, reset, TLS
    │   └── APITimeoutError                      connect or read timeout
    └── APIError                                 the service answered, with an error
        ├── APIStatusError                       an HTTP error status (or a direct-invoke error object)
        │   ├── BadRequestError                  400  malformed request, forbidden URL
        │   ├── AuthenticationError              401 / 403  missing or wrong API key
        │   ├── NotFoundError                    404  wrong endpoint path
        │   ├── PayloadTooLargeError             413
        │   ├── UnsupportedMediaTypeError        415  not an image type the service accepts
        │   ├── UnprocessableImageError          422  undecodable image, decompression bomb
        │   ├── RateLimitError                   429  throttled by API Gateway
        │   └── InternalServerError              5xx
        │       ├── UpstreamError                502  the image URL's server failed
        │       └── UpstreamTimeoutError         504  the image URL (or the function) timed out
        ├── FunctionError                        the Lambda runtime reported a failure (RIE quirks)
        └── ResponseValidationError              a 2xx reply that isn't a valid result

Every :class:`APIError` carries ``status_code`` (``None`` where HTTP said 200),
``code`` (the service's stable error code) and ``request_id``.
"""

from __future__ import annotations

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


class InvalidInputError(FlowersError, ValueError):
    """The image could not be read or is too large to send; nothing was sent."""


class APIConnectionError(FlowersError):
    """No usable response: the request may or may not have reached the service."""

    def __init__(self, message: str = "could not connect to the flowers service") -> None:
        super().__init__(message)
        self.message = message


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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.body = body
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


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class UpstreamError(InternalServerError):
    pass


class UpstreamTimeoutError(InternalServerError):
    pass


class FunctionError(APIError):
    """The Lambda runtime reported a failure instead of a handler reply.

    Through the RIE this arrives as HTTP 200 with ``{"errorType", "errorMessage"}``
    (no ``X-Amz-Function-Error`` header), as plain text ``Task timed out after ...``,
    or as an empty body when the runtime crashed.
    """

    def __init__(
        self, message: str, *, error_type: str | None = None, request_id: str | None = None, body: object = None
    ) -> None:
        super().__init__(message, status_code=None, code=error_type, request_id=request_id, body=body)
        self.error_type = error_type


class ResponseValidationError(APIError):
    """A success reply whose body is not a valid classification result."""
