"""``flowers``: classify flower photos from the command line.

    flowers classify rose.jpg https://example.com/tulip.jpg
    find photos -name '*.jpg' | flowers classify - --json

Exit codes: 0 every input classified, 1 an error (or every input failed),
2 usage error, 3 some inputs failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from flowers_client._client import FlowersClient
from flowers_client._config import DEFAULT_CONCURRENCY, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, DEFAULT_TOP_K
from flowers_client._exceptions import APIError, FlowersError
from flowers_client._models import BatchItem, top_k
from flowers_client._version import __version__

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowers", description="Classify flower photos (102 Oxford species).")
    parser.add_argument("--version", action="version", version=f"flowers-client {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    classify = commands.add_parser(
        "classify",
        help="classify images (paths or URLs; '-' reads them from stdin)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    classify.add_argument("images", nargs="+", metavar="IMAGE", help="a path, an http(s) URL, or '-' for stdin")
    classify.add_argument(
        "--endpoint",
        help="API Gateway .../predict or RIE .../invocations URL (default: $FLOWERS_ENDPOINT, else the local stack)",
    )
    classify.add_argument(
        "--top-k",
        type=_top_k_arg,
        default=None,
        help=f"predictions per image (default {DEFAULT_TOP_K}; 5 in the table)",
    )
    classify.add_argument("--min-score", type=_score_arg, default=0.0, help="hide predictions below this score")
    classify.add_argument("--json", action="store_true", help="JSON lines on stdout, one object per input")
    classify.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight (default {DEFAULT_CONCURRENCY})",
    )
    classify.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT[1],
        help=f"read timeout in seconds (default {DEFAULT_TIMEOUT[1]:g})",
    )
    classify.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=DEFAULT_MAX_RETRIES,
        help=f"retries of retryable failures (default {DEFAULT_MAX_RETRIES})",
    )
    classify.add_argument("-v", "--verbose", action="count", default=0, help="log retries (-v) and requests (-vv)")
    return parser


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def _top_k_arg(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 102:
        raise argparse.ArgumentTypeError("must be between 1 and 102")
    return number


def _score_arg(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return number


def _inputs(images: Sequence[str], stdin: TextIO) -> list[str]:
    result: list[str] = []
    for image in images:
        if image == "-":
            result.extend(line.strip() for line in stdin if line.strip())
        else:
            result.append(image)
    return result


def _item_json(item: BatchItem, k: int, min_score: float) -> dict[str, Any]:
    if item.result is not None:
        return {
            "input": item.input,
            "ok": True,
            "predictions": [p.model_dump() for p in top_k(item.result, k, min_score=min_score)],
            "model": item.result.model,
            "model_version": item.result.model_version,
            "request_id": item.result.request_id,
        }
    error = item.error
    return {
        "input": item.input,
        "ok": False,
        "error": {
            "type": type(error).__name__,
            "code": getattr(error, "code", None),
            "status": getattr(error, "status_code", None),
            "message": getattr(error, "message", str(error)),
            "request_id": getattr(error, "request_id", None),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    images = _inputs(args.images, sys.stdin)
    if not images:
        print("flowers: no images given", file=sys.stderr)
        return EXIT_USAGE
    shown_k = args.top_k or (DEFAULT_TOP_K if args.json else 5)
    try:
        client = FlowersClient(args.endpoint, timeout=(DEFAULT_TIMEOUT[0], args.timeout), max_retries=args.max_retries)
    except ValueError as exc:
        print(f"flowers: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with client:
        items = _run(client, images, args, request_k=args.top_k or DEFAULT_TOP_K)
    if args.json:
        for item in items:
            sys.stdout.write(json.dumps(_item_json(item, shown_k, args.min_score)) + "\n")
    else:
        _print_table(items, shown_k, args.min_score)
    failed = sum(1 for item in items if not item.ok)
    if failed == 0:
        return EXIT_OK
    return EXIT_ERROR if failed == len(items) else EXIT_PARTIAL


def _run(client: FlowersClient, images: list[str], args: argparse.Namespace, *, request_k: int) -> list[BatchItem]:
    show_progress = not args.json and len(images) > 1 and sys.stderr.isatty()
    if not show_progress:
        return client.classify_many(images, top_k=request_k, concurrency=args.concurrency)
    from rich.progress import Progress  # imported lazily: `import flowers_client` stays light

    with Progress(transient=True, console=_console(stderr=True)) as progress:
        task = progress.add_task("classifying", total=len(images))
        return client.classify_many(
            images, top_k=request_k, concurrency=args.concurrency, on_progress=lambda _item: progress.advance(task)
        )


def _console(*, stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def _print_table(items: list[BatchItem], k: int, min_score: float) -> None:
    from rich.table import Table

    table = Table(title="flowers", show_lines=False)
    table.add_column("image", overflow="fold")
    table.add_column("#", justify="right")
    table.add_column("species")
    table.add_column("score", justify="right")
    table.add_column("class", justify="right")
    for item in items:
        if item.result is None:
            error = item.error
            code = error.code if isinstance(error, APIError) and error.code else type(error).__name__
            message = error.message if isinstance(error, (APIError,)) else str(error)
            table.add_row(item.input, "", f"[red]error: {code}[/red]", "", "", end_section=True)
            table.add_row("", "", f"[red]{message}[/red]", "", "", end_section=True)
            continue
        predictions = top_k(item.result, k, min_score=min_score)
        if not predictions:
            table.add_row(
                item.input, "", f"[yellow]no species scored >= {min_score:g}[/yellow]", "", "", end_section=True
            )
        for rank, p in enumerate(predictions, 1):
            last = rank == len(predictions)
            table.add_row(
                item.input if rank == 1 else "", str(rank), p.label, f"{p.score:.3f}", str(p.class_id), end_section=last
            )
    _console().print(table)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FlowersError as exc:  # pragma: no cover - main() returns codes for known errors
        print(f"flowers: {exc}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
