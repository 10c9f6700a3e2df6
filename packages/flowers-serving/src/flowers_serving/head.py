"""The classifier's last layer, refit on the shipped model's own features.

The exported network ends in pooled features (1,280 numbers) and a linear
layer to 102 logits. That layer was trained in float32 on augmented photos; the
shipped file computes int8 features. ``head.npz``, written by the model
pipeline (``python -m flowers_model.refit_head``, also run by ``export``),
holds a linear layer fitted on exactly those int8 features, of training photos
in colour, in greyscale and changed as phone photos are, with its own
temperature. When it is present the core takes its logits instead of the
file's: the same matrix-vector product the network would do (about 0.2 ms per
photo with the greyscale test below, against about 14 ms for the file).

The file may hold a second layer for greyscale photos, fitted on greyscale
views alone (the photo and its crops, and the blurred, turned, brightened and
shrunk photos, all in greyscale). The shared layer must also use colour, which a
greyscale photo lacks: on validation photos in greyscale the greyscale layer
scores 95.48% against 95.24%, and after a blur of radius 2 88.8% against 85.5%
(every figure in the model card). The core picks it when the model's input has
no colour (see :func:`is_greyscale`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["GREYSCALE_SHARE", "GREYSCALE_SPREAD", "HEAD_FILE", "Head", "LinearHead", "is_greyscale"]

HEAD_FILE: Final = "head.npz"
#: An input counts as greyscale when at most GREYSCALE_SHARE of its pixels have their largest and smallest channel
#: more than GREYSCALE_SPREAD levels apart. A greyscale JPEG or PNG decodes to exactly equal channels (a lossy
#: WebP to 1 level apart on a few pixels); of the 7,368 training and validation photos, the least colourful (white
#: flowers on black, with a yellow centre or a red stem) have 5.8% of their pixels past that spread. A mean over
#: all pixels would not do: theirs is under 3.3 levels.
GREYSCALE_SPREAD: Final = 8
GREYSCALE_SHARE: Final = 0.01


@dataclass(frozen=True)
class LinearHead:
    """``logits = (features @ weights.T + bias) / temperature``: calibrated logits, like the file's output."""

    weights: npt.NDArray[np.float32]  # (classes, features)
    bias: npt.NDArray[np.float32]  # (classes,)
    temperature: float

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.bias.shape != (self.weights.shape[0],):
            raise ValueError(f"inconsistent head: weights {self.weights.shape}, bias {self.bias.shape}")
        if not (np.isfinite(self.weights).all() and np.isfinite(self.bias).all()):
            raise ValueError("head weights must be finite")
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    @property
    def classes(self) -> int:
        return int(self.weights.shape[0])

    @property
    def feature_size(self) -> int:
        return int(self.weights.shape[1])

    def logits(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One feature vector ``(d,)`` (or rows ``(n, d)``) -> calibrated logits."""
        raw = (features.astype(np.float32) @ self.weights.T + self.bias) / np.float32(self.temperature)
        result: npt.NDArray[np.float32] = raw.astype(np.float32)
        return result


def is_greyscale(pixels: npt.NDArray[np.uint8]) -> bool:
    """Whether an ``(h, w, 3)`` image has no colour: all but :data:`GREYSCALE_SHARE` of its pixels have channels
    within :data:`GREYSCALE_SPREAD` levels of each other."""
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    # Channel by channel: numpy's max/min over a last axis of 3 take 15 times as long (2.9 ms against 0.18).
    spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    return bool(np.count_nonzero(spread > GREYSCALE_SPREAD) <= GREYSCALE_SHARE * spread.size)


@dataclass(frozen=True)
class Head:
    """What ``head.npz`` holds: the layer for every photo, and optionally one for greyscale photos."""

    colour: LinearHead
    greyscale: LinearHead | None = None

    def __post_init__(self) -> None:
        if self.greyscale is not None and self.greyscale.weights.shape != self.colour.weights.shape:
            raise ValueError(
                f"inconsistent head: greyscale weights {self.greyscale.weights.shape}, "
                f"colour {self.colour.weights.shape}"
            )

    @property
    def classes(self) -> int:
        return self.colour.classes

    @property
    def feature_size(self) -> int:
        return self.colour.feature_size

    def for_pixels(self, pixels: npt.NDArray[np.uint8], *, greyscale: bool | None = None) -> LinearHead:
        """The layer for this model input: the greyscale one when there is one and the input has no colour
        (``greyscale``, when the caller has already asked :func:`is_greyscale`)."""
        if self.greyscale is not None and (is_greyscale(pixels) if greyscale is None else greyscale):
            return self.greyscale
        return self.colour

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path) as stored:
            names = set(stored.files)
            layers: dict[str, LinearHead] = {}
            for prefix in ("", "grey_"):
                keys = [f"{prefix}{key}" for key in ("weights", "bias", "temperature")]
                present = [key for key in keys if key in names]
                if present and len(present) < len(keys):
                    raise ValueError(f"{path.name}: {sorted(set(keys) - set(present))} missing beside {present}")
                if present:
                    layers[prefix] = LinearHead(
                        weights=stored[keys[0]].astype(np.float32),
                        bias=stored[keys[1]].astype(np.float32),
                        temperature=float(stored[keys[2]]),
                    )
        if "" not in layers:
            raise ValueError(f"{path.name} holds no colour layer (weights, bias, temperature)")
        return cls(colour=layers[""], greyscale=layers.get("grey_"))

    def save(self, path: Path) -> None:
        # Uncompressed: float32 weights barely compress, and loading stays a plain read at cold start.
        arrays: dict[str, npt.NDArray[Any]] = {}
        for prefix, layer in (("", self.colour), ("grey_", self.greyscale)):
            if layer is not None:
                arrays[f"{prefix}weights"] = layer.weights
                arrays[f"{prefix}bias"] = layer.bias
                arrays[f"{prefix}temperature"] = np.float64(layer.temperature)
        np.savez(path, **arrays)  # type: ignore[arg-type]
