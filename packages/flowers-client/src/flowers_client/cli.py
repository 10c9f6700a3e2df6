"""``flowers``: classify flower photos from the command line.

    flowers classify rose.jpg https://example.com/tulip.jpg
    flowers classify photos/ --json -o results.jsonl      # a directory: its images, recursively
    flowers classify photos/ --json -o results.jsonl --resume   # after Ctrl-C: only what is missing
    find photos -name '*.jpg' | flowers classify - --json

Results print in input order as soon as they are done; diagnostics and the
summary go to stderr. Ctrl-C stops scheduling, prints what finished and exits
130; a second Ctrl-C exits at once.

Exit codes: 0 every input classified, 1 an error (or every input failed),
2 usage error, 3 some inputs failed (or, with --reject, were not flowers),
130 interrupted.
"""

from __future__ import annotations

import sys

from flowers_client._cli_interrupts import EXIT_INTERRUPTED, INTERRUPTS

# The command (`python -m flowers_client.cli`, or the `flowers` script importing `run`):
# Ctrl-C is ours before the imports below, and raised once main() can take it.
if __name__ == "__main__" or sys.argv[0].rsplit("/", 1)[-1].rsplit("\\", 1)[-1] in {"flowers", "flowers.exe"}:
    INTERRUPTS.install(hold=True)

import argparse
import contextlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO

from flowers_client._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOP_K,
    MAX_BATCH_SIZE,
)
from flowers_client._exceptions import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    FlowersError,
    NotAFlowerError,
    NotFoundError,
)
from flowers_client._inputs import find_images, is_url
from flowers_client._version import __version__

if TYPE_CHECKING:
    from flowers_client._cli_output import Output
    from flowers_client._client import FlowersClient
    from flowers_client._models import BatchItem

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_BROKEN_PIPE = 0, 1, 2, 3, 141
#: Seconds from Ctrl-C to wait for the one invoke in flight to a bare RIE (a new
#: run that reaches the emulator while it still works would crash it), kept short
#: so that the exit always comes within 2 s of the Ctrl-C.
RIE_GRACE = 1.0

