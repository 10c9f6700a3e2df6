"""Start and stop the real AWS Lambda Runtime Interface Emulator.

The RIE is a static binary shipped inside the ``aws-sam-cli`` wheel
(``samcli/local/rapid/aws-lambda-rie-x86_64``). It listens for
``POST /2015-03-31/functions/function/invocations`` and runs the bootstrap
command (``python -m awslambdaric flowers_serving.handler.lambda_handler``)
on the first invocation, exactly like the entrypoint of the Lambda base image.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib import util
from pathlib import Path
from typing import Final

__all__ = ["HANDLER", "INVOKE_PATH", "RieWorker", "find_rie_binary", "free_port"]

HANDLER: Final = "flowers_serving.handler.lambda_handler"
INVOKE_PATH: Final = "/2015-03-31/functions/function/invocations"
ENV_RIE_BINARY: Final = "FLOWERS_RIE_BINARY"


def find_rie_binary() -> Path:
    """``$FLOWERS_RIE_BINARY``, else the binary inside an installed ``aws-sam-cli``."""
    env = os.environ.get(ENV_RIE_BINARY)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_RIE_BINARY}={env} is not a file")
        return path
    arch = "arm64" if platform.machine() in ("arm64", "aarch64") else "x86_64"
    spec = util.find_spec("samcli")
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "local" / "rapid" / f"aws-lambda-rie-{arch}"
        if candidate.is_file():
            return candidate
    found = shutil.which("aws-lambda-rie")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "the Lambda Runtime Interface Emulator was not found: set FLOWERS_RIE_BINARY, or "
        "`pip install aws-sam-cli` (it ships the binary), or run `nox -s serve` which fetches it"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        self._env = env or {}
        self._timeout_s = timeout_s
        self._memory_mb = memory_mb
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: float = 15.0) -> RieWorker:
        binary = find_rie_binary()
        env = {
            **os.environ,
            **self._env,
            # What Lambda sets for the function; the RIE reads these.
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self._timeout_s),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self._memory_mb),
            "AWS_LAMBDA_FUNCTION_NAME": "flowers-predict",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "PYTHONUNBUFFERED": "1",
        }
        output = self._log_file.open("ab") if self._log_file else None
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
            stdout=output or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() takes the runtime down with it
        )
        if output:
            output.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the RIE on port {self.port} exited with code {self._process.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the RIE did not listen on port {self.port} within {wait:g} s")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=5)
        except ProcessLookupError:
            pass

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> RieWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
