"""A batch: up to 16 images in one request, each answered as if it had come alone.

How a batch runs, and why:

* **Items are independent.** Each entry of the reply is what a single request
  for that image would have answered: the result, or the error object with the
  same code and message, plus its ``status``. A bad item (base64 that does not
  decode, an image too large, a URL we refuse or that times out, a photo
  ``reject`` turns away) fails alone; the batch is answered 200 whenever its
  own shape was valid, even if every item failed.
* **One deadline for every download.** URL items are fetched on at most
  :data:`FETCH_CONCURRENCY` threads, and all of them must be done within one
  deadline for the whole batch (the fetch setting ``total_timeout``, 20 s in
  AWS), not one each: sixteen hosts that never answer cost that deadline once,
  and the reply still comes inside API Gateway's 29 s. A download that had not
  finished by then is its item's ``upstream_timeout``.
* **Bounded memory.** Images are decoded, classified and dropped one at a time
  on the calling thread (the model runs one image at a time anyway); at most
  :data:`FETCH_CONCURRENCY` downloads are in flight or waiting for the model,
  plus the one being classified. Inline images stay base64 in the event until
  their turn. So a batch's peak memory is one decode's plus a few compressed
  images, never sixteen decoded images.
* **Bounded time.** Decoding is not interruptible and a hostile image can take
  seconds at a small CPU share, so sixteen of them could outlast the function's
  timeout and lose every answer. An item is only started while the time left
  (the Lambda context's, else ``time_budget``) exceeds :data:`MIN_MARGIN_S`
  and twice the slowest item so far; the items after that answer 504
  ``integration_timeout`` (:class:`~flowers_serving.errors.OutOfTime`) and the
  ones done keep their answers.
* ``top_k`` and ``reject`` are the batch's and apply to every item.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Final

from flowers_serving.errors import OutOfTime, ServingError
from flowers_serving.events import BatchItem

__all__ = ["FETCH_CONCURRENCY", "MIN_MARGIN_S", "ItemOutcome", "run_batch"]

logger = logging.getLogger("flowers_serving.batch")

#: Downloads in flight at once. Enough that sixteen slow hosts overlap, few
#: enough that the compressed images waiting for the model stay small (each is
#: at most the image byte cap).
FETCH_CONCURRENCY: Final = 4
#: Never start an item with less time than this left (or than twice the slowest item so far).
MIN_MARGIN_S: Final = 2.0

#: image bytes -> a single request's result body (raises ServingError, e.g. not_a_flower under reject).
Answer = Callable[[bytes], dict[str, Any]]
#: (url, seconds left) -> the image's bytes.
Fetch = Callable[[str, float], bytes]
#: base64 text -> the image's bytes.
Decode = Callable[[str], bytes]


@dataclass(frozen=True)
class ItemOutcome:
    """One item's entry of the reply, and what the metrics need of it."""

    status: int
    body: dict[str, Any]
    code: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    is_flower: bool | None = None


def run_batch(
    items: tuple[BatchItem, ...],
    *,
    answer: Answer,
    fetch: Fetch,
    decode: Decode,
    fetch_seconds: float,
    time_budget: float,
    concurrency: int = FETCH_CONCURRENCY,
) -> list[ItemOutcome]:
    """Every item's outcome, in input order, within ``time_budget`` seconds (downloads within ``fetch_seconds``)."""
    clock = _Clock(time_budget)
    # Downloads stop in time for the last ones to be classified.
    ends_at = time.monotonic() + min(fetch_seconds, max(0.0, time_budget - 2 * MIN_MARGIN_S))
    outcomes: list[ItemOutcome | None] = [None] * len(items)
    inline = deque(i for i, item in enumerate(items) if item.image_base64 is not None)
    queued = deque(i for i, item in enumerate(items) if item.url is not None)
    if not queued:
        for i in inline:
            outcomes[i] = clock.run(_inline(decode, items[i]), answer)
        return _all(outcomes)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="flowers-batch-fetch") as pool:
        downloads: dict[Future[tuple[bytes | Exception, float]], int] = {}

        def start_downloads() -> None:
            while queued and len(downloads) < concurrency:
                i = queued.popleft()
                downloads[pool.submit(_timed_fetch, fetch, _text(items[i].url), ends_at)] = i

        start_downloads()
        while downloads or inline:
            finished = [future for future in downloads if future.done()]
            if not finished and inline:
                # Classify inline images while the downloads run.
                i = inline.popleft()
                outcomes[i] = clock.run(_inline(decode, items[i]), answer)
                continue
            if not finished:
                done, _ = wait(downloads, return_when=FIRST_COMPLETED)
                finished = list(done)
            for future in finished:
                i = downloads.pop(future)
                start_downloads()
                outcomes[i] = clock.run(_downloaded(future), answer, fetch_ms=future.result()[1])
    return _all(outcomes)


