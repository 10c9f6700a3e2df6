"""One-line convenience: ``flowers_client.classify(url)``.

Like ``requests.get``, it opens a short-lived client, makes the call and
closes it; use :class:`FlowersClient` to reuse connections across calls.
"""

from __future__ import annotations

from flowers_client._base_client import Timeout
from flowers_client._client import FlowersClient
from flowers_client._config import DEFAULT_DEADLINE, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, DEFAULT_TOP_K
from flowers_client._inputs import ImageInput
from flowers_client._models import ClassifyResult

__all__ = ["classify"]


def classify(
    image: ImageInput,
    *,
    top_k: int = DEFAULT_TOP_K,
    reject: bool = False,
    endpoint: str | None = None,
    api_key: str | None = None,
    timeout: Timeout = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    deadline: float | None = DEFAULT_DEADLINE,
) -> ClassifyResult:
    """Classify one image. The endpoint defaults to ``$FLOWERS_ENDPOINT``, the API key to ``$FLOWERS_API_KEY``."""
    with FlowersClient(
        endpoint, api_key=api_key, timeout=timeout, max_retries=max_retries, deadline=deadline
    ) as client:
        return client.classify(image, top_k=top_k, reject=reject)
