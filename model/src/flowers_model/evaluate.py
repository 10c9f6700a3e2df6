"""Evaluate an exported .tflite exactly as it is served.

``nox -s evaluate [-- --split SPLIT --model PATH --data DIR --plots --update-reports]``

Every image goes through ``flowers_serving.Classifier.classify`` (the serving
core: the shared ``load_image``, LiteRT, softmax), so the figures are those of
the service. The data set is ``--data``, else ``$FLOWERS_DATA``, else
``../shared/datasets/oxford102`` beside the clone, else ``model/data/oxford102``
(where ``nox -s prepare`` puts it). Writes ``report-<split>.json`` (and plots
with ``--plots``) to a new run folder ``model/runs/evaluate-<UTC time>/``, or
to the tracked ``model/reports/`` with ``--update-reports``, and prints, as its
last line, one JSON object with ``model``, ``split``, ``n``, ``top1``,
``top5``, ``ece`` and ``report`` (the file written).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from flowers_model.data import data_dir_or_exit, default_data_dir, load_class_names, load_split
from flowers_model.paths import portable
from flowers_model.robustness import wilson_interval
from flowers_serving import Classifier
from flowers_serving.classifier import MAX_TOP_K

__all__ = ["expected_calibration_error", "main", "metrics"]

DEFAULT_MODEL_DIR = Path("model/artifacts")
TRACKED_REPORTS = Path("model/reports")  # what the model card is generated from
RUNS = Path("model/runs")  # git-ignored


def expected_calibration_error(probs: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al., 2017)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def metrics(probs: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], class_names: list[str]) -> dict[str, Any]:
    n, k = probs.shape
    top5 = np.argsort(-probs, axis=1)[:, :5]
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.full(k, np.nan), where=support > 0)
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    pairs = [(int(i), int(j), int(off[i, j])) for i, j in zip(*np.nonzero(off), strict=True)]
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    present = np.nonzero(support)[0]
    worst = sorted(present, key=lambda c: (per_class[c], c))[:10]
    nll = float(-np.log(np.clip(probs[np.arange(n), labels], 1e-12, None)).mean())
    top1_correct = int((predicted == labels).sum())
    top5_correct = int((top5 == labels[:, None]).any(axis=1).sum())
    return {
        "n": int(n),
        "top1": top1_correct / n,
        "top1_ci95": list(wilson_interval(top1_correct, n)),
        "top5": top5_correct / n,
        "top5_ci95": list(wilson_interval(top5_correct, n)),
        "ece": expected_calibration_error(probs, labels),
        "nll": nll,
        "mean_confidence": float(probs.max(axis=1).mean()),
        "per_class_accuracy": {class_names[c]: float(per_class[c]) for c in present},
        "worst_classes": [
            {
                "class": class_names[c],
                "class_id": int(c) + 1,
                "accuracy": float(per_class[c]),
                "support": int(support[c]),
            }
            for c in worst
        ],
        "most_confused": [{"true": class_names[i], "predicted": class_names[j], "count": c} for i, j, c in pairs[:10]],
        "confusion": confusion.tolist(),
    }


def run(
    model_dir: Path, model_file: Path | None, data_dir: Path, split: str, *, threads: int, limit: int
) -> tuple[dict[str, Any], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    classifier = Classifier(model_dir, num_threads=threads, model_file=model_file)
    class_names = load_class_names(data_dir)
    if class_names != classifier.labels:
        raise SystemExit("the model's labels.txt does not match the data set's class_names.txt")
    examples = load_split(data_dir, split)
    if limit:
        examples = examples[:limit]
    probs = np.zeros((len(examples), len(class_names)))
    labels = np.array([e.class_id for e in examples], dtype=np.int64)
    infer_ms: list[float] = []
    total_ms: list[float] = []
    for i, example in enumerate(tqdm(examples, desc=f"evaluate {split}", dynamic_ncols=True)):
        data = example.path.read_bytes()
        started = time.perf_counter()
        result = classifier.classify(data, top_k=MAX_TOP_K)
        total_ms.append((time.perf_counter() - started) * 1000)
        infer_ms.append(result.timings_ms["infer_ms"])
        for p in result.predictions:
            probs[i, p.class_id - 1] = p.score
    report = metrics(probs, labels, class_names)
    report.update(
        {
            "model": classifier.info.name,
            "model_version": classifier.info.version,
            "model_file": portable(model_file or model_dir / "flowers.tflite"),
            "runtime": classifier.info.runtime,
            "threads": threads,
            "split": split,
            "infer_ms_p50": float(np.median(infer_ms)),
            "request_ms_p50": float(np.median(total_ms)),
        }
    )
    return report, probs, labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a folder laid out like ../shared/datasets/oxford102 (default: $FLOWERS_DATA, that folder, "
        "or model/data/oxford102)",
    )
    parser.add_argument("--split", default="validation", choices=["train", "validation", "test"])
    parser.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL_DIR,
        help="a model folder (flowers.tflite + labels.txt + metadata.json) or a .tflite file in one",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="where the report goes (default: model/runs/evaluate-<UTC time>/)")
    where.add_argument(
        "--update-reports",
        action="store_true",
        help=f"rewrite the tracked reports in {TRACKED_REPORTS}/ (what the model card shows)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N images")
    parser.add_argument("--plots", action="store_true", help="also draw the confusion matrix and per-class plots")
    args = parser.parse_args(argv)
    data_dir = data_dir_or_exit(args.data or default_data_dir())
    model_dir, model_file = (args.model.parent, args.model) if args.model.is_file() else (args.model, None)
    if model_file and not (model_dir / "metadata.json").exists():
        model_dir = DEFAULT_MODEL_DIR  # a bare .tflite (e.g. the float export beside a checkpoint): shipped labels
    report, _, _ = run(model_dir, model_file, data_dir, args.split, threads=args.threads, limit=args.limit)
    out = args.out or (TRACKED_REPORTS if args.update_reports else _run_dir())
    out.mkdir(parents=True, exist_ok=True)
    stem = f"report-{args.split}" + (f"-{model_file.stem}" if model_file else "")
    path = out / f"{stem}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    if args.plots:
        from flowers_model.plots import draw_report

        draw_report(report, load_class_names(data_dir), out, data_dir)
    summary_keys = ("model", "model_version", "split", "n", "top1", "top5", "ece", "nll", "infer_ms_p50", "runtime")
    print(
        json.dumps(
            {k: report[k] for k in summary_keys} | {"model_file": report["model_file"], "report": portable(path)}
        )
    )


def _run_dir() -> Path:
    """A new folder per run, so evaluating never rewrites what git tracks."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run = RUNS / f"evaluate-{stamp}"
    suffix = 1
    while run.exists():  # two runs in one second
        suffix += 1
        run = RUNS / f"evaluate-{stamp}-{suffix}"
    return run


if __name__ == "__main__":
    main()
