"""Is this one of our 102 species? The "not a flower" score, from the model's own features.

The exported model has a second output: the pooled penultimate features of the
photo. :class:`FlowerScorer` asks how close they lie to the training photos
themselves, as the cosine similarity to the k-th nearest one (deep k-NN, Sun et
al., 2022), which beat the softmax's confidence, energy and Mahalanobis
distances on our measurements (the model card's comparison):

    z = features / ||features||
    similarity = k-th largest of  B z             B: the training photos' unit vectors

(A centred, PCA-reduced variant is supported by the same statistics file and
was measured too: it is smaller but let through more non-flowers.)

``flower_score = sigmoid(slope * (similarity - threshold))`` lies in [0, 1],
rises monotonically with the similarity and is 0.5 exactly at the shipped
threshold, so ``is_flower`` is ``flower_score >= 0.5`` (for a greyscale input,
the same with the greyscale threshold below: across the two kinds of input the
score is not one monotone function of the similarity). The statistics (the
bank of training photos as int8 with one scale per row, k), the threshold (chosen so
that at least 98% of validation flowers are accepted) and the slope are written
by the model pipeline's export step into ``flower_score.npz`` beside the model,
so every retrained model ships a matching scorer.

Greyscale photos lie further from the (colour) training photos: at the colour
threshold only 94% of greyscale validation flowers were accepted. The file may
hold a second threshold, chosen the same way on validation flowers in greyscale,
which the core applies to inputs without colour (``flowers_serving.head.is_greyscale``);
``flower_score`` is then 0.5 exactly at that threshold. It may also hold a second
bank, the training photos in greyscale, which such inputs are compared with
instead: a lower threshold on the colour bank let through greyscale non-flowers
(scans, microscopy, textures) that lie as close to colour flowers as greyscale
flowers do, while greyscale flowers lie much closer to greyscale flowers than
they do. That bank is cast to float on the first greyscale photo, not at the
cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["BANK_SCALE", "SCORER_FILE", "FlowerScore", "FlowerScorer", "unit_rows"]

SCORER_FILE: Final = "flower_score.npz"
#: Each bank row is stored as round(127 * value / max|value|) with its scale: cosine errors near 1e-3.
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


def _bank_fits(bank: npt.NDArray[np.int8], scales: npt.NDArray[np.float32], width: int) -> bool:
    """A bank is rows of ``width`` int8 values with one scale per row."""
    return bank.ndim == 2 and bank.shape[1] == width and scales.shape == (bank.shape[0],)


def _float_bank(bank: npt.NDArray[np.int8], scales: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The bank as float32 rows, cast and scaled in one pass (one array of tens of MB, not two)."""
    result: npt.NDArray[np.float32] = np.multiply(bank, scales[:, None], dtype=np.float32)
    return result


