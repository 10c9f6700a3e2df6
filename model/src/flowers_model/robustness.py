"""Top-1 under the changes real phone photos go through: ``python -m flowers_model.robustness``.

Each corruption is applied to the photo file (decoded, changed, encoded again as
a high-quality JPEG, or at the quality under test), and the result goes through
the serving core exactly as a user's upload would: ``Classifier.classify`` on
the bytes. Writes ``model/reports/robustness-<split>.json`` with each
corruption's top-1 and its 95% Wilson interval beside the clean one's.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

from flowers_model.data import load_split
from flowers_serving.classifier import Classifier
from flowers_serving.imaging import decode_image

__all__ = ["CORRUPTIONS", "corrupt_bytes", "main", "wilson_interval"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: unlike p +- 1.96 SE, it stays inside [0, 1] near 100%."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _shorter_side(img: Image.Image, side: int) -> Image.Image:
    scale = side / min(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BICUBIC)


#: name -> (change, JPEG quality of the file that is then classified)
CORRUPTIONS: dict[str, tuple[Callable[[Image.Image], Image.Image], int]] = {
    "clean": (lambda img: img, 95),
    "greyscale": (lambda img: img.convert("L").convert("RGB"), 95),
    "rotated 90°": (lambda img: img.transpose(Image.Transpose.ROTATE_90), 95),
    "Gaussian blur (radius 2)": (lambda img: img.filter(ImageFilter.GaussianBlur(2)), 95),
    "shorter side 96 px": (lambda img: _shorter_side(img, 96), 95),
    "brightness ×1.5": (lambda img: ImageEnhance.Brightness(img).enhance(1.5), 95),
    "JPEG quality 20": (lambda img: img, 20),
}


def corrupt_bytes(data: bytes, name: str, *, greyscale: bool = False) -> bytes:
    """The photo after corruption ``name`` (then in greyscale if asked), as the JPEG that gets classified."""
    change, quality = CORRUPTIONS[name]
    changed = change(decode_image(data))
    if greyscale:
        changed = changed.convert("L").convert("RGB")
    buffer = io.BytesIO()
    changed.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def measure(model_dir: Path, data_dir: Path, split: str) -> dict[str, dict[str, float]]:
    classifier = Classifier(model_dir)
    examples = load_split(data_dir, split)
    report: dict[str, dict[str, float]] = {}
    for name in CORRUPTIONS:
        correct = 0
        for example in examples:
            result = classifier.classify(corrupt_bytes(example.path.read_bytes(), name), top_k=1)
            correct += result.predictions[0].class_id == example.class_id + 1
        low, high = wilson_interval(correct, len(examples))
        report[name] = {"top1": correct / len(examples), "ci95_low": low, "ci95_high": high, "n": len(examples)}
        print(json.dumps({"corruption": name, **report[name]}), flush=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("model/artifacts"))
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/oxford102"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--out", type=Path, default=Path("model/reports"))
    args = parser.parse_args(argv)
    report = measure(args.model_dir, args.data, args.split)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"robustness-{args.split}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
