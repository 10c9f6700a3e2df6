"""Is this one of our 102 species? The "not a flower" score, from the model's own features.

The exported model has a second output: the pooled penultimate features of the
photo. :class:`FlowerScorer` measures how far they lie from the training
photos of the nearest species, as a Mahalanobis distance with one covariance
shared by all species (Lee et al., 2018), in a whitened PCA space that keeps
the statistics small:

    z = W^T (features - mean)          W: PCA directions scaled by 1/sqrt(variance)
    distance = min_c || z - m_c ||^2   m_c: mean of species c's training photos in that space

``flower_score = sigmoid(slope * (threshold - distance))`` lies in [0, 1], falls
monotonically with the distance and is 0.5 exactly at the shipped threshold,
so ``is_flower`` is ``flower_score >= 0.5``. The statistics, the threshold
(chosen so that at least 98% of validation flowers are accepted) and the slope
are written by the model pipeline's export step into ``flower_score.npz``
beside the model, so every retrained model ships a matching scorer. Why this
method and not the softmax's own confidence: see the model card's comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["SCORER_FILE", "FlowerScore", "FlowerScorer"]

SCORER_FILE: Final = "flower_score.npz"


@dataclass(frozen=True)
class FlowerScore:
    is_flower: bool
    flower_score: float  # in [0, 1]; 0.5 is the shipped threshold
    distance: float  # the raw Mahalanobis distance, for the pipeline's reports


class FlowerScorer:
    """Statistics loaded once; :meth:`score` costs two small matrix products."""

    def __init__(
        self,
        *,
        mean: npt.NDArray[np.float32],
        projection: npt.NDArray[np.float32],
        class_means: npt.NDArray[np.float32],
        threshold: float,
        slope: float,
    ) -> None:
        if projection.shape[0] != mean.shape[0] or class_means.shape[1] != projection.shape[1]:
            raise ValueError(
                f"inconsistent statistics: mean {mean.shape}, projection {projection.shape}, "
                f"class means {class_means.shape}"
            )
        self.mean = mean.astype(np.float32)
        self.projection = projection.astype(np.float32)
        self.class_means = class_means.astype(np.float32)
        # ||z - m||^2 = ||z||^2 - 2 z.m + ||m||^2: precompute the last term once.
        self._class_norms = np.einsum("ij,ij->i", self.class_means, self.class_means)
        self.threshold = float(threshold)
        self.slope = float(slope)

    @property
    def feature_size(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def load(cls, path: Path) -> FlowerScorer:
        with np.load(path) as stats:
            return cls(
                mean=stats["mean"],
                projection=stats["projection"],
                class_means=stats["class_means"],
                threshold=float(stats["threshold"]),
                slope=float(stats["slope"]),
            )

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            mean=self.mean,
            projection=self.projection,
            class_means=self.class_means,
            threshold=np.float64(self.threshold),
            slope=np.float64(self.slope),
        )

    def distances(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Rows of features ``(n, d)`` -> the distance of each to its nearest species ``(n,)``."""
        z = (np.atleast_2d(features).astype(np.float32) - self.mean) @ self.projection
        squared = np.einsum("ij,ij->i", z, z)[:, None] - 2 * z @ self.class_means.T + self._class_norms
        result: npt.NDArray[np.float32] = np.maximum(squared.min(axis=1), 0).astype(np.float32)
        return result

    def score_of(self, distance: float) -> float:
        # Written with tanh so that no distance overflows exp().
        return float(0.5 * (1 + np.tanh(0.5 * self.slope * (self.threshold - distance))))

    def score(self, features: npt.NDArray[np.float32]) -> FlowerScore:
        distance = float(self.distances(features)[0])
        return FlowerScore(
            is_flower=distance <= self.threshold, flower_score=self.score_of(distance), distance=distance
        )
