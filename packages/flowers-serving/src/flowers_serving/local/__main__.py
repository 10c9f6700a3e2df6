"""``flowers-serve``: run the local stack in the foreground until Ctrl-C.

The API Gateway front on ``--port`` (3000, like ``sam local start-api``) and
the direct-invoke URL on ``--rie-port`` (8080, like ``docker run -p 8080:8080``
of the container image), both answered by the stack itself and run on
``--workers`` execution environments: real Lambda Runtime Interface Emulators
on Linux, the built-in Python runtime elsewhere. Ctrl-C, SIGTERM or SIGHUP
stops everything it started.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from flowers_serving.local.server import PortInUse
from flowers_serving.local.stack import LocalStack

__all__ = ["LocalStack", "main"]

EXIT_USAGE = 2  # also a busy port: the fix is in the command line


#: Each stops everything the stack started (no RIE or runtime process is left behind).
STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowers-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=3000, help="API Gateway front port (default 3000; 0: any free)")
    parser.add_argument("--gateway-port", dest="port", type=int, help=argparse.SUPPRESS)  # the older name
    parser.add_argument("--rie-port", type=int, default=8080, help="direct-invoke port (default 8080; 0: any free)")
    parser.add_argument("--workers", type=int, default=1, help="concurrent execution environments (default 1)")
    parser.add_argument(
        "--runtime",
        choices=("auto", "rie", "python"),
        default="auto",
        help="rie: the real Lambda emulator (Linux); python: the built-in runtime; auto (default): rie where it runs",
    )
    parser.add_argument("--model-dir", type=Path, help="serve this model directory instead of the packaged one")
    parser.add_argument("--log-dir", type=Path, help="write the runtime logs here (default: a temporary directory)")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the temporary log directory at exit (it is removed otherwise)"
    )
    parser.add_argument(
        "--allow-loopback-urls",
        action="store_true",
        help="let URLs point at 127.0.0.0/8 (local testing only; never in AWS)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.workers < 1:
        print("flowers-serve: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    for option, port in (("--port", args.port), ("--rie-port", args.rie_port)):
        if not 0 <= port <= 65535:
            print(f"flowers-serve: {option} must be a port number (0-65535), not {port}", file=sys.stderr)
            return EXIT_USAGE
    env: dict[str, str] = {}
    if args.model_dir:
        env["FLOWERS_MODEL_DIR"] = str(args.model_dir.resolve())
    if args.allow_loopback_urls:
        env["FLOWERS_ALLOW_LOOPBACK_URLS"] = "1"

    log = logging.getLogger("flowers_serving.local")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("flowers-serve: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # never raises: an exception in the middle of starting a process could orphan it

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)

    stack = LocalStack(
        rie_port=args.rie_port,
        gateway_port=args.port,
        workers=args.workers,
        env=env,
        log_dir=args.log_dir,
        keep_logs=args.keep_logs,
        runtime=args.runtime,
    )
    began = time.perf_counter()
    try:
        failure = _start(stack, stop)
        if stop.is_set():
            print("flowers-serve: stopped", file=sys.stderr)
            return 0
        if isinstance(failure, PortInUse):
            print(f"flowers-serve: {failure}", file=sys.stderr)
            return EXIT_USAGE
        if failure is not None:
            kept = f" (logs kept in {stack.log_dir})" if stack.log_dir and stack.log_dir.exists() else ""
            print(f"flowers-serve: could not start the local stack: {failure}{kept}", file=sys.stderr)
            return 1
        kind = "RIE" if stack.runtime_kind == "rie" else "Python runtime"
        workers = f"{args.workers} {kind}{'s' if args.workers > 1 and kind == 'RIE' else ''}"
        print(f"API Gateway:   POST {stack.gateway_url}/predict   GET {stack.gateway_url}/health")
        print(f"web page:      {stack.gateway_url}/")
        print(f"direct invoke: POST {stack.rie_url}   ({workers}, one invoke at a time each)")
        where = "kept" if args.keep_logs or args.log_dir else "removed at exit; --keep-logs keeps them"
        print(f"logs:          {stack.log_dir}   ({where})")
        print(f"ready in {time.perf_counter() - began:.1f} s; Ctrl-C stops", flush=True)
        while not stop.wait(0.5):  # a timed wait: signal handlers run between waits on every platform
            pass
        print("flowers-serve: stopping...", file=sys.stderr, flush=True)
    finally:
        stack.stop()
    return 0


def _start(stack: LocalStack, stop: threading.Event) -> Exception | None:
    """Start the stack on a thread, so that a stop signal meanwhile stops it at once (and cleanly)."""
    failures: list[Exception] = []
    done = threading.Event()

    def run() -> None:
        try:
            stack.start()
        except Exception as exc:
            failures.append(exc)
        finally:
            done.set()

    starter = threading.Thread(target=run, name="start", daemon=True)
    starter.start()
    while not done.wait(0.2):
        if stop.is_set():
            stack.stop()  # kills what is starting: the start fails fast, then cleans up after itself
            starter.join(timeout=60)
            break
    return failures[0] if failures else None


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
