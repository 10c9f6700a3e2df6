"""flowers-client: the Python SDK for the flowers classification service.

    >>> import flowers_client
    >>> result = flowers_client.classify("https://example.com/rose.jpg", top_k=3)
    >>> result.best.label, result.is_flower

What this module lists is the contract; the underscore modules can change.
"""

from flowers_client._api import classify
from flowers_client._async_client import AsyncFlowersClient
from flowers_client._base_client import NOT_GIVEN, Timeout, is_retryable
from flowers_client._client import FlowersClient
from flowers_client._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE,
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOP_K,
    MAX_BATCH_SIZE,
    USER_AGENT,
)
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
from flowers_client._inputs import ImageInput, find_images
from flowers_client._models import BATCH_ITEM, BatchFailure, BatchItem, BatchSuccess, ClassifyResult, Prediction, top_k
from flowers_client._response import RawResponse
from flowers_client._version import __version__

__all__ = [
    "BATCH_ITEM",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DEADLINE",
    "DEFAULT_ENDPOINT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOP_K",
    "MAX_BATCH_SIZE",
    "NOT_GIVEN",
    "USER_AGENT",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncFlowersClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailure",
    "BatchItem",
    "BatchSuccess",
    "ClassifyResult",
    "FlowersClient",
    "FlowersError",
    "FunctionError",
    "ImageInput",
    "InternalServerError",
    "InvalidInputError",
    "NotAFlowerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Prediction",
    "RateLimitError",
    "RawResponse",
    "ResponseValidationError",
    "Timeout",
    "UnprocessableImageError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "__version__",
    "classify",
    "find_images",
    "is_retryable",
    "top_k",
]
