"""flowers-client: the Python SDK for the flowers classification service.

    >>> import flowers_client
    >>> result = flowers_client.classify("https://example.com/rose.jpg", top_k=3)
    >>> result.best.label, result.is_flower

What this module lists is the contract; the underscore modules can change.

Names load on first use (PEP 562), so the ``flowers`` command starts, and
answers ``--help`` or a Ctrl-C, before httpx and pydantic are imported.
"""

from __future__ import annotations

import importlib

# Not `from typing import TYPE_CHECKING`: typing (with re and enum) is the heaviest import here,
# and the `flowers` command takes Ctrl-C only once this package has loaded.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
    from flowers_client._models import (
        BATCH_ITEM,
        BatchFailure,
        BatchItem,
        BatchSuccess,
        ClassifyResult,
        Prediction,
        top_k,
    )
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


#: The modules a public name is looked up in (by their ``__all__``), lightest first.
_MODULES = (
    "_version",
    "_config",
    "_exceptions",
    "_inputs",
    "_response",
    "_models",
    "_api",
    "_base_client",
    "_client",
    "_async_client",
)


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'flowers_client' has no attribute {name!r}")
    for module_name in _MODULES:
        module = importlib.import_module(f"flowers_client.{module_name}")
        if name in getattr(module, "__all__", ()) or (name == "__version__" and hasattr(module, name)):
            value = getattr(module, name)
            globals()[name] = value  # the next lookup is a plain attribute
            return value
    raise AttributeError(f"module 'flowers_client' has no attribute {name!r}")  # pragma: no cover


def __dir__() -> list[str]:
    return sorted(__all__)
