"""The whole local stack as one context manager: fronts, pool, runtimes, logs.

Ports are bound first, so a busy one fails at once (:class:`PortInUse`,
naming the option that changes it) before any process starts. Then the
runtimes start and warm up, and the fronts serve. :meth:`LocalStack.stop`
stops everything it started and removes the per-run log directory it made,
unless asked to keep it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Final, Literal

from flowers_serving.local.gateway import Gateway
from flowers_serving.local.gateway import default_limits as default_gateway_limits
from flowers_serving.local.invoke import InvokeFront
from flowers_serving.local.invoke import default_limits as default_invoke_limits
from flowers_serving.local.pool import FunctionPool, Runtime
from flowers_serving.local.pyruntime import PythonRuntime
from flowers_serving.local.rie import RieRuntime, find_rie_binary, rie_platform_reason
from flowers_serving.local.server import Limits

__all__ = ["ENV_RUNTIME", "LocalStack", "RuntimeKind", "choose_runtime"]

logger = logging.getLogger("flowers_serving.local")

RuntimeKind = Literal["auto", "rie", "python"]
#: Overrides ``runtime="auto"``: ``python`` runs the built-in runtime even where the RIE runs.
ENV_RUNTIME: Final = "FLOWERS_LOCAL_RUNTIME"
LOG_PREFIX: Final = "flowers-local-"


def choose_runtime(requested: RuntimeKind = "auto") -> tuple[Literal["rie", "python"], str | None]:
    """Which runtime to run, and the one note to show when it is not the one asked for."""
    if requested == "auto":
        env = os.environ.get(ENV_RUNTIME, "auto").strip().lower() or "auto"
        if env not in ("auto", "rie", "python"):
            raise ValueError(f"{ENV_RUNTIME} must be rie, python or auto, not {env!r}")
        requested = env  # type: ignore[assignment]
    if requested == "python":
        return "python", None
    reason = rie_platform_reason()
    if requested == "rie":
        if reason:
            raise RuntimeError(f"{reason}; run with --runtime python instead")
        find_rie_binary()  # fail now, with the hint, if it is missing
        return "rie", None
    if reason:
        return "python", (
            f"{reason}. Running the same handler behind the same fronts, queue and limits in the built-in "
            "Python runtime instead; use Linux (or the container image) for the real emulator."
        )
    find_rie_binary()
    return "rie", None


class LocalStack:
    """N execution environments behind the direct-invoke front and the API Gateway front."""

    def __init__(
        self,
        *,
        rie_port: int | None = None,
        gateway_port: int = 3000,
        workers: int = 1,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        keep_logs: bool = False,
        runtime: RuntimeKind = "auto",
        host: str = "127.0.0.1",
        timeout_s: int = 28,
        invoke_limits: Limits | None = None,
        gateway_limits: Limits | None = None,
        port: int | None = None,
    ) -> None:
        """``rie_port``: the direct-invoke port (default 8080; ``port`` is its older name). 0 picks a free port."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._rie_port = rie_port if rie_port is not None else (port if port is not None else 8080)
        self._gateway_port = gateway_port
        self._workers = workers
        self._env = env or {}
        self._requested_log_dir = log_dir
        self._keep_logs = keep_logs
        self._runtime: RuntimeKind = runtime
        self._host = host
        self._timeout_s = timeout_s
        self._invoke_limits = invoke_limits or default_invoke_limits()
        self._gateway_limits = gateway_limits or default_gateway_limits()
        self.log_dir: Path | None = None
        self.runtime_kind: Literal["rie", "python"] | None = None
        self.note: str | None = None
        self.workers: list[Runtime] = []
        self.pool: FunctionPool | None = None
        self.invoke_front: InvokeFront | None = None
        self.gateway: Gateway | None = None
        self._made_log_dir = False
        self._stopped = threading.Event()
        self._started = False

    @property
    def rie_url(self) -> str:
        """The direct-invoke URL users call (our front, never an RIE itself)."""
        assert self.invoke_front is not None, "start() first"
        return self.invoke_front.url

    @property
    def gateway_url(self) -> str:
        assert self.gateway is not None, "start() first"
        return self.gateway.url

    def start(self, *, warm: bool = True) -> LocalStack:
        """Bind, start and warm everything; once (a started stack is returned as it is)."""
        if self._started:
            return self
        self._started = True
        # A program that ends without stop() (an exception escaping it) must not leave emulators running:
        # they live in their own sessions, so nothing else would stop them.
        atexit.register(self.stop)
        try:
            # Bind both ports before anything else: a busy port is reported at once.
            self.pool = FunctionPool()
            self.invoke_front = InvokeFront(self.pool, host=self._host, port=self._rie_port, limits=self._invoke_limits)
            self.gateway = Gateway(self.pool, host=self._host, port=self._gateway_port, limits=self._gateway_limits)
            kind, self.note = choose_runtime(self._runtime)
            self.runtime_kind = kind
            if self.note:
                logger.warning("%s", self.note)
            self.log_dir = self._make_log_dir()
            self.workers = [self._runtime_for(kind, i) for i in range(self._workers)]
            self.pool.start(self.workers, warm_up=warm)
            if self._stopped.is_set():
                raise RuntimeError("the local stack was stopped while starting")
            self.invoke_front.start()
            self.gateway.start()
        except Exception:
            self.stop(failed=True)
            raise
        except BaseException:  # Ctrl-C while starting: a clean stop
            self.stop()
            raise
        return self

    def stop(self, *, failed: bool = False) -> None:
        """Stop the fronts, then every runtime; remove the log directory we made (kept on failure).

        Safe to call from another thread while :meth:`start` runs: what is starting is stopped.
        """
        self._stopped.set()
        atexit.unregister(self.stop)
        for front in (self.gateway, self.invoke_front):
            if front is not None:
                front.stop()
        if self.pool is not None:
            self.pool.stop()
        ours = self._made_log_dir and self.log_dir is not None and not self._keep_logs
        if ours and self.log_dir is not None:
            if not failed or not any(self.log_dir.iterdir()):
                shutil.rmtree(self.log_dir, ignore_errors=True)
            # Kept after a failure: the error names the directory, and a later stop() (flowers-serve's) keeps it.
            self._made_log_dir = False

    def _make_log_dir(self) -> Path:
        if self._requested_log_dir is not None:
            self._requested_log_dir.mkdir(parents=True, exist_ok=True)
            return self._requested_log_dir
        self._made_log_dir = True
        return Path(tempfile.mkdtemp(prefix=LOG_PREFIX))

    def _runtime_for(self, kind: str, index: int) -> Runtime:
        assert self.log_dir is not None
        log_file = self.log_dir / f"{'rie' if kind == 'rie' else 'python-runtime'}-{index + 1}.log"
        if kind == "rie":
            return RieRuntime(env=self._env, log_file=log_file, timeout_s=self._timeout_s)
        return PythonRuntime(env=self._env, log_file=log_file, timeout_s=self._timeout_s)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
