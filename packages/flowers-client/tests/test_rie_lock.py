"""One invoke at a time per RIE endpoint: the FIFO lock, and the clients over real loopback HTTP.

The fake service drops the connection and counts an overlap when a second
invoke reaches its RIE path while one is running, as the real emulator breaks.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from concurrent.futures import ThreadPoolExecutor

from fake_service import FakeService

import flowers_client
from flowers_client._endpoint_lock import EndpointLock, endpoint_lock


def test_one_lock_per_endpoint_url() -> None:
    url = "http://127.0.0.1:8080/2015-03-31/functions/function/invocations"
    assert endpoint_lock(url) is endpoint_lock(url.replace("127.0.0.1", "127.0.0.1") + "/")
    assert endpoint_lock(url) is not endpoint_lock(url.replace("8080", "8081"))


def test_lock_is_fifo_and_times_out() -> None:
    lock = EndpointLock()
    assert lock.acquire()
    order: list[int] = []

    def wait_turn(n: int, ready: threading.Event) -> None:
        ready.set()
        assert lock.acquire(30)
        order.append(n)
        lock.release()

    threads = []
    for n in range(5):
        ready = threading.Event()
        thread = threading.Thread(target=wait_turn, args=(n, ready))
        thread.start()
        ready.wait()
        # Wait until this thread is queued before starting the next, so arrival order is known.
        while len(lock._waiters) < n + 1:
            threading.Event().wait(0.001)
        threads.append(thread)
    assert not lock.acquire(0.01)  # held, with a queue: a short wait gives up
    lock.release()
    for thread in threads:
        thread.join(30)
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked


def test_a_cancelled_async_waiter_passes_the_lock_on() -> None:
    lock = EndpointLock()

    async def go() -> bool:
        assert await lock.acquire_async()
        waiter = asyncio.ensure_future(lock.acquire_async())
        await asyncio.sleep(0)
        waiter.cancel()
        second = asyncio.ensure_future(lock.acquire_async(5))
        await asyncio.sleep(0)
        lock.release()
        got = await second
        assert not await lock.acquire_async(0.01)  # still held by `second`
        lock.release()
        return got

    assert asyncio.run(go())
    assert not lock.locked


def test_batches_never_overlap_on_one_rie(service: FakeService) -> None:
    images = [f"sleep=0.01 photo {i}".encode() for i in range(24)]
    with flowers_client.FlowersClient(service.rie_url, max_retries=0) as client:
        items = client.classify_many(images, concurrency=8)
    assert all(item.ok for item in items), [item.error for item in items if not item.ok]
    assert service.rie_overlaps == 0
    assert service.rie_max_in_flight == 1


def test_threads_clients_and_event_loops_share_the_lock(service: FakeService) -> None:
    images = [f"sleep=0.005 photo {i}".encode() for i in range(12)]

    def sync_batch() -> list[bool]:
        with flowers_client.FlowersClient(service.rie_url, max_retries=0) as client:
            return [item.ok for item in client.iter_classify(images, concurrency=4)]

    def async_batch() -> list[bool]:
        async def go() -> list[bool]:
            async with flowers_client.AsyncFlowersClient(service.rie_url, max_retries=0) as client:
                return [item.ok for item in await client.classify_many(images, concurrency=4)]

        return asyncio.run(go())

    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(job) for job in (sync_batch, sync_batch, async_batch, async_batch)]
        outcomes = [result.result(timeout=120) for result in results]
    assert all(all(batch) for batch in outcomes)
    assert service.rie_overlaps == 0
    assert len(service.requests) == 48


def test_the_gateway_path_of_the_same_service_works_alongside(service: FakeService) -> None:
    with flowers_client.FlowersClient(service.url) as client:
        assert client.transport == "api-gateway"
        assert client.classify(b"photo").best.label


def test_the_fake_rie_notices_overlapping_invokes(service: FakeService) -> None:
    """Without the client's lock, concurrent invokes do overlap: the checks above can fail."""
    import base64

    import httpx

    body = {"image": base64.b64encode(b"sleep=0.2 photo").decode(), "top_k": 1}

    def invoke(_: int) -> int | None:
        try:
            return http.post(service.rie_url, json=body, timeout=30).status_code
        except httpx.HTTPError:  # the emulator dropped it
            return None

    with httpx.Client() as http, ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(invoke, range(4)))
    assert service.rie_overlaps > 0
    assert None in statuses


def test_a_stopped_batch_sends_nothing_more_to_the_rie(service: FakeService) -> None:
    """Stopping the batch sends nothing more; the invoke in flight ends, and wait_until_idle says when."""
    images = [b"hold first"] + [f"photo {i}".encode() for i in range(10)]
    client = flowers_client.FlowersClient(service.rie_url, max_retries=0)
    stream = client.iter_classify(images, concurrency=6)
    first: list[int] = []
    consumer = threading.Thread(target=lambda: first.append(next(stream).index))
    consumer.start()
    for _ in range(3000):  # the held one goes out (bounded wait)
        if service.requests:
            break
        threading.Event().wait(0.01)
    assert not client.wait_until_idle(0.05)  # the held invoke is still in flight
    service.release()
    consumer.join(30)
    assert first == [0]
    stream.close()
    assert client.wait_until_idle(30)
    threading.Event().wait(0.2)  # time for a wrongly scheduled request to arrive
    assert len(service.requests) == 1
    assert service.rie_overlaps == 0


def test_rie_inputs_go_out_in_order_whatever_the_concurrency(service: FakeService) -> None:
    """Several requests queued for one RIE would reach its lock in any order: the client sends one at a time."""
    images = [f"sleep=0.005 photo {i}".encode() for i in range(16)]
    with flowers_client.FlowersClient(service.rie_url, max_retries=0) as client:
        finished = [item.index for item in client.iter_classify(images, concurrency=8)]
    assert finished == list(range(16))
    sent = [base64.b64decode(request["body"]["image"]) for request in service.requests]
    assert sent == images
