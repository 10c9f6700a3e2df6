"""The Oxford 102 data set on disk: where it is, splits and labels (no PyTorch here: evaluation runs without it).

The layout is the official archive's (``jpg/image_XXXXX.jpg``,
``imagelabels.mat``) plus ``class_names.txt`` and a ``splits.csv``
(``image,split,class_name``) naming the split of every image.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import scipy.io

__all__ = [
    "DATA_FILES",
    "PREPARED_DATA_DIR",
    "SHARED_DATA_DIR",
    "SPLITS",
    "Example",
    "data_dir_or_exit",
    "default_data_dir",
    "load_class_names",
    "load_split",
]

SPLITS = ("train", "validation", "test")
#: What every stage reads; ``nox -s prepare`` writes all of it.
DATA_FILES = ("class_names.txt", "imagelabels.mat", "splits.csv", "jpg")
#: Paths relative to the repository root, where nox runs every stage.
SHARED_DATA_DIR = Path("../shared/datasets/oxford102")  # the copy beside the clone on our build machines
PREPARED_DATA_DIR = Path("model/data/oxford102")  # where `nox -s prepare` puts it (git-ignored)


def default_data_dir() -> Path:
    """``$FLOWERS_DATA``, else the shared copy beside the clone if there is one, else where prepare puts it."""
    if env := os.environ.get("FLOWERS_DATA"):
        return Path(env)
    return SHARED_DATA_DIR if SHARED_DATA_DIR.exists() else PREPARED_DATA_DIR


def data_dir_or_exit(data_dir: Path) -> Path:
    """``data_dir`` if it holds the data set; else one line on stderr saying how to get it, and exit 2."""
    missing = [name for name in DATA_FILES if not (data_dir / name).exists()]
    if missing:
        what = "nothing" if not data_dir.exists() else f"no {', '.join(missing)}"
        print(
            f"error: no Oxford 102 data set at {data_dir} ({what} there): run `nox -s prepare` to download it, "
            "or point FLOWERS_DATA (or --data) at a copy",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return data_dir


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
