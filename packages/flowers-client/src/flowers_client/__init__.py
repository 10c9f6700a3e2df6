"""flowers-client: the Python SDK for the flowers classification service.

    >>> import flowers_client
    >>> result = flowers_client.classify("https://example.com/rose.jpg", top_k=3)
    >>> result.best.label

What this module lists is the contract; the underscore modules can change.
"""

from flowers_client._api import classify
from flowers_client._client import FlowersClient
from flowers_client._config import DEFAULT_ENDPOINT, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, DEFAULT_TOP_K
from flowers_client._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    FlowersError,
    FunctionError,
    InternalServerError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableImageError,
    UnsupportedMediaTypeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from flowers_client._inputs import ImageInput
from flowers_client._models import BatchItem, ClassifyResult, Prediction, top_k
from flowers_client._version import __version__

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOP_K",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchItem",
    "ClassifyResult",
    "FlowersClient",
    "FlowersError",
    "FunctionError",
    "ImageInput",
    "InternalServerError",
    "InvalidInputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Prediction",
    "RateLimitError",
    "ResponseValidationError",
    "UnprocessableImageError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "__version__",
    "classify",
    "top_k",
]
