"""What the ``flowers`` CLI writes: result lines in input order, a progress bar, diagnostics.

Results go to stdout (a table, or one JSON object per line) in input order,
each as soon as it and every earlier input are done, so two runs diff
cleanly. ``-o FILE`` gets the same JSON lines in the order they finish (safe
to stop at any moment). Diagnostics, hints and the summary go to stderr. The
progress bar (tqdm) lives on stderr when that is a terminal; every line
printed meanwhile goes through ``tqdm.write``, which clears the bar, writes
the line and redraws the bar, so the two never mix.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import IO, Any, Final

from flowers_client._exceptions import APIError, NotAFlowerError
from flowers_client._models import BatchItem, top_k

__all__ = ["Output", "TableStyle", "json_line"]

_SPECIES_WIDTH: Final = 26
_MAX_MESSAGE: Final = 100


def json_line(item: BatchItem, index: int, k: int, min_score: float) -> dict[str, Any]:
    """One JSON line: ``{index, input, ok, predictions, is_flower, flower_score, model, ...}`` or ``{..., error}``."""
    if item.ok:
        result = item.result
        return {
            "index": index,
            "input": item.input,
            "ok": True,
            "predictions": [p.model_dump(mode="json") for p in top_k(result, k, min_score=min_score)],
            "is_flower": result.is_flower,
            "flower_score": result.flower_score,
            "model": result.model,
            "model_version": result.model_version,
            "request_id": result.request_id,
        }
    return {"index": index, "input": item.input, "ok": False, "error": item.error.to_dict()}


class TableStyle:
    """Fixed columns, so rows can be printed one item at a time and still line up."""

    def __init__(self, names: list[str], *, color: bool, terminal: bool) -> None:
        self.color = color
        self.ellipsis = "…" if terminal else "..."
        longest = max((len(n) for n in names), default=5)
        # Piped: whole names (scripts and diffs need them). On a terminal: what fits.
        room = shutil.get_terminal_size((100, 24)).columns - 48 if terminal else longest
        self.image_width = max(5, min(longest, max(20, room)))

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _fit(self, name: str) -> str:
        if len(name) <= self.image_width:
            return name.ljust(self.image_width)
        keep = self.image_width - len(self.ellipsis)
        return self.ellipsis + name[-keep:]  # the end of a path names the file

    def _short(self, text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - len(self.ellipsis)] + self.ellipsis

    def header(self) -> str:
        line = f"{'image'.ljust(self.image_width)}   #  {'species'.ljust(_SPECIES_WIDTH)}  score  class"
        return self._paint(line, "1")

    def lines(self, item: BatchItem, k: int, min_score: float) -> list[str]:
        image = self._fit(item.input)
        blank = " " * self.image_width
        if not item.ok:
            error = item.error
            if isinstance(error, NotAFlowerError):
                return [self._note(image, self._not_a_flower(error.flower_score, error.predictions, True), "33")]
            code = error.code if isinstance(error, APIError) and error.code else type(error).__name__
            message = error.message.removeprefix(f"{item.input}: ")  # the row names the input already
            return [self._note(image, self._short(f"error: {code}: {message}"), "31")]
        result = item.result
        if result.is_flower is False:
            return [self._note(image, self._not_a_flower(result.flower_score, result.predictions, False), "33")]
        predictions = top_k(result, k, min_score=min_score)
        if not predictions:
            return [self._note(image, f"no species scored >= {min_score:g}", "33")]
        return [
            f"{blank if rank > 1 else image}  {rank:>2}  {p.label:<{_SPECIES_WIDTH}}  {p.score:.3f}  {p.class_id:>5}"
            for rank, p in enumerate(predictions, 1)
        ]

    def _note(self, image: str, text: str, color: str) -> str:
        """A one-line row for an input without species to list: an error, not a flower."""
        return f"{image}   -  {self._paint(text, color)}"

    def _not_a_flower(self, score: float | None, predictions: list[Any], rejected: bool) -> str:
        details = ["rejected"] if rejected else []
        if score is not None:
            details.append(f"flower score {score:.3f}")
        if predictions:
            best = max(predictions, key=lambda p: p.score)
            details.append(f"closest: {best.label} {best.score:.3f}")
        return "not a flower" + (f" ({'; '.join(details)})" if details else "")


class Output:
    """Prints finished items in input order, appends them to ``-o FILE`` as they finish."""

    def __init__(
        self,
        *,
        as_json: bool,
        k: int,
        min_score: float,
        names: list[str],
        output_file: IO[str] | None,
        total: int,
        progress: bool,
    ) -> None:
        self.as_json = as_json
        self.k = k
        self.min_score = min_score
        self.output_file = output_file
        terminal = sys.stdout.isatty()
        color = terminal and not os.environ.get("NO_COLOR")
        self.table = None if as_json else TableStyle(names, color=color, terminal=terminal)
        self._pending: dict[int, tuple[BatchItem, int]] = {}
        self._next = 0
        self._header_done = False
        self.bar: Any = None
        if progress:
            from tqdm import tqdm  # imported here: `import flowers_client` stays light

            tqdm.monitor_interval = 0  # no monitor thread: nothing to wait for at exit
            # A terminal that reports no width (a bare pty) gets 80 columns, not an invisible bar.
            sized = _columns(sys.stderr) > 0
            self.bar = tqdm(
                total=total,
                file=sys.stderr,
                unit="image",
                leave=False,
                dynamic_ncols=sized,
                ncols=None if sized else 80,
                nrows=None if sized else 24,
            )

    # --- writing ------------------------------------------------------------------------

    def _write(self, text: str, stream: IO[str]) -> None:
        if self.bar is not None:
            self.bar.write(text, file=stream)
        else:
            stream.write(text + "\n")
        stream.flush()  # line by line, even into a pipe: results stream out

    def out(self, text: str) -> None:
        self._write(text, sys.stdout)

    def err(self, text: str) -> None:
        self._write(text, sys.stderr)

    # --- items --------------------------------------------------------------------------

    def finished(self, item: BatchItem, position: int, index: int) -> None:
        """``position``: the item's place in this run (for ordering); ``index``: in the whole input list."""
        if self.output_file is not None:
            self.output_file.write(json.dumps(json_line(item, index, self.k, self.min_score)) + "\n")
            self.output_file.flush()
        if self.bar is not None:
            self.bar.update(1)
        self._pending[position] = (item, index)
        while self._next in self._pending:
            self._print(*self._pending.pop(self._next))
            self._next += 1

    def skip(self, position: int) -> None:
        """Nothing will come for ``position`` (not sent): later items need not wait for it."""
        self._pending.pop(position, None)

    def flush_finished(self) -> None:
        """Print what finished but still waits for an earlier input (after an interrupt)."""
        for position in sorted(self._pending):
            self._print(*self._pending.pop(position))

    def _print(self, item: BatchItem, index: int) -> None:
        if self.table is None:
            self.out(json.dumps(json_line(item, index, self.k, self.min_score)))
            return
        if not self._header_done:
            self._header_done = True
            self.out(self.table.header())
        for line in self.table.lines(item, self.k, self.min_score):
            self.out(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 0
