"""The recipe levers we measured, one row per trained model: ``python -m flowers_model.levers``.

``add NAME --change TEXT --report report-validation.json [--robustness FILE]``
records what one exported model measured on validation (top-1 with its 95%
interval, ECE, and each corruption the robustness run covered) in
``model/reports/levers.json``; the model card's tuning section shows the table,
so levers that did not pay stay visible beside the one that shipped. Figures
are read from the files evaluate and robustness wrote, never typed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from flowers_model.robustness import wilson_interval

__all__ = ["add", "main", "record"]

DEFAULT_FILE = Path("model/reports/levers.json")


def _robustness(path: Path | None) -> dict[str, float]:
    """``{corruption: top-1}`` from robustness-<split>.json or the JSON lines its run prints."""
    if path is None:
        return {}
    text = path.read_text()
    try:
        rows = json.loads(text)
    except json.JSONDecodeError:
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        return {row["corruption"]: row["top1"] for row in lines}
    return {name: row["top1"] for name, row in rows.items()}


def add(name: str, change: str, report: Path, robustness: Path | None, out: Path = DEFAULT_FILE) -> dict[str, Any]:
    return record(name, change, json.loads(report.read_text()), _robustness(robustness), out)


def record(
    name: str, change: str, measured: dict[str, Any], corruptions: dict[str, float], out: Path = DEFAULT_FILE
) -> dict[str, Any]:
    """One row from evaluate's figures (``measured``) and ``{corruption: top-1}``; replaces a row of that name."""
    row = {
        "name": name,
        "change": change,
        "model_version": measured.get("model_version"),
        "n": measured["n"],
        "top1": measured["top1"],
        # Reports older than the interval field: the same Wilson interval from the count.
        "top1_ci95": measured.get("top1_ci95")
        or list(wilson_interval(round(measured["top1"] * measured["n"]), measured["n"])),
        "ece": measured["ece"],
        "nll": measured["nll"],
        "corruptions": {k: v for k, v in corruptions.items() if k != "clean"},
    }
    rows: list[dict[str, Any]] = json.loads(out.read_text()) if out.exists() else []
    rows = [r for r in rows if r["name"] != name] + [row]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    adding = sub.add_parser("add", help="record one model's measured figures")
    adding.add_argument("name")
    adding.add_argument("--change", required=True, help="what this run changed, in a few words")
    adding.add_argument("--report", type=Path, required=True, help="report-validation.json from evaluate")
    adding.add_argument("--robustness", type=Path, help="robustness-validation.json (or its printed lines)")
    adding.add_argument("--out", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args(argv)
    print(json.dumps(add(args.name, args.change, args.report, args.robustness, args.out)))


if __name__ == "__main__":
    main()
