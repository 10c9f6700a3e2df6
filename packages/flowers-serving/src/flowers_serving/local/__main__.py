"""``flowers-serve``: run the local stack in the foreground until Ctrl-C.

Starts ``--workers`` real Lambda Runtime Interface Emulators (the first on
``--port``, 8080 like ``docker run -p 8080:8080`` of the container image, the
others on the following ports), warms each one with a ping, then serves the
API Gateway front on ``--gateway-port`` (3000, like ``sam local start-api``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

import requests

from flowers_serving.local.gateway import Gateway
from flowers_serving.local.rie import RieWorker

__all__ = ["LocalStack", "main"]


class LocalStack:
    """N RIE workers plus the gateway front; a context manager for tests and ``flowers-serve``."""

    def __init__(
        self,
        *,
        port: int = 8080,
        gateway_port: int = 3000,
        workers: int = 1,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="flowers-local-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir
        self.workers = [RieWorker(port + i, env=env, log_file=log_dir / f"rie-{port + i}.log") for i in range(workers)]
        self._gateway_port = gateway_port
        self.gateway: Gateway | None = None

    @property
    def rie_url(self) -> str:
        return self.workers[0].url

    @property
    def gateway_url(self) -> str:
        assert self.gateway is not None, "start() first"
        return self.gateway.url

    def start(self, *, warm: bool = True) -> LocalStack:
        try:
            for worker in self.workers:
                worker.start()
            if warm:
                for worker in self.workers:
                    # The first invoke starts the runtime and loads the model (the cold start).
                    response = requests.post(worker.url, json={"ping": True}, timeout=60)
                    if response.status_code != 200 or response.json().get("status") != "ok":
                        raise RuntimeError(f"worker {worker.url} did not warm up: {response.text[:300]}")
            self.gateway = Gateway([w.url for w in self.workers], port=self._gateway_port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        for worker in self.workers:
            worker.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flowers-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8080, help="first RIE invoke port (default 8080)")
    parser.add_argument("--gateway-port", type=int, default=3000, help="API Gateway front port (default 3000)")
    parser.add_argument("--workers", type=int, default=1, help="concurrent execution environments (default 1)")
    parser.add_argument("--model-dir", type=Path, help="serve this model directory instead of the packaged one")
    parser.add_argument("--log-dir", type=Path, help="where the RIE/handler logs go (default: a temp dir)")
    parser.add_argument(
        "--allow-loopback-urls",
        action="store_true",
        help="let URLs point at 127.0.0.0/8 (local testing only; never in AWS)",
    )
    args = parser.parse_args(argv)
    env: dict[str, str] = {}
    if args.model_dir:
        env["FLOWERS_MODEL_DIR"] = str(args.model_dir.resolve())
    if args.allow_loopback_urls:
        env["FLOWERS_ALLOW_LOOPBACK_URLS"] = "1"
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = LocalStack(
        port=args.port, gateway_port=args.gateway_port, workers=args.workers, env=env, log_dir=args.log_dir
    )
    started = time.perf_counter()
    try:
        stack.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"flowers-serve: could not start the local stack: {exc}", file=sys.stderr)
        return 1
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(stack.stop)
        print(
            f"RIE invoke:  POST {stack.rie_url}" + (f"  (+{args.workers - 1} more workers)" if args.workers > 1 else "")
        )
        print(f"API Gateway: POST {stack.gateway_url}/predict   GET {stack.gateway_url}/health")
        print(f"Web page:    {stack.gateway_url}/")
        print(f"logs:        {stack.log_dir}   (ready in {time.perf_counter() - started:.1f} s; Ctrl-C stops)")
        sys.stdout.flush()
        stop.wait()
        print("stopping...", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
