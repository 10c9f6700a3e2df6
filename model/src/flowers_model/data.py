"""The Oxford 102 data set on disk: splits, labels, and PyTorch datasets.

The layout is the official archive's (``jpg/image_XXXXX.jpg``,
``imagelabels.mat``) plus ``class_names.txt`` and a ``splits.csv``
(``image,split,class_name``) naming the split of every image.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import Dataset

from flowers_serving.imaging import decode_image, fit_square

__all__ = ["Example", "ImageDataset", "load_class_names", "load_split", "random_resized_crop"]

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


def random_resized_crop(img: Image.Image, size: int, scale_min: float, rng: random.Random) -> Image.Image:
    """Inception-style crop: random area in [scale_min, 1], aspect in [3/4, 4/3]."""
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(scale_min, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = rng.randint(0, width - w)
            top = rng.randint(0, height - h)
            return img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    return Image.fromarray(fit_square(img, size))


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images as float32 CHW tensors of raw 0-255 pixels (the model normalises)."""

    def __init__(
        self,
        examples: list[Example],
        size: int,
        *,
        train: bool,
        crop_scale_min: float = 0.3,
        hflip: bool = True,
        color_jitter: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.examples = examples
        self.size = size
        self.train = train
        self.crop_scale_min = crop_scale_min
        self.hflip = hflip
        self.color_jitter = color_jitter
        self.seed = seed
        self.epoch = 0  # set by the trainer so augmentation is deterministic per (seed, epoch, index)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        example = self.examples[index]
        data = example.path.read_bytes()
        if not self.train:
            # Exactly the serving path: flowers_serving.imaging.load_image.
            from flowers_serving.imaging import load_image

            arr = load_image(data, self.size)
        else:
            rng = random.Random(hash((self.seed, self.epoch, index)))
            img = random_resized_crop(decode_image(data), self.size, self.crop_scale_min, rng)
            if self.hflip and rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if self.color_jitter:
                for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                    img = enhance(img).enhance(1.0 + rng.uniform(-self.color_jitter, self.color_jitter))
            arr = np.asarray(img, dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float(), example.class_id
