"""The Oxford 102 data set on disk: splits and labels (no PyTorch here: evaluation runs without it).

The layout is the official archive's (``jpg/image_XXXXX.jpg``,
``imagelabels.mat``) plus ``class_names.txt`` and a ``splits.csv``
(``image,split,class_name``) naming the split of every image.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import scipy.io

__all__ = ["SPLITS", "Example", "load_class_names", "load_split"]

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Example:
    path: Path
    class_id: int  # 0-based: line number in class_names.txt


def load_class_names(data_dir: Path) -> list[str]:
    names = [line.strip() for line in (data_dir / "class_names.txt").read_text().splitlines() if line.strip()]
    if len(names) != 102:
        raise SystemExit(f"{data_dir}/class_names.txt has {len(names)} names, expected 102")
    return names


def load_split(data_dir: Path, split: str, *, limit_per_class: int = 0) -> list[Example]:
    """The examples of one split, labels from the official ``imagelabels.mat``."""
    if split not in SPLITS:
        raise SystemExit(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    labels = scipy.io.loadmat(data_dir / "imagelabels.mat")["labels"].ravel()
    names = load_class_names(data_dir)
    examples: list[Example] = []
    per_class: dict[int, int] = {}
    missing = 0
    with (data_dir / "splits.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["split"] != split:
                continue
            index = int(row["image"].removeprefix("image_").removesuffix(".jpg"))
            class_id = int(labels[index - 1]) - 1
            if names[class_id] != row["class_name"]:
                raise SystemExit(
                    f"{row['image']}: splits.csv says {row['class_name']!r}, labels say {names[class_id]!r}"
                )
            path = data_dir / "jpg" / row["image"]
            if not path.exists():
                missing += 1
                continue
            if limit_per_class and per_class.get(class_id, 0) >= limit_per_class:
                continue
            per_class[class_id] = per_class.get(class_id, 0) + 1
            examples.append(Example(path, class_id))
    if not examples:
        raise SystemExit(f"no images of split {split!r} under {data_dir}/jpg ({missing} listed but missing)")
    if missing:
        raise SystemExit(
            f"{missing} images of split {split!r} are listed in splits.csv but missing from {data_dir}/jpg"
        )
    return examples
