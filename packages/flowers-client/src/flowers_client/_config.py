"""Named defaults: timeouts, deadline, retry policy and payload limits."""

from __future__ import annotations

from typing import Final

from flowers_client._version import __version__

__all__ = [
    "API_GATEWAY_MAX_PAYLOAD",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DEADLINE",
    "DEFAULT_ENDPOINT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOP_K",
    "IMAGE_SUFFIXES",
    "INITIAL_RETRY_DELAY",
    "LAMBDA_MAX_PAYLOAD",
    "MAX_BATCH_PAYLOAD",
    "MAX_BATCH_SIZE",
    "MAX_REPLY_BYTES",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "USER_AGENT",
]

#: The local stack's API Gateway front (``nox -s serve``); set FLOWERS_ENDPOINT
#: or pass ``endpoint=`` for a deployed API.
DEFAULT_ENDPOINT: Final = "http://127.0.0.1:3000/predict"
#: (connect, read) seconds. One attempt takes at most connect + read seconds,
#: the reply's headers and whole body included (a server trickling them cannot
#: stretch the attempt: see ``_attempt_clock``). The read timeout is above API
#: Gateway's 29 s integration timeout, so the gateway's own 504 arrives before ours.
DEFAULT_TIMEOUT: Final = (5.0, 35.0)
#: Seconds for one call, every attempt and every wait between them included.
DEFAULT_DEADLINE: Final = 120.0
DEFAULT_MAX_RETRIES: Final = 2
DEFAULT_TOP_K: Final = 10
DEFAULT_CONCURRENCY: Final = 8
#: Images per request in ``iter_classify`` / ``classify_many``: 1 sends each alone (every service accepts
#: that); up to MAX_BATCH_SIZE packs them into batch requests (``{"images": [...]}``).
DEFAULT_BATCH_SIZE: Final = 1
MAX_BATCH_SIZE: Final = 16
#: Exponential backoff: 0.5 s, 1 s, 2 s ... capped at 8 s, with jitter.
INITIAL_RETRY_DELAY: Final = 0.5
MAX_RETRY_DELAY: Final = 8.0
#: A server's Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER: Final = 60.0
#: Request payload limits of what sits in front of the function.
API_GATEWAY_MAX_PAYLOAD: Final = 10 * 1024 * 1024
LAMBDA_MAX_PAYLOAD: Final = 6 * 1024 * 1024
#: A batch request is packed to at most this many bytes, whatever the front door: behind API Gateway the
#: request becomes a Lambda event (headers and all) that must stay under Lambda's 6 MB. Larger images
#: travel in a request of their own.
MAX_BATCH_PAYLOAD: Final = 5 * 1024 * 1024
#: A result with all 102 predictions is about 7 KB; anything much larger is not
#: an answer from our service, and is not read into memory.
MAX_REPLY_BYTES: Final = 1024 * 1024
USER_AGENT: Final = f"flowers-client/{__version__}"
#: What a directory given as an input is searched for (case-insensitive).
IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
