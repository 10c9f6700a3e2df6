"""The synchronous client: sends with ``httpx.Client``, batches on daemon threads."""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from types import TracebackType

import httpx
from tenacity import Retrying

from flowers_client._attempt_clock import AttemptClockTransport, attempt_ends_at
from flowers_client._base_client import (
    NOT_GIVEN,
    BaseClient,
    Call,
    Cancelled,
    Outgoing,
    OutgoingBatch,
    Timeout,
    _NotGiven,
)
from flowers_client._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOP_K,
)
from flowers_client._exceptions import APITimeoutError, FlowersError
from flowers_client._inputs import ImageInput
from flowers_client._models import BatchItem, ClassifyResult
from flowers_client._response import RawResponse

__all__ = ["FlowersClient"]


class FlowersClient(BaseClient):
    """A client for one flowers endpoint; reuse it (and its connection pool) across calls.

    ``endpoint`` is an API Gateway ``.../predict`` URL or the RIE's
    ``.../2015-03-31/functions/function/invocations`` URL (default:
    ``$FLOWERS_ENDPOINT``, else the local stack); the transport is chosen from
    it unless ``transport`` ('api-gateway' / 'rie') says otherwise.

    ``timeout``: seconds, or (connect, read); one attempt takes at most
    connect + read seconds, the reply's headers and body included. ``deadline``: seconds for
    a whole call, every retry and wait included (``None``: no deadline).
    ``http_client``: an ``httpx.Client`` of yours to send with (not closed here).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        api_key: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        deadline: float | None = DEFAULT_DEADLINE,
        transport: str | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            endpoint, api_key=api_key, timeout=timeout, max_retries=max_retries, deadline=deadline, transport=transport
        )
        self._owns_http = http_client is None
        # Room for a batch's threads to each keep a connection; sockets that keep to the attempt's clock.
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        self._http = http_client or httpx.Client(transport=AttemptClockTransport(limits=limits), limits=limits)

    def with_options(
        self,
        *,
        timeout: Timeout | _NotGiven = NOT_GIVEN,
        max_retries: int | _NotGiven = NOT_GIVEN,
        deadline: float | _NotGiven | None = NOT_GIVEN,
    ) -> FlowersClient:
        """A client with some settings changed that shares this one's connections.

        ``client.with_options(timeout=2, max_retries=0).classify(url)``
        """
        return FlowersClient(**self._options(timeout, max_retries, deadline), http_client=self._http)

    def close(self) -> None:
        """Close the connection pool, unless it was the caller's."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> FlowersClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- one image --------------------------------------------------------------------

    def classify(self, image: ImageInput, *, top_k: int = DEFAULT_TOP_K, reject: bool = False) -> ClassifyResult:
        """Classify one image: an http(s) URL, a path, bytes or a binary file object.

        ``reject=True`` asks the service to answer a photo that shows none of
        the 102 species with :class:`~flowers_client.NotAFlowerError`.
        """
        return self._classify(image, top_k=top_k, reject=reject)

    def _classify(
        self, image: ImageInput, *, top_k: int, reject: bool, cancelled: threading.Event | None = None
    ) -> ClassifyResult:
        out = self._build_request(image, top_k=top_k, reject=reject)
        call = self._new_call(out.what)
        result: ClassifyResult | None = None
        for attempt in Retrying(sleep=_sleep, **self._retry_policy(call)):
            with attempt:
                result = self._parse(self._send(out, call, cancelled))
        assert result is not None  # tenacity re-raises the last error otherwise
        return result

    def _send(self, out: Outgoing, call: Call, cancelled: threading.Event | None = None) -> RawResponse:
        """One HTTP exchange, holding the endpoint's lock (RIE) for exactly its length."""
        if self._lock is not None and not self._lock.acquire(call.remaining()):
            raise APITimeoutError(
                f"{out.what}: waited past the deadline for {self.endpoint} (an RIE serves one invoke at a time)"
            )
        if cancelled is not None and cancelled.is_set():
            # The batch was stopped while this request waited for its turn: it never goes out.
            if self._lock is not None:
                self._lock.release()
            raise Cancelled(out.what)
        try:
            timeout, budget = self._attempt_timeout(call)
            self._log_request(out)
            started = time.monotonic()
            request = self._http.build_request(
                "POST", self.endpoint, content=out.content, headers=out.headers, timeout=timeout
            )
            reader = self._reader(budget, call)
            try:
                # Every socket operation, the headers' included, ends by the attempt's end (see _attempt_clock).
                with attempt_ends_at(None if budget is None else started + budget):
                    response = self._http.send(request, stream=True)
                    try:
                        reader.check_time()
                        for chunk in response.iter_bytes():
                            reader.add(chunk)
                    finally:
                        response.close()
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, budget, call) from exc
        finally:
            if self._lock is not None:
                self._lock.release()
        return self._raw(response, reader.content, started)

    # --- many images ------------------------------------------------------------------

    def iter_classify(
        self,
        images: Iterable[ImageInput],
        *,
        top_k: int = DEFAULT_TOP_K,
        concurrency: int = DEFAULT_CONCURRENCY,
        reject: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Generator[BatchItem, None, None]:
        """Classify many images, yielding each :data:`BatchItem` as soon as it is done.

        Items come in the order they finish; ``item.index`` is the input's
        position. At most ``concurrency`` requests are in flight, and
        ``images`` is read lazily, one request's worth per free slot. Stopping early
        (``close()``, or ``break`` then dropping the generator, an exception,
        Ctrl-C) stops scheduling at once; requests already in flight finish on
        daemon threads and are dropped.

        ``batch_size`` (1-16, default 1): images per request. Above 1, inputs
        go in batch requests (``{"images": [...]}``) and each still comes back
        as its own item, with its own error if it failed (an input that cannot
        be read fails alone, before sending; a request that fails as a whole
        fails each of its images; a failed image of an answered batch is not
        retried). On the RIE transport, which runs one invoke at a time, both
        ``batch_size`` and ``concurrency`` are 1: the inputs go out in order.
        """
        concurrency = self._concurrency(concurrency)
        return self._iter_classify(iter(images), top_k, concurrency, reject, self._batch_size(batch_size))

    def _iter_classify(
        self, images: Iterator[ImageInput], top_k: int, concurrency: int, reject: bool, batch_size: int = 1
    ) -> Generator[BatchItem, None, None]:
        jobs: queue.Queue[list[tuple[int, ImageInput]] | None] = queue.Queue()  # None: stop
        done: queue.Queue[list[BatchItem] | BaseException] = queue.Queue()
        stopped = threading.Event()
        workers: list[threading.Thread] = []

        def work() -> None:
            _leave_ctrl_c_to_the_main_thread()
            while (job := jobs.get()) is not None and not stopped.is_set():
                try:
                    if batch_size == 1:
                        ((index, image),) = job
                        try:
                            outcome: ClassifyResult | FlowersError = self._classify(
                                image, top_k=top_k, reject=reject, cancelled=stopped
                            )
                        except FlowersError as exc:
                            outcome = exc
                        items = [self._item(index, image, outcome)]
                    else:
                        items = self._classify_batch(job, top_k=top_k, reject=reject, cancelled=stopped)
                except BaseException as exc:  # a bug: hand it to the caller rather than hang
                    done.put(exc)
                    continue
                done.put(items)

        in_flight = 0
        position = 0
        exhausted = False
        try:
            while True:
                while not exhausted and in_flight < concurrency:
                    job: list[tuple[int, ImageInput]] = []
                    while len(job) < batch_size:
                        try:
                            job.append((position, next(images)))
                        except StopIteration:
                            exhausted = True
                            break
                        position += 1
                    if not job:
                        break
                    if len(workers) <= in_flight:
                        # Daemon threads: an interrupted batch never holds up the interpreter's exit.
                        worker = threading.Thread(target=work, name=f"flowers-{len(workers)}", daemon=True)
                        worker.start()
                        workers.append(worker)
                    jobs.put(job)
                    in_flight += 1
                if in_flight == 0:
                    return
                finished = _get(done)
                in_flight -= 1
                if isinstance(finished, BaseException):
                    raise finished
                yield from sorted(finished, key=lambda item: item.index)
        finally:
            stopped.set()
            for _ in workers:
                jobs.put(None)

    def _classify_batch(
        self,
        entries: list[tuple[int, ImageInput]],
        *,
        top_k: int,
        reject: bool,
        cancelled: threading.Event | None = None,
    ) -> list[BatchItem]:
        """One item per entry, sent as batch requests (the retry policy applies to each request as a whole)."""
        items, batches = self._build_batches(entries, top_k=top_k, reject=reject)
        for batch in batches:
            items.extend(self._send_batch(batch, cancelled))
        return items

    def _send_batch(self, batch: OutgoingBatch, cancelled: threading.Event | None) -> list[BatchItem]:
        call = self._new_call(batch.request.what)
        items: list[BatchItem] = []
        try:
            for attempt in Retrying(sleep=_sleep, **self._retry_policy(call)):
                with attempt:
                    items = self._parse_batch(self._send(batch.request, call, cancelled), batch)
        except FlowersError as exc:
            return self._failed_batch(batch, exc)
        return items

    def wait_until_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for this process's request in flight to an RIE endpoint to end.

        After a stopped batch, the emulator may still be running the last
        invoke; a new process that sends one meanwhile would crash it. True when
        nothing is in flight (always, for API Gateway endpoints).
        """
        if self._lock is None:
            return True
        if not self._lock.acquire(timeout):
            return False
        self._lock.release()
        return True

    def classify_many(
        self,
        images: Iterable[ImageInput],
        *,
        top_k: int = DEFAULT_TOP_K,
        concurrency: int = DEFAULT_CONCURRENCY,
        reject: bool = False,
        on_progress: Callable[[BatchItem], None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> list[BatchItem]:
        """Classify many images concurrently; the items in input order, one error per failed item.

        ``batch_size`` up to 16 sends them in batch requests (see :meth:`iter_classify`).
        """
        items: list[BatchItem] = []
        stream = self.iter_classify(images, top_k=top_k, concurrency=concurrency, reject=reject, batch_size=batch_size)
        for item in stream:
            items.append(item)
            if on_progress is not None:
                on_progress(item)
        return sorted(items, key=lambda item: item.index)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at call time, so tests can record waits instead of sleeping


#: Longest a waiting caller goes without running Python's signal handlers.
_WAKE_EVERY = 0.25


def _get(results: queue.Queue[list[BatchItem] | BaseException]) -> list[BatchItem] | BaseException:
    """``results.get()`` that wakes every ``_WAKE_EVERY`` s, so a Ctrl-C is never stuck behind a held request.

    A thread blocked in an untimed ``get`` runs no signal handler until something arrives, and a
    service that holds every request in flight means nothing does.
    """
    while True:
        try:
            return results.get(timeout=_WAKE_EVERY)
        except queue.Empty:
            continue


def _leave_ctrl_c_to_the_main_thread() -> None:
    """Block SIGINT in a worker thread (POSIX), so the kernel delivers Ctrl-C to the main thread.

    Python runs signal handlers only in the main thread; a SIGINT the kernel hands to a worker
    blocked in ``recv`` does not wake the main thread from a blocking call (a write to a full
    pipe, say), so the Ctrl-C would wait until that call returns.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
