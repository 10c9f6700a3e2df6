"""The client: owns the endpoint, the session, timeouts and the retry policy."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from flowers_client._config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOP_K,
    INITIAL_RETRY_DELAY,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
)
from flowers_client._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    FlowersError,
    FunctionError,
    ResponseValidationError,
)
from flowers_client._inputs import ImageInput, build_payload, describe
from flowers_client._models import BatchItem, ClassifyResult
from flowers_client._transport import Transport, encode_payload, select_transport

__all__ = ["FlowersClient"]

logger = logging.getLogger("flowers_client")

_RETRY_STATUSES = frozenset({408, 409, 429})


def is_retryable(exc: BaseException) -> bool:
    """The big SDKs' policy: connection errors, timeouts, 408, 409, 429 and 5xx.

    Retrying after the request may have reached the server (a read timeout, a
    5xx) is safe here because classifying has no side effects: a repeated
    POST /predict only costs another inference.
    """
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, APIStatusError) and exc.status_code is not None:
        return exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
    # A runtime-level failure (crash, timeout) of the function is a server error too.
    return isinstance(exc, FunctionError)


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before retry number ``attempt`` (1-based)."""
    if retry_after is not None and retry_after <= MAX_RETRY_AFTER:
        return retry_after
    backoff: float = min(MAX_RETRY_DELAY, INITIAL_RETRY_DELAY * 2.0 ** (attempt - 1))
    jitter: float = 1.0 - 0.25 * random.random()  # noqa: S311 - jitter, not crypto
    return backoff * jitter


class FlowersClient:
    """A client for one flowers endpoint; reuse it (and its connection pool) across calls.

    ``endpoint`` is an API Gateway ``.../predict`` URL or the RIE's
    ``.../2015-03-31/functions/function/invocations`` URL; the transport is
    chosen from it unless ``transport`` ('api-gateway' / 'rie') says otherwise.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        session: requests.Session | None = None,
        transport: str | None = None,
    ) -> None:
        endpoint = endpoint or os.environ.get("FLOWERS_ENDPOINT") or DEFAULT_ENDPOINT
        if not endpoint.lower().startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.endpoint = endpoint
        self.timeout: tuple[float, float] = (timeout, timeout) if isinstance(timeout, (int, float)) else timeout
        self.max_retries = max_retries
        self._owns_session = session is None
        self._session = session or requests.Session()
        if self._owns_session:
            # Room for classify_many's threads to each keep a connection.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        api_key = api_key if api_key is not None else os.environ.get("FLOWERS_API_KEY")
        self._transport: Transport = select_transport(endpoint, transport)(endpoint, self._session, api_key=api_key)
        _configure_debug_logging()

    @property
    def transport(self) -> str:
        return self._transport.name

    def close(self) -> None:
        """Close the session, unless it was the caller's."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> FlowersClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def classify(self, image: ImageInput, *, top_k: int = DEFAULT_TOP_K) -> ClassifyResult:
        """Classify one image: an http(s) URL, a path, bytes or a binary file object."""
        payload = encode_payload(build_payload(image, top_k=top_k, max_payload=self._transport.max_payload))
        body = self._send_with_retries(payload, describe(image))
        try:
            return ClassifyResult.model_validate(body)
        except ValidationError as exc:
            raise ResponseValidationError(
                f"the service's reply does not match the result schema: {exc.error_count()} error(s)",
                request_id=str(body.get("request_id")) if body.get("request_id") else None,
                body=body,
            ) from exc

    def classify_many(
        self,
        images: Iterable[ImageInput],
        *,
        top_k: int = DEFAULT_TOP_K,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_progress: Callable[[BatchItem], None] | None = None,
    ) -> list[BatchItem]:
        """Classify many images concurrently; results in input order, errors per item."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        inputs: Sequence[ImageInput] = list(images)

        def one(index: int) -> BatchItem:
            image = inputs[index]
            try:
                item = BatchItem(index=index, input=describe(image), result=self.classify(image, top_k=top_k))
            except FlowersError as exc:
                item = BatchItem(index=index, input=describe(image), error=exc)
            if on_progress is not None:
                on_progress(item)
            return item

        if concurrency == 1 or len(inputs) <= 1:
            return [one(i) for i in range(len(inputs))]
        with ThreadPoolExecutor(max_workers=min(concurrency, len(inputs)), thread_name_prefix="flowers") as pool:
            return list(pool.map(one, range(len(inputs))))

    def _send_with_retries(self, payload: bytes, what: str) -> dict[str, Any]:
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            retry_after = exc.retry_after if isinstance(exc, APIError) else None
            return retry_delay(state.attempt_number, retry_after)

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            sleep = state.next_action.sleep if state.next_action else 0.0
            logger.info(
                "retrying %s after %s (attempt %d of %d, waiting %.2f s)",
                what,
                exc,
                state.attempt_number + 1,
                self.max_retries + 1,
                sleep,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=log_retry,
            sleep=_sleep,
            reraise=True,  # callers catch our errors, never tenacity's RetryError
        )
        result: dict[str, Any] = retrying(self._transport.send, payload, self.timeout)
        return result


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at call time, so tests can record waits instead of sleeping


_debug_configured = False


def _configure_debug_logging() -> None:
    """``FLOWERS_LOG=debug`` logs every request on the ``flowers_client`` logger (API keys redacted)."""
    global _debug_configured
    if _debug_configured or os.environ.get("FLOWERS_LOG", "").lower() != "debug":
        return
    _debug_configured = True
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(_RedactFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        key = os.environ.get("FLOWERS_API_KEY")
        if key:
            record.msg = str(record.getMessage()).replace(key, "***")
            record.args = ()
        return True
