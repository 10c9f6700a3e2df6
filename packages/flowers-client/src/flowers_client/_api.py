"""One-line convenience: ``flowers_client.classify(url)``.

Like ``requests.get``, it opens a short-lived client, makes the call and
closes it; use :class:`FlowersClient` to reuse connections across calls.
"""

from __future__ import annotations

import requests

from flowers_client._client import FlowersClient
from flowers_client._config import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, DEFAULT_TOP_K
from flowers_client._inputs import ImageInput
from flowers_client._models import ClassifyResult

__all__ = ["classify"]


def classify(
    image: ImageInput,
    *,
    top_k: int = DEFAULT_TOP_K,
    endpoint: str | None = None,
    api_key: str | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    session: requests.Session | None = None,
) -> ClassifyResult:
    """Classify one image. The endpoint defaults to ``$FLOWERS_ENDPOINT``, the API key to ``$FLOWERS_API_KEY``."""
    with FlowersClient(endpoint, api_key=api_key, timeout=timeout, max_retries=max_retries, session=session) as client:
        return client.classify(image, top_k=top_k)
