"""Everything both clients share and that does no I/O.

As in httpx's ``BaseClient`` and openai-python's ``_base_client``: one place
decides what to send (endpoint, headers, payload), what to retry and how long
to wait (the retry policy and the call's deadline), and how to read a reply
(wire format, models, errors). :class:`~flowers_client.FlowersClient` and
:class:`~flowers_client.AsyncFlowersClient` only send and wait.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from pydantic import ValidationError
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from flowers_client._config import (
    DEFAULT_DEADLINE,
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    INITIAL_RETRY_DELAY,
    MAX_BATCH_PAYLOAD,
    MAX_BATCH_SIZE,
    MAX_REPLY_BYTES,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
    USER_AGENT,
)
from flowers_client._endpoint_lock import EndpointLock, endpoint_lock
from flowers_client._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    FlowersError,
    FunctionError,
    ResponseValidationError,
    UpstreamError,
)
from flowers_client._inputs import ImageInput, build_item, build_payload, check_top_k, describe, options
from flowers_client._models import BatchFailure, BatchItem, BatchSuccess, ClassifyResult
from flowers_client._response import RawResponse
from flowers_client._transport import BatchEntry, Wire, encode_payload, select_wire

__all__ = ["NOT_GIVEN", "BaseClient", "Cancelled", "OutgoingBatch", "Timeout", "is_retryable", "retry_delay"]

logger = logging.getLogger("flowers_client")

#: A timeout: seconds for everything, (connect, read) seconds, or an ``httpx.Timeout``.
Timeout = float | tuple[float, float] | httpx.Timeout

_RETRY_STATUSES: Final = frozenset({408, 409, 429})
#: A timeout this close to the call's deadline is reported as the deadline's.
_DEADLINE_SLACK: Final = 0.05


class Cancelled(Exception):
    """A request of a stopped batch, dropped before it was sent (never seen by callers)."""


class _NotGiven:
    """Marks an option left out of ``with_options`` (``None`` is a value: no deadline)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven()


def is_retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 408, 409, 429, 5xx and Lambda runtime failures.

    Retrying after the request may have reached the server (a read timeout, a
    5xx) is safe here because classifying has no side effects: a repeated
    POST /predict only costs another inference. Not retried: every other 4xx
    (413 and 422 included: the same image gets the same answer), and an
    upstream_error whose image URL answered 4xx (the image is not there).
    """
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, UpstreamError) and exc.upstream_status is not None and 400 <= exc.upstream_status < 500:
        return exc.upstream_status in _RETRY_STATUSES
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


def to_timeout(timeout: Timeout) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, tuple):
        connect, read = timeout
        return httpx.Timeout(read, connect=connect)
    return httpx.Timeout(timeout)


@dataclass
class Call:
    """One call's clock: when it must be over, across every attempt and wait."""

    what: str
    deadline: float | None
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return self.started + self.deadline - time.monotonic()

    def expired(self) -> APITimeoutError:
        return APITimeoutError(f"{self.what}: no answer within the call's {self.deadline:g} s deadline")


@dataclass
class Outgoing:
    """One request, ready to send (and to send again on a retry)."""

    content: bytes
    headers: dict[str, str]
    what: str


@dataclass
class OutgoingBatch:
    """One batch request and the inputs it carries, in the order of its ``images``."""

    request: Outgoing
    entries: list[tuple[int, ImageInput]]


class ReplyReader:
    """Collects a reply's body, refusing one that is too large or arrives too late."""

    def __init__(self, ends_at: float | None, late: Callable[[], APITimeoutError]) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._ends_at = ends_at
        self._late = late

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_REPLY_BYTES:
            raise ResponseValidationError(f"the reply is larger than {MAX_REPLY_BYTES:,} bytes; not a flowers reply")
        self.check_time()
        self._chunks.append(chunk)

    def check_time(self) -> None:
        if self._ends_at is not None and time.monotonic() > self._ends_at:
            raise self._late()

    @property
    def content(self) -> bytes:
        return b"".join(self._chunks)


