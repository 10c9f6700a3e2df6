"""PyTorch datasets over the Oxford 102 examples, with the training augmentation."""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter
from torch.utils.data import Dataset

from flowers_model.data import Example
from flowers_serving.imaging import decode_image, fit_square, load_image

__all__ = ["Corruptions", "ImageDataset", "corrupt", "random_resized_crop"]


@dataclass(frozen=True)
class Corruptions:
    """Probabilities of the phone-photo corruptions applied after the crop (see TrainConfig)."""

    greyscale: float = 0.0
    rot90: float = 0.0
    blur: float = 0.0
    lowres: float = 0.0
    jpeg: float = 0.0


def corrupt(img: Image.Image, p: Corruptions, rng: random.Random) -> Image.Image:
    """Apply each corruption with its probability, in the order a phone photo meets them."""
    if rng.random() < p.rot90:
        img = img.transpose(
            rng.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270])
        )
    if rng.random() < p.greyscale:
        img = img.convert("L").convert("RGB")
    if rng.random() < p.blur:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 2.0)))
    if rng.random() < p.lowres:
        size = img.size
        small = rng.randint(40, 128)
        img = img.resize((small, small), Image.Resampling.BOX).resize(size, Image.Resampling.BILINEAR)
    if rng.random() < p.jpeg:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=rng.randint(10, 60))
        img = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return img


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
        corruptions: Corruptions | None = None,
        seed: int = 0,
    ) -> None:
        self.examples = examples
        self.size = size
        self.train = train
        self.crop_scale_min = crop_scale_min
        self.hflip = hflip
        self.color_jitter = color_jitter
        self.corruptions = corruptions or Corruptions()
        self.seed = seed
        self.epoch = 0  # set by the trainer so augmentation is deterministic per (seed, epoch, index)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        example = self.examples[index]
        data = example.path.read_bytes()
        if not self.train:
            arr = load_image(data, self.size)  # exactly the serving path
        else:
            rng = random.Random(hash((self.seed, self.epoch, index)))
            img = random_resized_crop(decode_image(data), self.size, self.crop_scale_min, rng)
            if self.hflip and rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if self.color_jitter:
                for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                    img = enhance(img).enhance(1.0 + rng.uniform(-self.color_jitter, self.color_jitter))
            img = corrupt(img, self.corruptions, rng)
            arr = np.asarray(img, dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float(), example.class_id
