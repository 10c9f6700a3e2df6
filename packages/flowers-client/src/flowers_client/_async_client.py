"""The asyncio client: the same surface as :class:`FlowersClient`, on ``httpx.AsyncClient``.

What to send, what to retry and how to read replies live in ``_base_client``;
this module only awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from types import TracebackType

import httpx
from tenacity import AsyncRetrying

from flowers_client._base_client import (
    NOT_GIVEN,
    BaseClient,
    Call,
    Outgoing,
    OutgoingBatch,
    ReplyReader,
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

__all__ = ["AsyncFlowersClient"]


class AsyncFlowersClient(BaseClient):
    """The asyncio twin of :class:`~flowers_client.FlowersClient`: same settings, errors and retry policy.

    ::

        async with AsyncFlowersClient() as client:
            result = await client.classify("rose.jpg")
            async for item in client.iter_classify(paths, concurrency=8):
                ...
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
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            endpoint, api_key=api_key, timeout=timeout, max_retries=max_retries, deadline=deadline, transport=transport
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)
        )

    def with_options(
        self,
        *,
        timeout: Timeout | _NotGiven = NOT_GIVEN,
        max_retries: int | _NotGiven = NOT_GIVEN,
        deadline: float | _NotGiven | None = NOT_GIVEN,
    ) -> AsyncFlowersClient:
        """A client with some settings changed that shares this one's connections."""
        return AsyncFlowersClient(**self._options(timeout, max_retries, deadline), http_client=self._http)

    async def aclose(self) -> None:
        """Close the connection pool, unless it was the caller's."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncFlowersClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def classify(self, image: ImageInput, *, top_k: int = DEFAULT_TOP_K, reject: bool = False) -> ClassifyResult:
        """Classify one image: an http(s) URL, a path, bytes or a binary file object."""
        out = self._build_request(image, top_k=top_k, reject=reject)
        call = self._new_call(out.what)
        result: ClassifyResult | None = None
        async for attempt in AsyncRetrying(sleep=_sleep, **self._retry_policy(call)):
            with attempt:
                result = self._parse(await self._send(out, call))
        assert result is not None  # tenacity re-raises the last error otherwise
        return result

    async def _send(self, out: Outgoing, call: Call) -> RawResponse:
        if self._lock is not None and not await self._lock.acquire_async(call.remaining()):
            raise APITimeoutError(
                f"{out.what}: waited past the deadline for {self.endpoint} (an RIE serves one invoke at a time)"
            )
        try:
            timeout, budget = self._attempt_timeout(call)
            self._log_request(out)
            started = time.monotonic()
            reader = self._reader(budget, call)
            try:
                # The budget bounds the whole exchange, however slowly the bytes arrive.
                response = await asyncio.wait_for(self._exchange(out, timeout, reader), budget)
            except asyncio.TimeoutError:
                raise self._timed_out(budget, call) from None
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, budget, call) from exc
        finally:
            if self._lock is not None:
                self._lock.release()
        return self._raw(response, reader.content, started)

    async def _exchange(self, out: Outgoing, timeout: httpx.Timeout, reader: ReplyReader) -> httpx.Response:
        request = self._http.build_request(
            "POST", self.endpoint, content=out.content, headers=out.headers, timeout=timeout
        )
        response = await self._http.send(request, stream=True)
        try:
            async for chunk in response.aiter_bytes():
                reader.add(chunk)
        finally:
            await response.aclose()
        return response

    async def wait_until_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for this process's request in flight to an RIE endpoint to end."""
        if self._lock is None:
            return True
        if not await self._lock.acquire_async(timeout):
            return False
        self._lock.release()
        return True

    def iter_classify(
        self,
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        *,
        top_k: int = DEFAULT_TOP_K,
        concurrency: int = DEFAULT_CONCURRENCY,
        reject: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> AsyncIterator[BatchItem]:
        """Yield each :data:`BatchItem` as soon as it is done (``item.index``: its input's position).

        At most ``concurrency`` requests are in flight; ``images`` (a plain or
        an async iterable) is read lazily. Leaving the loop early cancels the
        requests in flight (use ``contextlib.aclosing`` to have that happen at
        once rather than when the generator is collected). ``batch_size``
        (1-16): images per request, as in :meth:`FlowersClient.iter_classify`
        (on the RIE transport both are 1: the inputs go out in order).
        """
        concurrency = self._concurrency(concurrency)
        return self._iter_classify(images, top_k, concurrency, reject, self._batch_size(batch_size))

    async def _iter_classify(
        self,
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        top_k: int,
        concurrency: int,
        reject: bool,
        batch_size: int = 1,
    ) -> AsyncIterator[BatchItem]:
        source = _aiter(images)
        pending: set[asyncio.Task[list[BatchItem]]] = set()
        position = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < concurrency:
                    job: list[tuple[int, ImageInput]] = []
                    while len(job) < batch_size:
                        try:
                            job.append((position, await source.__anext__()))
                        except StopAsyncIteration:
                            exhausted = True
                            break
                        position += 1
                    if not job:
                        break
                    pending.add(asyncio.ensure_future(self._classify_job(job, top_k, reject, batch_size)))
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                finished = [item for task in done for item in task.result()]
                for item in sorted(finished, key=lambda item: item.index):
                    yield item
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _classify_job(
        self, job: list[tuple[int, ImageInput]], top_k: int, reject: bool, batch_size: int
    ) -> list[BatchItem]:
        if batch_size == 1:
            ((index, image),) = job
            try:
                outcome: ClassifyResult | FlowersError = await self.classify(image, top_k=top_k, reject=reject)
            except FlowersError as exc:
                outcome = exc
            return [self._item(index, image, outcome)]
        items, batches = self._build_batches(job, top_k=top_k, reject=reject)
        for batch in batches:
            items.extend(await self._send_batch(batch))
        return items

    async def _send_batch(self, batch: OutgoingBatch) -> list[BatchItem]:
        call = self._new_call(batch.request.what)
        items: list[BatchItem] = []
        try:
            async for attempt in AsyncRetrying(sleep=_sleep, **self._retry_policy(call)):
                with attempt:
                    items = self._parse_batch(await self._send(batch.request, call), batch)
        except FlowersError as exc:
            return self._failed_batch(batch, exc)
        return items

    async def classify_many(
        self,
        images: Iterable[ImageInput] | AsyncIterable[ImageInput],
        *,
        top_k: int = DEFAULT_TOP_K,
        concurrency: int = DEFAULT_CONCURRENCY,
        reject: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> list[BatchItem]:
        """Classify many images concurrently; the items in input order, one error per failed item.

        ``batch_size`` up to 16 sends them in batch requests (see :meth:`iter_classify`).
        """
        stream = self.iter_classify(images, top_k=top_k, concurrency=concurrency, reject=reject, batch_size=batch_size)
        items = [item async for item in stream]
        return sorted(items, key=lambda item: item.index)


async def _aiter(images: Iterable[ImageInput] | AsyncIterable[ImageInput]) -> AsyncIterator[ImageInput]:
    if isinstance(images, AsyncIterable):
        async for image in images:
            yield image
    else:
        for image in images:
            yield image


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)  # looked up at call time, so tests can record waits instead of sleeping