HINT_UNREACHABLE = (
    "hint: nothing answers at {endpoint}. Start the local stack with `nox -s serve`, "
    "or point --endpoint / FLOWERS_ENDPOINT at your API (…/predict, or the RIE's …/invocations URL)."
)
HINT_NOT_FOUND = (
    "hint: {endpoint} is not a flowers endpoint; --endpoint / FLOWERS_ENDPOINT should end in /predict "
    "(API Gateway) or /2015-03-31/functions/function/invocations (the RIE)."
)
HINT_AUTH = "hint: the API wants a key: pass --api-key or set FLOWERS_API_KEY."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowers", description="Classify flower photos (102 Oxford species).")
    parser.add_argument("--version", action="version", version=f"flowers-client {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    classify = commands.add_parser(
        "classify",
        help="classify images (paths, directories or URLs; '-' reads them from stdin)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    classify.add_argument(
        "images", nargs="*", metavar="IMAGE", help="a path, a directory, an http(s) URL, or '-' for stdin"
    )
    classify.add_argument(
        "--endpoint",
        help="API Gateway .../predict or RIE .../invocations URL (default: $FLOWERS_ENDPOINT, else the local stack)",
    )
    classify.add_argument("--api-key", help="sent as x-api-key (default: $FLOWERS_API_KEY)")
    classify.add_argument(
        "--top-k",
        type=_top_k_arg,
        default=None,
        help=f"predictions per image (default {DEFAULT_TOP_K}; 5 in the table)",
    )
    classify.add_argument("--min-score", type=_score_arg, default=0.0, help="hide predictions below this score")
    classify.add_argument("--json", action="store_true", help="JSON lines on stdout, one object per input")
    classify.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="also append JSON lines to FILE, each as soon as its input is done",
    )
    classify.add_argument(
        "--resume", action="store_true", help="skip inputs that already have a successful line in --output FILE"
    )
    classify.add_argument(
        "--reject", action="store_true", help="ask the service to refuse photos that show no flower (exit 3)"
    )
    classify.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight (default {DEFAULT_CONCURRENCY}; one at a time per RIE endpoint)",
    )
    classify.add_argument(
        "--batch-size",
        type=_batch_size_arg,
        default=DEFAULT_BATCH_SIZE,
        help=f"images per request, 1-{MAX_BATCH_SIZE} (default {DEFAULT_BATCH_SIZE}; always 1 on an RIE endpoint)",
    )
    classify.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT[1],
        help=f"read timeout of one attempt, in seconds (default {DEFAULT_TIMEOUT[1]:g})",
    )
    classify.add_argument(
        "--deadline",
        type=_positive_float,
        default=DEFAULT_DEADLINE,
        help=f"seconds per image, every retry included (default {DEFAULT_DEADLINE:g})",
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


def _batch_size_arg(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_BATCH_SIZE}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
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


def _inputs(images: Sequence[str], stdin: TextIO, warn: list[str]) -> list[str]:
    """Arguments as inputs: '-' reads one per line from stdin, a directory gives its images (sorted)."""
    result: list[str] = []
    for image in images:
        if image == "-":
            result.extend(line.strip() for line in stdin if line.strip())
        elif not is_url(image) and os.path.isdir(image):
            found = [str(p) for p in find_images(image)]
            if not found:
                warn.append(f"flowers: {image}: no images in this directory")
            result.extend(found)
        else:
            result.append(image)
    return result


def _already_done(path: Path) -> tuple[set[str], int]:
    """Inputs with a successful line in a previous run's output, and how many lines were unreadable."""
    done: set[str] = set()
    unreadable = 0
    with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                unreadable += bool(line.strip())  # a line cut short by a hard kill
                continue
            if isinstance(record, dict) and record.get("ok") is True and isinstance(record.get("input"), str):
                done.add(record["input"])
    return done, unreadable


def _open_output(path: Path) -> IO[str]:
    """Append mode; a last line cut short by a hard kill gets its newline so the next one stands alone."""
    ends_cleanly = True
    with contextlib.suppress(FileNotFoundError), path.open("rb") as existing:
        existing.seek(0, os.SEEK_END)
        if existing.tell():
            existing.seek(-1, os.SEEK_END)
            ends_cleanly = existing.read(1) == b"\n"
    handle = path.open("a", encoding="utf-8")
    if not ends_cleanly:
        handle.write("\n")
    return handle


@dataclass
class _Tally:
    classified: int = 0
    failed: int = 0
    not_a_flower: int = 0
    rejected: int = 0
    unreachable: bool = False
    hints: dict[str, None] = field(default_factory=dict)  # ordered set

    def add(self, item: BatchItem, endpoint: str) -> None:
        if item.ok:
            self.classified += 1
            self.not_a_flower += item.result.is_flower is False
            return
        self.failed += 1
        error = item.error
        if isinstance(error, NotAFlowerError):
            self.rejected += 1
        elif isinstance(error, APIConnectionError) and not isinstance(error, APITimeoutError):
            self.unreachable = True
            self.hints[HINT_UNREACHABLE.format(endpoint=endpoint)] = None
        elif isinstance(error, NotFoundError):
            self.hints[HINT_NOT_FOUND.format(endpoint=endpoint)] = None
        elif isinstance(error, AuthenticationError):
            self.hints[HINT_AUTH] = None


def main(argv: Sequence[str] | None = None) -> int:
    installed_here = INTERRUPTS.install()  # unless the command's first lines did
    try:
        INTERRUPTS.release_hold()  # a Ctrl-C during the imports ends the run here
        return _main(argv)
    except KeyboardInterrupt:  # before or after the batch: no traceback either
        INTERRUPTS.taken()
        print("\nflowers: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if installed_here:
            INTERRUPTS.uninstall()


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    if args.resume and not args.output:
        print("flowers: --resume needs -o/--output FILE (the run to resume)", file=sys.stderr)
        return EXIT_USAGE
    warnings: list[str] = []
    try:
        images = _inputs(args.images, sys.stdin, warnings)
    except FlowersError as exc:
        print(f"flowers: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    for warning in warnings:
        print(warning, file=sys.stderr)
    if not images:
        print("flowers: no images given (paths, directories, URLs, or '-' to read them from stdin)", file=sys.stderr)
        return EXIT_USAGE
    # Imported here, not at the top: `flowers --help` needs neither, and a Ctrl-C
    # while they load (seconds on a busy machine) ends the run without a traceback.
    from flowers_client._cli_output import Output
    from flowers_client._client import FlowersClient

    try:
        client = FlowersClient(
            args.endpoint,
            api_key=args.api_key,
            timeout=(DEFAULT_TIMEOUT[0], args.timeout),
            deadline=args.deadline,
            max_retries=args.max_retries,
        )
    except ValueError as exc:
        print(f"flowers: {exc}", file=sys.stderr)
        return EXIT_USAGE

    output_path = Path(args.output) if args.output else None
    skipped = 0
    todo = list(enumerate(images))
    if args.resume and output_path is not None:
        done, unreadable = _already_done(output_path)
        todo = [(i, image) for i, image in todo if image not in done]
        skipped = len(images) - len(todo)
        if unreadable:
            print(f"flowers: {output_path}: {unreadable} unreadable line(s) ignored", file=sys.stderr)
    try:
        output_file = _open_output(output_path) if output_path is not None else None
    except OSError as exc:
        print(f"flowers: cannot write {output_path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE

    output = Output(
        as_json=args.json,
        k=args.top_k or (DEFAULT_TOP_K if args.json else 5),
        min_score=args.min_score,
        names=[image for _, image in todo],
        output_file=output_file,
        total=len(todo),
        progress=sys.stderr.isatty() and bool(todo),
    )
    _configure_logging(args.verbose, output)
    try:
        return _run(client, todo, args, output, skipped=skipped)
    finally:
        output.close()
        if output_file is not None:
            output_file.close()


def _run(
    client: FlowersClient, todo: list[tuple[int, str]], args: argparse.Namespace, output: Output, *, skipped: int
) -> int:
    tally = _Tally()
    started = time.monotonic()
    interrupted = aborted = broken_pipe = False
    stream = client.iter_classify(
        (image for _, image in todo),
        top_k=args.top_k or DEFAULT_TOP_K,
        concurrency=args.concurrency,
        reject=args.reject,
        batch_size=args.batch_size,
    )
    interrupts = INTERRUPTS
    try:
        try:
            for item in stream:
                with interrupts.deferred():
                    tally.add(item, client.endpoint)
                    output.finished(item, item.index, todo[item.index][0])
                    if tally.unreachable and tally.classified == 0:
                        aborted = True  # nothing has ever answered: the rest would fail the same way
                        break
        finally:
            with interrupts.deferred():
                stream.close()  # stop scheduling; requests in flight are dropped
    except KeyboardInterrupt:
        interrupts.taken()
        interrupted = True
    except BrokenPipeError:
        broken_pipe = True
    if broken_pipe:
        # The reader went away (`| head`): say nothing more on stdout.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    with interrupts.deferred():
        output.flush_finished()
        output.close()
        if not interrupted:
            client.close()  # after an interrupt, requests in flight may still hold connections
        elif not client.wait_until_idle(max(0.0, RIE_GRACE - interrupts.since_first())):
            print(
                "flowers: the RIE is still running the last invoke; give it a moment before the next run",
                file=sys.stderr,
            )
        for hint in tally.hints:
            print(hint, file=sys.stderr)
        elapsed = time.monotonic() - started
        print(_summary(tally, len(todo), skipped, elapsed, args, interrupted, aborted), file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    errors = tally.failed - tally.rejected
    if aborted or (errors and tally.classified == 0 and not tally.rejected):
        return EXIT_ERROR
    return EXIT_PARTIAL if tally.failed else EXIT_OK


def _summary(
    tally: _Tally,
    total: int,
    skipped: int,
    seconds: float,
    args: argparse.Namespace,
    interrupted: bool,
    aborted: bool,
) -> str:
    notes = []
    if tally.not_a_flower:
        notes.append(f"{tally.not_a_flower} not a flower")
    if tally.rejected:
        notes.append(f"{tally.rejected} rejected as not a flower")
    if skipped:
        notes.append(f"{skipped} skipped (already in {args.output})")
    not_done = total - tally.classified - tally.failed
    if interrupted:
        notes.append(f"interrupted: {not_done} not done" + (" (run again with --resume)" if args.output else ""))
    elif aborted and not_done:
        notes.append(f"stopped: {not_done} not sent")
    line = f"{tally.classified} classified, {tally.failed} failed in {seconds:.1f} s"
    return line + (f" ({'; '.join(notes)})" if notes else "")


def _configure_logging(verbose: int, output: Output) -> None:
    if not verbose:
        return

    class ToOutput(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            output.err(self.format(record))

    handler = ToOutput()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("flowers_client")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


def run() -> None:
    """What ``flowers`` and ``python -m flowers_client.cli`` run (see also ``_cli_start``)."""
    code = main()
    INTERRUPTS.finished()  # from here on a first Ctrl-C changes nothing; a second still exits at once
    if code == EXIT_INTERRUPTED:
        # Everything is written and closed; skip the interpreter's teardown (seconds on a
        # busy machine, with requests in flight on daemon threads) so Ctrl-C ends the run now.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
