"""Invokes queued onto execution environments, one at a time each, as Lambda runs them.

Both fronts (the direct-invoke port and the API Gateway front) invoke the
function through one :class:`FunctionPool`. It refuses payloads over Lambda's
invoke limit (413), hands each invoke to a free runtime or waits for one, and
keeps the runtimes alive: one that exits (idle or mid-invoke) or stops
answering is restarted by a supervisor thread, with a log line, while the
request it failed gets a clear 5xx at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Protocol

from flowers_serving.local.messages import Response, json_error

__all__ = [
    "INVOKE_PAYLOAD_LIMIT",
    "Busy",
    "FunctionPool",
    "InvokeRefused",
    "Reply",
    "Runtime",
    "RuntimeGone",
    "warm",
]

logger = logging.getLogger("flowers_serving.local")

#: Lambda's limit on a synchronous invoke's request payload (6 MB).
INVOKE_PAYLOAD_LIMIT: Final = 6_291_456
#: Beyond the function timeout: the RIE answers "Task timed out" itself, a little after it.
ANSWER_GRACE_S: Final = 5.0
WARM_TIMEOUT_S: Final = 60.0
PING: Final = b'{"ping": true}'


@dataclass(frozen=True)
class Reply:
    """What an invoke returned: the RIE's HTTP status (200 when the function ran) and its bytes."""

    status: int
    body: bytes
    content_type: str = "application/json"


class RuntimeGone(Exception):
    """The runtime died or dropped the connection (the message says how, after the runtime's name).

    ``sent``: the payload may have reached the function.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Runtime(Protocol):
    """One execution environment: the RIE, or the built-in Python runtime where no RIE runs."""

    timeout_s: int

    @property
    def kind(self) -> str: ...

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def alive(self) -> bool: ...
    def describe(self) -> str: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def port(self) -> int | None: ...

    def invoke(self, payload: bytes, timeout: float) -> Reply:
        """Raises :class:`RuntimeGone`, or ``TimeoutError`` when no answer came within ``timeout``."""
        ...


class InvokeRefused(Exception):
    """The invoke was not (fully) run: answer this status and code instead of the function's reply."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self) -> Response:
        return json_error(self.status, self.code, self.message, self.headers)


class Busy(InvokeRefused):
    """No runtime became free in time."""


def warm(runtime: Runtime, timeout: float = WARM_TIMEOUT_S) -> None:
    """Invoke a ping: the first invoke starts the runtime and loads the model (the cold start)."""
    reply = runtime.invoke(PING, timeout)
    try:
        ok = reply.status == 200 and json.loads(reply.body).get("status") == "ok"
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        raise RuntimeError(f"{runtime.describe()} did not warm up: {reply.body[:300]!r}")