class BaseClient:
    """Settings, request building, the retry policy and reply parsing, for both clients."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        api_key: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        deadline: float | None = DEFAULT_DEADLINE,
        transport: str | None = None,
    ) -> None:
        endpoint = endpoint or os.environ.get("FLOWERS_ENDPOINT") or DEFAULT_ENDPOINT
        if not endpoint.lower().startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if deadline is not None and deadline <= 0:
            raise ValueError("deadline must be > 0 seconds (or None for no deadline)")
        api_key = api_key if api_key is not None else os.environ.get("FLOWERS_API_KEY") or None
        if api_key is not None and not api_key.isascii():
            raise ValueError("the API key must be ASCII")
        self.endpoint = endpoint
        self.api_key = api_key
        self.timeout = to_timeout(timeout)
        self.max_retries = max_retries
        self.deadline = deadline
        self._transport_name = transport
        self._wire: Wire = select_wire(endpoint, transport)
        # The RIE runs one invoke at a time: every client of this process shares its lock.
        self._lock: EndpointLock | None = endpoint_lock(endpoint) if self._wire.serialised else None
        _configure_debug_logging()

    @property
    def transport(self) -> str:
        """'api-gateway' or 'rie'."""
        return self._wire.name

    def _options(
        self,
        timeout: Timeout | _NotGiven,
        max_retries: int | _NotGiven,
        deadline: float | _NotGiven | None,
    ) -> dict[str, Any]:
        """This client's settings with some replaced, for ``with_options``."""
        return {
            "endpoint": self.endpoint,
            "api_key": self.api_key,
            "timeout": self.timeout if isinstance(timeout, _NotGiven) else timeout,
            "max_retries": self.max_retries if isinstance(max_retries, _NotGiven) else max_retries,
            "deadline": self.deadline if isinstance(deadline, _NotGiven) else deadline,
            "transport": self._transport_name,
        }

    # --- what to send ---------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def _build_request(self, image: ImageInput, *, top_k: int, reject: bool) -> Outgoing:
        payload = build_payload(image, top_k=top_k, max_payload=self._wire.max_payload, reject=reject)
        return Outgoing(encode_payload(payload), self._headers(), describe(image))

    def _attempt_timeout(self, call: Call) -> tuple[httpx.Timeout, float | None]:
        """This attempt's httpx timeouts and its whole budget (connect + read), within the deadline."""
        remaining = call.remaining()
        if remaining is not None and remaining <= 0:
            raise call.expired()

        def cap(value: float | None) -> float | None:
            if remaining is None:
                return value
            return remaining if value is None else min(value, remaining)

        t = self.timeout
        budget = None if t.connect is None or t.read is None else t.connect + t.read
        return (
            httpx.Timeout(connect=cap(t.connect), read=cap(t.read), write=cap(t.write), pool=cap(t.pool)),
            cap(budget),
        )

    def _log_request(self, out: Outgoing) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            shown = {k: ("***" if k.lower() == "x-api-key" else v) for k, v in out.headers.items()}
            logger.debug(
                "POST %s via %s (%d bytes, headers %s)", self.endpoint, self.transport, len(out.content), shown
            )

    # --- what to retry ----------------------------------------------------------------

    def _new_call(self, what: str) -> Call:
        return Call(what, self.deadline)

    def _retry_policy(self, call: Call) -> dict[str, Any]:
        """tenacity settings shared by both clients (each adds its own ``sleep``)."""

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            retry_after = exc.retry_after if isinstance(exc, APIError) else None
            return retry_delay(state.attempt_number, retry_after)

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            sleep = state.next_action.sleep if state.next_action else 0.0
            logger.info(
                "retrying %s after %s (attempt %d of %d, waiting %.2f s)",
                call.what,
                exc,
                state.attempt_number + 1,
                self.max_retries + 1,
                sleep,
            )

        return {
            "stop": stop_after_attempt(self.max_retries + 1) | _StopAtDeadline(call),
            "wait": wait,
            "retry": retry_if_exception(is_retryable),
            "before_sleep": log_retry,
            "reraise": True,  # callers catch our errors, never tenacity's RetryError
        }

    # --- how to read the reply --------------------------------------------------------

    def _reader(self, budget: float | None, call: Call | None = None) -> ReplyReader:
        started = time.monotonic()
        return ReplyReader(None if budget is None else started + budget, lambda: self._timed_out(budget, call))

    def _raw(self, response: httpx.Response, content: bytes, started: float) -> RawResponse:
        elapsed_ms = (time.monotonic() - started) * 1000
        logger.debug("HTTP %d from %s in %.0f ms", response.status_code, self.endpoint, elapsed_ms)
        return RawResponse(response.status_code, response.headers, content, str(response.url), elapsed_ms)

    def _parse(self, raw: RawResponse) -> ClassifyResult:
        body = self._wire.parse(raw)
        try:
            result = ClassifyResult.model_validate(body)
        except ValidationError as exc:
            raise ResponseValidationError(
                f"the service's reply does not match the result schema: {exc.error_count()} error(s)",
                request_id=str(body.get("request_id")) if body.get("request_id") else None,
                body=body,
                response=raw,
            ) from exc
        result._raw_response = raw
        return result

    def _transport_error(self, exc: Exception, budget: float | None, call: Call | None = None) -> APIConnectionError:
        """httpx's failures as ours, with a short reason (the endpoint is named once)."""
        if isinstance(exc, httpx.TimeoutException):
            return self._timed_out(budget, call, f" ({type(exc).__name__})")
        return APIConnectionError(f"cannot reach {self.endpoint}: {_reason(exc)}")

    def _timed_out(self, budget: float | None, call: Call | None, detail: str = "") -> APITimeoutError:
        """An attempt ran out of time: its own budget, or what the call's deadline left it."""
        if call is not None and call.deadline is not None and (call.remaining() or 0.0) < _DEADLINE_SLACK:
            return call.expired()
        limit = f" within {budget:.3g} s" if budget is not None else ""
        return APITimeoutError(f"no answer from {self.endpoint}{limit}{detail}")

    @staticmethod
    def _item(index: int, image: ImageInput, outcome: ClassifyResult | FlowersError) -> BatchItem:
        if isinstance(outcome, FlowersError):
            return BatchFailure(index=index, input=describe(image), error=outcome)
        return BatchSuccess(index=index, input=describe(image), result=outcome)

    def _concurrency(self, concurrency: int) -> int:
        """The requests to keep in flight: ``concurrency``, except 1 on the RIE.

        The RIE runs one invoke at a time, so more would only queue for its lock, in whatever
        order their threads reached it: one at a time, the inputs go out (and finish) in order.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        return 1 if self._wire.serialised else concurrency

    # --- batches ------------------------------------------------------------------------

    def _batch_size(self, batch_size: int) -> int:
        """The images per request to use: ``batch_size``, except 1 on the RIE.

        The RIE runs one invoke at a time and every client of this process queues for it
        (``_endpoint_lock``): a batch of 16, URL downloads included, would hold it for up to
        a whole fetch deadline while everyone else waits, and a local RIE gains nothing
        from fewer, larger invokes. The service itself accepts batches there too.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}")
        if batch_size > 1 and self._wire.serialised:
            logger.info("batch_size=%d ignored: the RIE transport sends one image per invoke", batch_size)
            return 1
        return batch_size

    def _build_batches(
        self, entries: list[tuple[int, ImageInput]], *, top_k: int, reject: bool
    ) -> tuple[list[BatchItem], list[OutgoingBatch]]:
        """Inputs that cannot be sent (each its own failure) and the requests carrying the rest.

        Requests hold at most :data:`MAX_BATCH_PAYLOAD` bytes (an image larger than that goes alone).
        """
        failures: list[BatchItem] = []
        try:
            check_top_k(top_k)
        except FlowersError as exc:
            return [self._item(i, image, exc) for i, image in entries], []
        extra = options(top_k=top_k, reject=reject)
        limit = min(self._wire.max_payload, MAX_BATCH_PAYLOAD)
        groups: list[list[tuple[int, ImageInput, dict[str, str]]]] = [[]]
        size = 0
        for index, image in entries:
            try:
                item = build_item(image, max_payload=self._wire.max_payload)
            except FlowersError as exc:
                failures.append(self._item(index, image, exc))
                continue
            item_size = sum(len(k) + len(v) + 8 for k, v in item.items())  # {"image":"..."}, and a comma
            if groups[-1] and size + item_size > limit:
                groups.append([])
                size = 0
            groups[-1].append((index, image, item))
            size += item_size
        requests = [
            OutgoingBatch(
                Outgoing(
                    encode_payload({"images": [item for _, _, item in group], **extra}),
                    self._headers(),
                    f"a batch of {len(group)} ({describe(group[0][1])}...)",
                ),
                [(index, image) for index, image, _ in group],
            )
            for group in groups
            if group
        ]
        return failures, requests

    def _parse_batch(self, raw: RawResponse, batch: OutgoingBatch) -> list[BatchItem]:
        """One item per input of ``batch``: its result, or the error the service answered for it alone."""
        body = self._wire.parse(raw, batch=True)
        request_id = str(body["request_id"]) if body.get("request_id") else None
        results = body["results"]
        if len(results) != len(batch.entries):
            raise ResponseValidationError(
                f"the batch reply has {len(results)} entries for {len(batch.entries)} images",
                request_id=request_id,
                body=body,
                response=raw,
            )
        items: list[BatchItem] = []
        for (index, image), entry in zip(batch.entries, results, strict=True):
            read = BatchEntry.read(entry, request_id, raw)
            outcome: ClassifyResult | FlowersError
            if isinstance(read, FlowersError):
                outcome = read
            else:
                try:
                    outcome = ClassifyResult.model_validate(read)
                    outcome._raw_response = raw
                except ValidationError as exc:
                    outcome = ResponseValidationError(
                        f"an entry of the batch reply does not match the result schema: {exc.error_count()} error(s)",
                        request_id=request_id,
                        body=entry,
                        response=raw,
                    )
            items.append(self._item(index, image, outcome))
        return items

    def _failed_batch(self, batch: OutgoingBatch, error: FlowersError) -> list[BatchItem]:
        """The whole request failed (connection, 413, 5xx after retries...): so did each of its images."""
        return [self._item(index, image, error) for index, image in batch.entries]


class _StopAtDeadline(stop_base):
    """Give up when the wait before the next attempt would end past the call's deadline."""

    def __init__(self, call: Call) -> None:
        self.call = call

    def __call__(self, retry_state: RetryCallState) -> bool:
        remaining = self.call.remaining()
        return remaining is not None and retry_state.upcoming_sleep >= remaining


def _reason(exc: Exception) -> str:
    """'connection refused' rather than '[Errno 111] Connection refused' or a urllib3 repr."""
    text = str(exc).strip() or type(exc).__name__
    if "] " in text and text.startswith("[Errno"):
        text = text.split("] ", 1)[1]
    text = text.splitlines()[0][:160]
    if text[1:2].islower():  # "Connection refused" -> "connection refused"; "SSL: ..." stays
        text = text[:1].lower() + text[1:]
    return text


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
