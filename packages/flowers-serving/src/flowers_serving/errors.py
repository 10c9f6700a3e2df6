"""Every failure the service reports, with its stable code and HTTP status.

::

    ServingError                 (500 internal_error)
    ├── BadRequest               (400 bad_request)
    │   └── ForbiddenURL         (400 forbidden_url: the SSRF guard said no)
    ├── PayloadTooLarge          (413 payload_too_large)
    ├── UnsupportedMediaType     (415 unsupported_media_type)
    ├── UndecodableImage         (422 undecodable_image)
    │   └── ImageTooLarge        (413 image_too_large: over the pixel cap or the decode-memory budget)
    ├── NotAFlower               (422 not_a_flower: asked with "reject", and the photo shows none of our species)
    ├── UpstreamError            (502 upstream_error)
    ├── UpstreamTimeout          (504 upstream_timeout)
    └── OutOfTime                (504 integration_timeout: a batch item the function had no time left for)

The codes are part of the public contract (see ``flowers_serving.contract``);
add new ones, never rename.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadRequest",
    "ForbiddenURL",
    "ImageTooLarge",
    "NotAFlower",
    "OutOfTime",
    "PayloadTooLarge",
    "ServingError",
    "UndecodableImage",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
]


class ServingError(Exception):
    """Base class: a failure with a stable machine-readable code and an HTTP status."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        #: Extra fields of the error object in the reply (JSON-serialisable).
        self.details = details


class BadRequest(ServingError):
    code = "bad_request"
    status = 400


class ForbiddenURL(BadRequest):
    """The URL points somewhere we refuse to fetch from (scheme, private address...)."""

    code = "forbidden_url"
    status = 400


class PayloadTooLarge(ServingError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ServingError):
    code = "unsupported_media_type"
    status = 415


class UndecodableImage(ServingError):
    code = "undecodable_image"
    status = 422


class ImageTooLarge(UndecodableImage):
    """Too many pixels, or too much memory, to decode safely (a decompression bomb, a huge scan, a tiny
    file of huge 32-bit pixels); decided from the header, before decoding.

    413, like an oversized payload: the request is refused for its size, and the same
    image always gets the same answer (clients do not retry it). Still an
    :class:`UndecodableImage` to Python code: we could not decode it."""

    code = "image_too_large"
    status = 413


class UpstreamError(ServingError):
    code = "upstream_error"
    status = 502


class UpstreamTimeout(ServingError):
    code = "upstream_timeout"
    status = 504


class NotAFlower(ServingError):
    """Only raised for requests with ``reject``: the body then carries ``flower_score`` and the top guesses."""

    code = "not_a_flower"
    status = 422


class OutOfTime(ServingError):
    """A batch item not started because the function's time was nearly up (the items before it were answered).

    The same code API Gateway gives a function too slow to answer at all: here only this item missed it.
    """

    code = "integration_timeout"
    status = 504