class FunctionPool:
    """N runtimes; :meth:`invoke` runs one invoke on a free one, waiting for one if all are busy."""

    def __init__(self, *, retry_s: float = 2.0) -> None:
        self.runtimes: list[Runtime] = []
        self._retry_s = retry_s
        self._cond = threading.Condition()
        self._idle: list[Runtime] = []
        self._broken: list[tuple[Runtime, str]] = []
        self._stopping = False
        self._last_failure: str | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------------------------------

    def start(self, runtimes: Sequence[Runtime], *, warm_up: bool = True) -> FunctionPool:
        """Start (and warm) every runtime, then serve invokes; the fronts may be built before this."""
        if not runtimes:
            raise ValueError("the pool needs at least one runtime")
        with self._cond:
            self.runtimes = list(runtimes)

        def start_one(runtime: Runtime) -> None:
            with self._cond:
                if self._stopping:
                    raise RuntimeError("the pool was stopped while starting")
            runtime.start()
            if warm_up:
                warm(runtime)

        # Side by side: N cold starts take about as long as one where there are cores for them.
        executor = ThreadPoolExecutor(len(self.runtimes), thread_name_prefix="runtime-start")
        outcomes = [executor.submit(start_one, runtime) for runtime in self.runtimes]
        try:
            for outcome in outcomes:
                failure = outcome.exception()
                if failure is not None:
                    raise failure
        except BaseException:  # a failure, or Ctrl-C while waiting
            with self._cond:
                self._stopping = True  # start threads still running give up at their next step
            for runtime in self.runtimes:
                runtime.stop()
            executor.shutdown(wait=True)
            for runtime in self.runtimes:
                runtime.stop()  # what a start thread began meanwhile
            raise
        finally:
            executor.shutdown(wait=False)
        with self._cond:
            self._idle = list(self.runtimes)
        self._thread = threading.Thread(target=self._supervise, name="runtime-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        # Stopping first also interrupts a restart in progress; the second pass catches a process it started meanwhile.
        for runtime in self.runtimes:
            runtime.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for runtime in self.runtimes:
            runtime.stop()

    # --- invokes ---------------------------------------------------------------------------------------------------

    def invoke(self, payload: bytes, *, wait_s: float, deadline: float | None = None) -> Reply:
        """Run one invoke: wait up to ``wait_s`` for a free runtime, answer by ``deadline`` (monotonic) if given."""
        if len(payload) > INVOKE_PAYLOAD_LIMIT:
            raise InvokeRefused(
                413,
                "payload_too_large",
                f"the invoke payload is {len(payload):,} bytes, over Lambda's limit of {INVOKE_PAYLOAD_LIMIT} "
                "bytes (6 MB) for a synchronous invoke",
            )
        wait_until = time.monotonic() + wait_s
        if deadline is not None:
            wait_until = min(wait_until, deadline)
        for attempt in range(3):
            runtime = self._acquire(wait_until)
            timeout = runtime.timeout_s + ANSWER_GRACE_S
            if deadline is not None:
                timeout = min(timeout, max(deadline - time.monotonic(), 0.001))
            try:
                reply = runtime.invoke(payload, timeout)
            except RuntimeGone as exc:
                self._release(runtime, problem=str(exc))
                if not exc.sent and attempt < 2:
                    continue  # nothing reached the function: safe to run it on the restarted one
                raise InvokeRefused(
                    502,
                    "internal_error",
                    f"{runtime.describe()} exited during this invoke; it is being restarted, retry the request",
                ) from None
            except TimeoutError:
                self._release(runtime, problem=f"did not answer within {timeout:.0f} s")
                raise InvokeRefused(
                    504, "integration_timeout", f"the function did not answer within {timeout:.0f} s"
                ) from None
            self._release(runtime)
            return reply
        raise AssertionError("unreachable")

    def _acquire(self, until: float) -> Runtime:
        with self._cond:
            while True:
                if self._stopping:
                    raise InvokeRefused(503, "internal_error", "the local stack is stopping")
                while self._idle:
                    runtime = self._idle.pop(0)
                    if runtime.alive():
                        return runtime
                    self._broken.append((runtime, f"exited (code {runtime.returncode})"))
                    self._cond.notify_all()
                remaining = until - time.monotonic()
                if remaining <= 0:
                    why = f"; the last restart failed: {self._last_failure}" if self._last_failure else ""
                    raise Busy(
                        429,
                        "rate_limited",
                        f"all {len(self.runtimes)} execution environment(s) stayed busy{why}",
                        {"Retry-After": "1"},
                    )
                self._cond.wait(remaining)

    def _release(self, runtime: Runtime, problem: str | None = None) -> None:
        with self._cond:
            if self._stopping:
                return
            if problem is None and runtime.alive():
                self._idle.append(runtime)
            else:
                self._broken.append((runtime, problem or f"exited (code {runtime.returncode})"))
            self._cond.notify_all()

    # --- supervision -----------------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        while True:
            with self._cond:
                # An idle runtime that died is found here, not only when a request picks it up.
                for runtime in [r for r in self._idle if not r.alive()]:
                    self._idle.remove(runtime)
                    self._broken.append((runtime, f"exited (code {runtime.returncode})"))
                if self._stopping:
                    return
                if not self._broken:
                    self._cond.wait(0.25)
                    continue
                runtime, problem = self._broken.pop(0)
            self._restart(runtime, problem)

    def _restart(self, runtime: Runtime, problem: str) -> None:
        name = runtime.describe()
        logger.warning("%s %s; restarting it", name, problem)
        started = time.monotonic()
        try:
            runtime.stop()
            runtime.start()
            warm(runtime)
        except Exception as exc:
            with self._cond:
                if self._stopping:
                    return
                self._last_failure = str(exc)
                logger.error("could not restart %s: %s; trying again in %g s", name, exc, self._retry_s)
                self._cond.wait(self._retry_s)
                self._broken.append((runtime, "could not be restarted"))
            return
        with self._cond:
            if self._stopping:
                return
            self._last_failure = None
            self._idle.append(runtime)
            self._cond.notify_all()
        logger.info("restarted %s in %.1f s", runtime.describe(), time.monotonic() - started)
