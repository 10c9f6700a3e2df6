"""The built-in Python runtime: the handler without the RIE, where no RIE can run (macOS, Windows).

A child process (``python -m flowers_serving.local.pyruntime``) imports
``lambda_handler`` (the init phase) and calls it once per invoke, as ``awslambdaric`` would;
events and replies travel over its stdin/stdout as length-prefixed frames, and
everything the handler prints goes to the log file. Replies mimic the RIE's:
the handler's JSON, an ``errorType`` object for an exception that escaped or
input that is not JSON, and ``Task timed out after N seconds`` (after which
the child is killed and the pool starts a fresh one, a cold start as in
Lambda). The stack puts it behind the same fronts, queue and limits as the
RIE; ``flowers-serve --runtime python`` (or ``FLOWERS_LOCAL_RUNTIME=python``)
forces it anywhere, which is how it is tested on Linux too.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from flowers_serving.local.pool import Reply, RuntimeGone

__all__ = ["PythonRuntime"]

_HEADER: Final = struct.Struct(">I")
_READY: Final = b"ready"
#: Importing the handler loads the model; on a busy machine that takes seconds.
INIT_TIMEOUT_S: Final = 60.0


def _write_frame(stream: IO[bytes], data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


class PythonRuntime:
    """One execution environment run by the built-in Python runtime."""

    kind: Final = "Python runtime"
    port: Final = None

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        log_file: Path | None = None,
        timeout_s: int = 28,
        memory_mb: int = 2048,
    ) -> None:
        self._env = env or {}
        self._log_file = log_file
        self.timeout_s = timeout_s
        self._memory_mb = memory_mb
        self._process: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[bytes | None] = queue.Queue()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    def describe(self) -> str:
        details = [f"pid {self.pid}"] if self.pid else []
        details += [f"log: {self._log_file}"] if self._log_file else []
        return "the Python runtime" + (f" ({'; '.join(details)})" if details else "")

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        env = {
            **os.environ,
            **self._env,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout_s),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self._memory_mb),
            "AWS_LAMBDA_FUNCTION_NAME": "flowers-predict",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "PYTHONUNBUFFERED": "1",
        }
        log = self._log_file.open("ab") if self._log_file else None
        self._process = subprocess.Popen(
            [sys.executable, "-m", "flowers_serving.local.pyruntime"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log or subprocess.DEVNULL,
            # Its own process group, as the RIE: Ctrl-C reaches the stack, which stops it in order.
            start_new_session=sys.platform != "win32",
        )
        if log:
            log.close()
        self._replies = replies = queue.Queue[bytes | None]()
        assert self._process.stdout is not None
        threading.Thread(
            target=self._read_replies, args=(self._process.stdout, replies), name="pyruntime-reader", daemon=True
        ).start()
        try:
            first = replies.get(timeout=INIT_TIMEOUT_S)
        except queue.Empty:
            first = None
        if first != _READY:
            self.stop()
            raise RuntimeError(f"{self.describe()} did not start (exit code {self.returncode})")

    @staticmethod
    def _read_replies(stream: IO[bytes], replies: queue.Queue[bytes | None]) -> None:
        while True:
            try:
                frame = _read_frame(stream)
            except (OSError, ValueError):
                frame = None
            replies.put(frame)
            if frame is None:
                return

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        if process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the child's loop ends at end of input
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def invoke(self, payload: bytes, timeout: float) -> Reply:
        process = self._process
        if process is None or process.stdin is None or process.poll() is not None:
            raise RuntimeGone("is not running", sent=False)
        try:
            _write_frame(process.stdin, payload)
        except (OSError, ValueError) as exc:
            raise RuntimeGone(f"did not take the invoke ({exc!r})", sent=False) from None
        try:
            reply = self._replies.get(timeout=min(timeout, self.timeout_s))
        except queue.Empty:
            # As Lambda does: the environment that timed out is thrown away.
            process.kill()
            process.wait(timeout=5)
            if timeout < self.timeout_s:
                raise TimeoutError from None  # the caller gave up first (API Gateway's 29 s)
            return Reply(200, f"Task timed out after {self.timeout_s:.2f} seconds".encode(), "text/plain")
        if reply is None:
            raise RuntimeGone(f"exited (code {process.wait()})", sent=True)
        return Reply(200, reply, "application/json")


@dataclass
class _Context:
    """The parts of the Lambda context object a handler reads."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "flowers-predict")
    function_version: str = "$LATEST"
    memory_limit_in_mb: str = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:flowers-predict"
    log_group_name: str = "/aws/lambda/flowers-predict"
    log_stream_name: str = "local"
    deadline: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _error(error_type: str, message: str, trace: list[str] | None = None) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": trace or []}).encode()


def _child() -> int:
    """The child's loop: one frame in, one frame out, until the parent closes our input."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the handler prints (its JSON logs) goes to the log file, never into the frames
    events = sys.stdin.buffer
    timeout_s = int(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "28"))
    # The init phase, before any invoke and outside its timeout, as Lambda runs it: the cold start.
    from flowers_serving.handler import lambda_handler as handler

    _write_frame(replies, _READY)
    while (payload := _read_frame(events)) is not None:
        context = _Context(deadline=time.monotonic() + timeout_s)
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError as exc:
            _write_frame(replies, _error("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}"))
            continue
        try:
            result = handler(event, context)
        except Exception as exc:
            trace = traceback.format_tb(exc.__traceback__)
            _write_frame(replies, _error(type(exc).__name__, str(exc), trace))
            continue
        try:
            _write_frame(replies, json.dumps(result).encode())
        except (TypeError, ValueError) as exc:
            _write_frame(replies, _error("Runtime.MarshalError", f"Unable to marshal response: {exc}"))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