class FlowerScorer:
    """Statistics loaded once; :meth:`score` costs one small matrix-vector product per photo."""

    def __init__(
        self,
        *,
        mean: npt.NDArray[np.float32] | None,
        projection: npt.NDArray[np.float32] | None,
        bank: npt.NDArray[np.int8],
        bank_scales: npt.NDArray[np.float32],
        feature_size: int,
        k: int,
        threshold: float,
        slope: float,
        greyscale_threshold: float | None = None,
        greyscale_bank: npt.NDArray[np.int8] | None = None,
        greyscale_bank_scales: npt.NDArray[np.float32] | None = None,
    ) -> None:
        width = projection.shape[1] if projection is not None else feature_size
        if (greyscale_bank is None) != (greyscale_bank_scales is None) or (
            greyscale_bank is not None
            and greyscale_bank_scales is not None
            and (not _bank_fits(greyscale_bank, greyscale_bank_scales, width) or not 1 <= k <= greyscale_bank.shape[0])
        ):
            raise ValueError(
                "inconsistent greyscale bank: "
                f"{None if greyscale_bank is None else greyscale_bank.shape} rows, "
                f"{None if greyscale_bank_scales is None else greyscale_bank_scales.shape} scales, "
                f"width {width}, k={k}"
            )
        if (
            not _bank_fits(bank, bank_scales, width)
            or (projection is not None and projection.shape[0] != feature_size)
            or (mean is not None and mean.shape != (feature_size,))
        ):
            raise ValueError(
                f"inconsistent statistics: {feature_size} features, mean {None if mean is None else mean.shape}, "
                f"projection {None if projection is None else projection.shape}, bank {bank.shape}, "
                f"scales {bank_scales.shape}"
            )
        if not 1 <= k <= bank.shape[0]:
            raise ValueError(f"k={k} must lie in 1..{bank.shape[0]} (the bank's size)")
        self.mean = None if mean is None else mean.astype(np.float32)
        self.projection = None if projection is None else projection.astype(np.float32)
        self.bank = bank.astype(np.int8, copy=False)
        self.bank_scales = bank_scales.astype(np.float32, copy=False)
        self._feature_size = int(feature_size)
        # Held as float32 once, so that scoring is a single BLAS product (tens of MB for the full bank).
        # Cast and scaled in one pass: one 33 MB array, not two (its time is part of the cold start).
        self._bank = _float_bank(self.bank, self.bank_scales)
        self.k = int(k)
        self.threshold = float(threshold)
        self.slope = float(slope)
        self.greyscale_threshold = None if greyscale_threshold is None else float(greyscale_threshold)
        self.greyscale_bank = None if greyscale_bank is None else greyscale_bank.astype(np.int8, copy=False)
        self.greyscale_bank_scales = (
            None if greyscale_bank_scales is None else greyscale_bank_scales.astype(np.float32, copy=False)
        )
        self._greyscale_float: npt.NDArray[np.float32] | None = None  # cast when first needed

    def replace(self, **changes: Any) -> FlowerScorer:
        """A copy with some of the constructor's arguments changed (e.g. a threshold, or a greyscale bank)."""
        arguments: dict[str, Any] = {
            "mean": self.mean,
            "projection": self.projection,
            "bank": self.bank,
            "bank_scales": self.bank_scales,
            "feature_size": self._feature_size,
            "k": self.k,
            "threshold": self.threshold,
            "slope": self.slope,
            "greyscale_threshold": self.greyscale_threshold,
            "greyscale_bank": self.greyscale_bank,
            "greyscale_bank_scales": self.greyscale_bank_scales,
        }
        unknown = set(changes) - set(arguments)
        if unknown:
            raise TypeError(f"FlowerScorer has no {', '.join(sorted(unknown))}")
        return FlowerScorer(**(arguments | changes))

    @staticmethod
    def quantize_bank(unit: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
        """Rows of unit vectors -> int8 rows and one float32 scale per row."""
        peak = np.maximum(np.abs(unit).max(axis=1), 1e-12)
        bank = np.clip(np.round(unit / peak[:, None] * BANK_SCALE), -127, 127).astype(np.int8)
        return bank, (peak / BANK_SCALE).astype(np.float32)

    @property
    def feature_size(self) -> int:
        return self._feature_size

    @classmethod
    def load(cls, path: Path) -> FlowerScorer:
        with np.load(path) as stats:
            grey = float(stats["greyscale_threshold"]) if "greyscale_threshold" in stats.files else None
            has_grey_bank = "greyscale_bank" in stats.files
            return cls(
                mean=stats["mean"] if "mean" in stats.files else None,
                projection=stats["projection"] if "projection" in stats.files else None,
                bank=stats["bank"],
                bank_scales=stats["bank_scales"],
                feature_size=int(stats["feature_size"]),
                k=int(stats["k"]),
                threshold=float(stats["threshold"]),
                slope=float(stats["slope"]),
                greyscale_threshold=grey,
                greyscale_bank=stats["greyscale_bank"] if has_grey_bank else None,
                greyscale_bank_scales=stats["greyscale_bank_scales"] if has_grey_bank else None,
            )

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {
            "bank": self.bank,
            "bank_scales": self.bank_scales,
            "feature_size": np.int64(self._feature_size),
            "k": np.int64(self.k),
            "threshold": np.float64(self.threshold),
            "slope": np.float64(self.slope),
        }
        if self.greyscale_threshold is not None:
            arrays["greyscale_threshold"] = np.float64(self.greyscale_threshold)
        if self.greyscale_bank is not None and self.greyscale_bank_scales is not None:
            arrays["greyscale_bank"] = self.greyscale_bank
            arrays["greyscale_bank_scales"] = self.greyscale_bank_scales
        if self.mean is not None:
            arrays["mean"] = self.mean
        if self.projection is not None:
            arrays["projection"] = self.projection
        # Uncompressed: inflating the 8 MB int8 bank took 45 ms of every cold start (a plain read takes 3);
        # the file is 8.4 MB instead of 4.4.
        np.savez(path, **arrays)

    def embed(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Rows of features ``(n, d)`` -> their unit vectors in the scorer's space."""
        rows = np.atleast_2d(features).astype(np.float32)
        if self.mean is not None:
            rows = rows - self.mean
        if self.projection is not None:
            rows = (rows @ self.projection).astype(np.float32)
        return unit_rows(rows)

    def _bank_for(self, *, greyscale: bool) -> npt.NDArray[np.float32]:
        if not greyscale or self.greyscale_bank is None or self.greyscale_bank_scales is None:
            return self._bank
        if self._greyscale_float is None:
            # Two threads may both cast it once; each gets the same array.
            self._greyscale_float = _float_bank(self.greyscale_bank, self.greyscale_bank_scales)
        return self._greyscale_float

    def similarities(self, features: npt.NDArray[np.float32], *, greyscale: bool = False) -> npt.NDArray[np.float32]:
        """Rows of features ``(n, d)`` -> the cosine similarity of each to its k-th nearest training photo
        (in greyscale, for inputs without colour, when the file has that bank)."""
        similarity = self.embed(features) @ self._bank_for(greyscale=greyscale).T  # (n, bank size)
        kth = np.partition(similarity, -self.k, axis=1)[:, -self.k]
        result: npt.NDArray[np.float32] = kth.astype(np.float32)
        return result

    def threshold_for(self, *, greyscale: bool = False) -> float:
        """The similarity at which a photo counts as a flower: the greyscale one for an input without colour."""
        if greyscale and self.greyscale_threshold is not None:
            return self.greyscale_threshold
        return self.threshold

    def score_of(self, similarity: float, *, greyscale: bool = False) -> float:
        # Written with tanh so that no similarity overflows exp().
        threshold = self.threshold_for(greyscale=greyscale)
        return float(0.5 * (1 + np.tanh(0.5 * self.slope * (similarity - threshold))))

    def score(self, features: npt.NDArray[np.float32], *, greyscale: bool = False) -> FlowerScore:
        """``greyscale``: the input has no colour (the core tells), so the greyscale bank and threshold apply."""
        similarity = float(self.similarities(features, greyscale=greyscale)[0])
        return FlowerScore(
            is_flower=similarity >= self.threshold_for(greyscale=greyscale),
            flower_score=self.score_of(similarity, greyscale=greyscale),
            similarity=similarity,
        )
