"""The classifier's last layer, refit on the shipped model's own features.

The exported network ends in pooled features (1,280 numbers) and a linear
layer to 102 logits. That layer was trained in float32 on augmented photos; the
shipped file computes int8 features. ``head.npz``, written by the model
pipeline (``python -m flowers_model.refit_head``, also run by ``export``),
holds a linear layer fitted on exactly those int8 features, of training photos
in colour, in greyscale and changed as phone photos are, with its own
temperature. When it is present the core takes its logits instead of the
file's: the same matrix-vector product the network would do (13 µs per photo
measured, against about 14 ms for the file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["HEAD_FILE", "LinearHead"]

HEAD_FILE: Final = "head.npz"


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

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        with np.load(path) as stored:
            return cls(
                weights=stored["weights"].astype(np.float32),
                bias=stored["bias"].astype(np.float32),
                temperature=float(stored["temperature"]),
            )

    def save(self, path: Path) -> None:
        # Uncompressed: float32 weights barely compress, and loading stays a plain read at cold start.
        np.savez(path, weights=self.weights, bias=self.bias, temperature=np.float64(self.temperature))
