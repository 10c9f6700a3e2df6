"""Is this one of our 102 species? The "not a flower" score, from the model's own features.

The exported model has a second output: the pooled penultimate features of the
photo. :class:`FlowerScorer` asks how close they lie to the training photos
themselves, as the cosine similarity to the k-th nearest one (deep k-NN, Sun et
al., 2022), which beat the softmax's confidence, energy and Mahalanobis
distances on our measurements (the model card's comparison):

    z = P^T (features - mean), then z / ||z||     P: the top principal directions
    similarity = k-th largest of  B z             B: the training photos' unit vectors

``flower_score = sigmoid(slope * (similarity - threshold))`` lies in [0, 1],
rises monotonically with the similarity and is 0.5 exactly at the shipped
threshold, so ``is_flower`` is ``flower_score >= 0.5``. The statistics (the
PCA, the bank of training photos stored as int8, k), the threshold (chosen so
that at least 98% of validation flowers are accepted) and the slope are written
by the model pipeline's export step into ``flower_score.npz`` beside the model,
so every retrained model ships a matching scorer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["BANK_SCALE", "SCORER_FILE", "FlowerScore", "FlowerScorer", "unit_rows"]

SCORER_FILE: Final = "flower_score.npz"
#: The bank's unit vectors are stored as round(127 * value): a cosine error below 1% of the threshold margin.
BANK_SCALE: Final = 127.0


@dataclass(frozen=True)
class FlowerScore:
    is_flower: bool
    flower_score: float  # in [0, 1]; 0.5 is the shipped threshold
    similarity: float  # the raw k-th nearest cosine similarity, for the pipeline's reports


def unit_rows(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each row scaled to length 1 (a zero row stays zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    result: npt.NDArray[np.float32] = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


class FlowerScorer:
    """Statistics loaded once; :meth:`score` costs one small matrix-vector product per photo."""

    def __init__(
        self,
        *,
        mean: npt.NDArray[np.float32],
        projection: npt.NDArray[np.float32],
        bank: npt.NDArray[np.int8],
        k: int,
        threshold: float,
        slope: float,
    ) -> None:
        if projection.shape[0] != mean.shape[0] or bank.ndim != 2 or bank.shape[1] != projection.shape[1]:
            raise ValueError(
                f"inconsistent statistics: mean {mean.shape}, projection {projection.shape}, bank {bank.shape}"
            )
        if not 1 <= k <= bank.shape[0]:
            raise ValueError(f"k={k} must lie in 1..{bank.shape[0]} (the bank's size)")
        self.mean = mean.astype(np.float32)
        self.projection = projection.astype(np.float32)
        self.bank = bank.astype(np.int8)
        # Held as float32 once, so that scoring is a single BLAS product (a few MB).
        self._bank = self.bank.astype(np.float32) / BANK_SCALE
        self.k = int(k)
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
                bank=stats["bank"],
                k=int(stats["k"]),
                threshold=float(stats["threshold"]),
                slope=float(stats["slope"]),
            )

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            mean=self.mean,
            projection=self.projection,
            bank=self.bank,
            k=np.int64(self.k),
            threshold=np.float64(self.threshold),
            slope=np.float64(self.slope),
        )

    def embed(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Rows of features ``(n, d)`` -> their unit vectors in the scorer's space ``(n, p)``."""
        centred = np.atleast_2d(features).astype(np.float32) - self.mean
        return unit_rows((centred @ self.projection).astype(np.float32))

    def similarities(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Rows of features ``(n, d)`` -> the cosine similarity of each to its k-th nearest training photo."""
        similarity = self.embed(features) @ self._bank.T  # (n, bank size)
        kth = np.partition(similarity, -self.k, axis=1)[:, -self.k]
        result: npt.NDArray[np.float32] = kth.astype(np.float32)
        return result

    def score_of(self, similarity: float) -> float:
        # Written with tanh so that no similarity overflows exp().
        return float(0.5 * (1 + np.tanh(0.5 * self.slope * (similarity - self.threshold))))

    def score(self, features: npt.NDArray[np.float32]) -> FlowerScore:
        similarity = float(self.similarities(features)[0])
        return FlowerScore(
            is_flower=similarity >= self.threshold, flower_score=self.score_of(similarity), similarity=similarity
        )
