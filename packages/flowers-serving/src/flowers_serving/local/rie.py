"""Start and stop the real AWS Lambda Runtime Interface Emulator.

The RIE is a static Linux binary shipped inside the ``aws-sam-cli`` wheel
(``samcli/local/rapid/aws-lambda-rie-x86_64`` and ``-arm64``). It listens for
``POST /2015-03-31/functions/function/invocations`` and runs the bootstrap
command (``python -m awslambdaric flowers_serving.handler.lambda_handler``)
on the first invocation, exactly like the entrypoint of the Lambda base image.

It serves one invoke at a time: a second concurrent one panics the emulator
(``ReserveFailed: AlreadyReserved``, then a nil-pointer dereference). So the
local stack never lets users reach it directly: :class:`RieRuntime` listens on
an internal port behind the stack's own front, which queues invokes.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from importlib import util
from pathlib import Path
from typing import Final

from flowers_serving.local.pool import Reply, RuntimeGone
from flowers_serving.local.ports import PortInUse, free_port, probe_owner

__all__ = [
    "HANDLER",
    "INVOKE_PATH",
    "RieRuntime",
    "RieWorker",
    "find_rie_binary",
    "free_port",
    "rie_arch",
    "rie_platform_reason",
]

HANDLER: Final = "flowers_serving.handler.lambda_handler"
INVOKE_PATH: Final = "/2015-03-31/functions/function/invocations"
ENV_RIE_BINARY: Final = "FLOWERS_RIE_BINARY"
_ARCHES: Final = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def rie_arch() -> str | None:
    """The RIE build for this machine (``x86_64`` or ``arm64``), or None if none exists."""
    return _ARCHES.get(platform.machine().lower())


def rie_platform_reason() -> str | None:
    """Why the real emulator cannot run on this machine, or None if it can."""
    if not sys.platform.startswith("linux"):
        return f"the real Lambda Runtime Interface Emulator needs Linux (this is {platform.system() or sys.platform})"
    if rie_arch() is None:
        machine = platform.machine()
        return f"the real Lambda Runtime Interface Emulator has builds for x86_64 and arm64 only (this is {machine})"
    return None


def find_rie_binary() -> Path:
    """``$FLOWERS_RIE_BINARY``, else the binary for this architecture inside an installed ``aws-sam-cli``."""
    reason = rie_platform_reason()
    if reason:
        raise FileNotFoundError(reason)
    env = os.environ.get(ENV_RIE_BINARY)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_RIE_BINARY}={env} is not a file")
        return path
    spec = util.find_spec("samcli")
    if spec and spec.submodule_search_locations:
        candidate = (
            Path(next(iter(spec.submodule_search_locations))) / "local" / "rapid" / f"aws-lambda-rie-{rie_arch()}"
        )
        if candidate.is_file():
            return candidate
    found = shutil.which("aws-lambda-rie")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "the Lambda Runtime Interface Emulator was not found: set FLOWERS_RIE_BINARY, or "
        "`pip install aws-sam-cli` (it ships the binary), or run `nox -s serve` which fetches it; "
        "`--runtime python` runs the handler without it"
    )


def answers_like_the_rie(port: int, timeout: float = 1.0) -> bool:
    """True if 127.0.0.1:port answers as the RIE does: Go's plain ``404 page not found`` at ``/``.

    Nothing is invoked; a foreign listener that happens to hold the port is not taken for the emulator.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status == 404 and response.read(64).startswith(b"404 page not found")
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _children(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc): the RIE puts its runtime in a process group of its own."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                # The command may hold spaces and parentheses: the fields after the last ")" are fixed.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


class RieWorker:
    """One RIE process (one Lambda execution environment) on 127.0.0.1:port."""

    def __init__(
        self,
        port: int,
        *,
        env: dict[str, str] | None = None,
        timeout_s: int = 28,
        memory_mb: int = 2048,
        log_file: Path | None = None,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}{INVOKE_PATH}"
        self.timeout_s = timeout_s
        self._env = env or {}
        self._memory_mb = memory_mb
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: float = 15.0) -> RieWorker:
        binary = find_rie_binary()
        owner = probe_owner("127.0.0.1", self.port)
        if owner is not None:
            raise PortInUse("127.0.0.1", self.port, "", owner)
        env = {
            **os.environ,
            **self._env,
            # What Lambda sets for the function; the RIE reads these.
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout_s),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self._memory_mb),
            "AWS_LAMBDA_FUNCTION_NAME": "flowers-predict",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "PYTHONUNBUFFERED": "1",
        }
        output = self.log_file.open("ab") if self.log_file else None
        self._process = subprocess.Popen(
            [
                str(binary),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{self.port}",
                # Each RIE also serves the Runtime API to its runtime, on 9001 by default:
                # give every worker its own so that several can run side by side.
                "--runtime-api-address",
                f"127.0.0.1:{free_port()}",
                sys.executable,
                "-m",
                "awslambdaric",
                HANDLER,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it in order
        )
        if output:
            output.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the RIE on port {self.port} exited with code {self._process.returncode}")
            # Listening is not enough: the port must answer as the RIE does, from our process.
            if answers_like_the_rie(self.port) and self._process.poll() is None:
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the RIE did not listen on port {self.port} within {wait:g} s")

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        children = _children(process.pid)
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the RIE stops its runtime itself
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass
        for pid in children:  # whatever the RIE did not take down with it
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> RieWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RieRuntime:
    """An execution environment of the local stack: an RIE on an internal port, restartable."""

    kind: Final = "RIE"

    def __init__(self, *, env: dict[str, str] | None = None, log_file: Path | None = None, timeout_s: int = 28) -> None:
        self._env = env
        self._log_file = log_file
        self.timeout_s = timeout_s
        self._worker: RieWorker | None = None

    @property
    def port(self) -> int | None:
        return self._worker.port if self._worker else None

    @property
    def pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    @property
    def returncode(self) -> int | None:
        return self._worker.returncode if self._worker else None

    def describe(self) -> str:
        where = f" on 127.0.0.1:{self.port}" if self.port else ""
        log = f" (log: {self._log_file})" if self._log_file else ""
        return f"the RIE{where}{log}"

    def start(self) -> None:
        last: Exception | None = None
        for _ in range(3):  # an internal port can be taken between choosing it and the RIE binding it
            worker = RieWorker(free_port(), env=self._env, log_file=self._log_file, timeout_s=self.timeout_s)
            self._worker = worker
            try:
                worker.start()
                return
            except (PortInUse, RuntimeError) as exc:
                worker.stop()
                last = exc
        assert last is not None
        raise last

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    def alive(self) -> bool:
        return self._worker is not None and self._worker.alive()

    def invoke(self, payload: bytes, timeout: float) -> Reply:
        port = self.port
        if port is None:
            raise RuntimeGone("was never started", sent=False)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            try:
                conn.connect()
            except TimeoutError:
                raise
            except OSError as exc:
                raise RuntimeGone(f"refused the connection ({exc})", sent=False) from None
            try:
                conn.request("POST", INVOKE_PATH, body=payload, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                body = response.read()
            except TimeoutError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                raise RuntimeGone(f"dropped the invoke ({exc!r})", sent=True) from None
            return Reply(response.status, body, response.getheader("Content-Type") or "application/json")
        finally:
            conn.close()
