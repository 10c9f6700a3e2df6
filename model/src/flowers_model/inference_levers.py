"""Levers at inference time, on the shipped file: ``python -m flowers_model.inference_levers --data DIR``.

Two of the levers the model issue names can be measured without training anything:

* **flip**: the file runs on the photo and on its mirror image and the two calibrated logit vectors are
  averaged (test-time augmentation; two inferences per photo). The core serves this for unsure photos only
  (its second look, for flowers the not-a-flower score accepts): ``shipped`` measures that, ``one-look`` the
  photo alone;
* **input N px**: the same int8 file with its input resized to N x N (the network ends in a global average,
  so any size runs; ``Classifier(input_size=N)``) and the photo loaded at N by the serving ``load_image``.
  The last layer stays the one fitted on 224 px features, so this measures the file, not a model retrained
  at N.

Each variant is measured on a split as evaluate and robustness measure the shipped model: clean photos from
their files, then each of robustness's corruptions applied to the file, every photo through the serving
code's ``load_image`` and ``Classifier`` (with its refit last layer and greyscale layer). The variant
``shipped`` asks ``Classifier.answer``, as ``classify`` does, so it must reproduce evaluate's figures.
Writes ``inference-levers-<split>.json``; ``--record`` adds each variant to the model card's levers table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from flowers_model.data import load_class_names, load_split
from flowers_model.evaluate import metrics
from flowers_model.levers import DEFAULT_FILE, record
from flowers_model.robustness import CORRUPTIONS, corrupt_bytes
from flowers_serving.classifier import Classifier, softmax
from flowers_serving.imaging import load_image

__all__ = ["VARIANTS", "Measured", "Variant", "main", "measure", "paired", "probabilities"]


@dataclass(frozen=True)
class Variant:
    name: str
    change: str  # the levers table's "what changed"
    looks: Literal["served", "one", "two"] = "served"  # as the core serves / the photo only / always its mirror too
    input_size: int | None = None  # None: the file's own


VARIANTS: dict[str, Variant] = {
    "shipped": Variant("as served", "the shipped model as the core serves it (with its second look)"),
    "one-look": Variant("one look", "the shipped file and last layers, one inference per photo", looks="one"),
    "flip": Variant(
        "test-time flip",
        "the shipped file; calibrated logits of every photo and its mirror image averaged (two inferences a photo)",
        looks="two",
    ),
    "256": Variant(
        "256 px input", "the same file run at 256 px input, one look (last layers fitted at 224 px)", "one", 256
    ),
    "288": Variant(
        "288 px input", "the same file run at 288 px input, one look (last layers fitted at 224 px)", "one", 288
    ),
}


def probabilities(classifier: Classifier, data: bytes, looks: str = "served") -> tuple[npt.NDArray[np.float64], int]:
    """The class probabilities of one photo file and the inferences they took: as ``Classifier.classify``
    computes them (``served``: its second look only for an unsure flower), from the photo alone (``one``) or
    averaged with its mirror image whatever the photo (``two``)."""
    pixels = load_image(
        data, classifier.info.input_size, max_pixels=classifier.max_pixels, max_decode_bytes=classifier.max_decode_bytes
    )
    if looks == "served":
        timings: dict[str, float] = {}
        probs = classifier.answer(pixels, timings=timings)[0]
        return probs, 2 if "second_look_ms" in timings else 1
    if looks not in ("one", "two"):
        raise ValueError(f"looks must be 'served', 'one' or 'two', not {looks!r}")
    logits = classifier.run(pixels)[0]
    if looks == "one":
        return softmax(logits), 1
    return softmax(classifier.with_mirror(pixels, logits)), 2


@dataclass
class Measured:
    report: dict[str, Any]  # evaluate's figures on the clean photos
    predicted: dict[str, npt.NDArray[np.int64]]  # per condition ("clean", then each corruption): each photo's top-1
    labels: npt.NDArray[np.int64]
    second_looks: dict[str, float]  # per condition: the share of photos that took two inferences

    @property
    def corruptions(self) -> dict[str, float]:
        return {name: float(np.mean(p == self.labels)) for name, p in self.predicted.items() if name != "clean"}


def measure(model_dir: Path, data_dir: Path, split: str, variant: Variant, *, limit: int = 0) -> Measured:
    """One variant on the clean photos of a split and after each of robustness's corruptions."""
    classifier = Classifier(model_dir, input_size=variant.input_size)
    examples = load_split(data_dir, split)[: limit or None]
    labels = np.array([e.class_id for e in examples], dtype=np.int64)
    files = [e.path.read_bytes() for e in examples]
    predicted: dict[str, npt.NDArray[np.int64]] = {}
    second_looks: dict[str, float] = {}
    report: dict[str, Any] = {}
    for name in CORRUPTIONS:  # "clean" first: the files as they are (robustness's clean is re-encoded)
        answers = [
            probabilities(classifier, data if name == "clean" else corrupt_bytes(data, name), variant.looks)
            for data in files
        ]
        probs = np.stack([a[0] for a in answers])
        predicted[name] = probs.argmax(axis=1)
        second_looks[name] = float(np.mean([a[1] == 2 for a in answers]))
        if name == "clean":
            report = metrics(probs, labels, load_class_names(data_dir))
            report["model_version"] = classifier.info.version
    return Measured(report, predicted, labels, second_looks)


def paired(variant: Measured, baseline: Measured) -> dict[str, dict[str, int]]:
    """Per condition, the photos the variant gets right that the baseline got wrong ("fixed") and the reverse."""
    result = {}
    for name, mine in variant.predicted.items():
        right, was_right = mine == variant.labels, baseline.predicted[name] == baseline.labels
        result[name] = {"fixed": int((right & ~was_right).sum()), "broken": int((~right & was_right).sum())}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("model/artifacts"))
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/oxford102"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos of the split (smoke tests)")
    parser.add_argument("--out", type=Path, default=Path("model/reports"))
    parser.add_argument("--record", action="store_true", help="add flip, 256 and 288 to the levers table")
    parser.add_argument("--levers", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    # One look first: every other variant is compared with it photo by photo.
    names = sorted(args.variants, key=lambda n: n != "one-look")
    measured: dict[str, Measured] = {}
    for name in names:
        variant = VARIANTS[name]
        started = time.perf_counter()
        measured[name] = m = measure(args.model_dir, args.data, args.split, variant, limit=args.limit)
        keep = ("n", "top1", "top1_ci95", "top5", "top5_ci95", "ece", "nll", "model_version")
        results[name] = {
            "name": variant.name,
            "change": variant.change,
            **{k: m.report[k] for k in keep},
            "corruptions": m.corruptions,
            "second_looks": m.second_looks,
            **(
                {"vs_one_look": paired(m, measured["one-look"])}
                if "one-look" in measured and name != "one-look"
                else {}
            ),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps({"variant": name, **{k: v for k, v in results[name].items() if k != "change"}}), flush=True)
        # The shipped model has its own row; one look is in the card's second-look section.
        if args.record and name not in ("shipped", "one-look"):
            record(
                f"{m.report['model_version']} + {variant.name}", variant.change, m.report, m.corruptions, args.levers
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"inference-levers-{args.split}.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