class _Clock:
    """Starts an item only while there is time for it, judged by the slowest item so far."""

    def __init__(self, budget: float) -> None:
        self.ends_at = time.monotonic() + budget
        self.slowest = 0.0

    def run(self, load: Callable[[], bytes], answer: Answer, *, fetch_ms: float | None = None) -> ItemOutcome:
        left = self.ends_at - time.monotonic()
        if left < max(MIN_MARGIN_S, 2 * self.slowest):
            exc = OutOfTime("the function ran out of time before this image; the batch's earlier images are answered")
            return _failure(exc, {} if fetch_ms is None else {"fetch_ms": fetch_ms})
        started = time.monotonic()
        outcome = _outcome(load, answer, fetch_ms=fetch_ms)
        self.slowest = max(self.slowest, time.monotonic() - started)
        return outcome


def _text(value: str | None) -> str:
    assert value is not None  # events.parse_event guarantees one of url / image per item
    return value


def _timed_fetch(fetch: Fetch, url: str, ends_at: float) -> tuple[bytes | Exception, float]:
    """The image or the error that stopped it, and the download's time (ms) either way.

    Any error is the item's own: a bug in one download must not cost the others their answers
    (``_outcome`` turns it into that item's 500).
    """
    started = time.perf_counter()
    try:
        image: bytes | Exception = fetch(url, ends_at - time.monotonic())
    except Exception as exc:
        image = exc
    return image, (time.perf_counter() - started) * 1000


def _inline(decode: Decode, item: BatchItem) -> Callable[[], bytes]:
    return lambda: decode(_text(item.image_base64))


def _downloaded(future: Future[tuple[bytes | Exception, float]]) -> Callable[[], bytes]:
    def load() -> bytes:
        image, _ = future.result()
        if isinstance(image, Exception):
            raise image
        return image

    return load


def _outcome(load: Callable[[], bytes], answer: Answer, *, fetch_ms: float | None = None) -> ItemOutcome:
    timings: dict[str, float] = {} if fetch_ms is None else {"fetch_ms": fetch_ms}
    try:
        body = answer(load())
    except ServingError as exc:
        return _failure(exc, timings)
    except Exception:  # one item's bug must not cost the others their answers
        logger.exception("unhandled error in a batch item")
        error = {"code": "internal_error", "message": "internal error; see the function's logs"}
        return ItemOutcome(500, {"error": error, "status": 500}, "internal_error", timings)
    if fetch_ms is not None:
        body["timings_ms"] = {"fetch_ms": round(fetch_ms, 3), **body.get("timings_ms", {})}
    timings.update(body.get("timings_ms", {}))
    return ItemOutcome(200, {**body, "status": 200}, None, timings, body.get("is_flower"))


def _failure(exc: ServingError, timings: dict[str, float]) -> ItemOutcome:
    error = {"code": exc.code, "message": exc.message, **exc.details}
    return ItemOutcome(exc.status, {"error": error, "status": exc.status}, exc.code, timings)


def _all(outcomes: list[ItemOutcome | None]) -> list[ItemOutcome]:
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(outcomes)  # every item is answered exactly once
    return done
