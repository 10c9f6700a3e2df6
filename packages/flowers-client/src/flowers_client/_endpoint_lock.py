"""One invoke at a time per Lambda RIE endpoint, across threads and event loops.

The Runtime Interface Emulator runs one invoke at a time; a second concurrent
invoke makes it panic and the emulator stays broken. So every client in this
process that talks to the same RIE URL shares one :class:`EndpointLock`, and
holds it for exactly one HTTP exchange (not across retry waits). Concurrency
through the RIE comes from the local gateway's workers (``flowers-serve
--workers N``, one RIE each) or from API Gateway in AWS, never from several
invokes on one emulator. The lock cannot see other processes.

The lock is FIFO: requests go out in the order they asked, so a batch's early
inputs finish early and the CLI can print them at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Final
from urllib.parse import urlsplit

__all__ = ["EndpointLock", "endpoint_lock"]


class _Waiter:
    """Someone queued for the lock: a thread (an Event) or a task (a future on its loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.granted = False
        self.event = threading.Event()
        self.loop = loop
        self.future: asyncio.Future[None] | None = loop.create_future() if loop is not None else None

    def wake(self) -> bool:
        """Called under the lock's mutex; False if this waiter can no longer take it."""
        if self.future is None:
            self.granted = True
            self.event.set()
            return True
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # its event loop is closed: nobody is waiting any more
            return False
        self.granted = True
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class EndpointLock:
    """A FIFO mutex that threads (:meth:`acquire`) and asyncio tasks (:meth:`acquire_async`) share."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[_Waiter] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            waiter = _Waiter()
            self._waiters.append(waiter)
        waiter.event.wait(timeout)
        with self._mutex:
            if waiter.granted:  # possibly granted just as the wait timed out: we own it now
                return True
            self._waiters.remove(waiter)
            return False

    async def acquire_async(self, timeout: float | None = None) -> bool:
        loop = asyncio.get_running_loop()
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            waiter = _Waiter(loop)
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except asyncio.TimeoutError:
            self._abandon(waiter)
            return False
        except BaseException:  # cancelled: leave the queue, or pass the lock on
            self._abandon(waiter)
            raise
        return True

    def _abandon(self, waiter: _Waiter) -> None:
        with self._mutex:
            granted = waiter.granted
            if not granted:
                self._waiters.remove(waiter)
        if granted:
            self.release()

    def release(self) -> None:
        with self._mutex:
            while self._waiters:
                if self._waiters.popleft().wake():
                    return  # handed straight to the next in line: _held stays True
            self._held = False

    @property
    def locked(self) -> bool:
        return self._held


_LOCKS: Final[dict[tuple[str, str, int, str], EndpointLock]] = {}
_LOCKS_MUTEX: Final = threading.Lock()


def endpoint_lock(endpoint: str) -> EndpointLock:
    """The process-wide lock for one endpoint URL (scheme, host, port and path; case of the host ignored)."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = (parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/"))
    with _LOCKS_MUTEX:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = EndpointLock()
        return lock
