"""Candidate "not a flower" scores, compared on the same features: higher = more like our flowers.

Every method takes what the exported model gives for a photo (calibrated
logits and pooled penultimate features) and statistics fitted on training
flowers only. The comparison in :mod:`flowers_model.not_a_flower` measures
each on validation flowers against the non-flower set; the serving scorer
(:class:`flowers_serving.flower_score.FlowerScorer`) implements the one we ship.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flowers_serving.flower_score import FlowerScorer, unit_rows

__all__ = ["DEFAULT_DIMS", "DEFAULT_K", "Fitted", "fit_methods", "knn_scorer", "within_class_pca"]

Array = npt.NDArray[np.float64]

#: The shipped k-NN scorer keeps every feature dimension (None) and its k is 10 (see the comparison).
DEFAULT_DIMS: int | None = None
DEFAULT_K = 10


@dataclass(frozen=True)
class Fitted:
    """One fitted method: ``score(logits, features)`` and the bytes its statistics take."""

    name: str
    description: str
    score: Callable[[Array, Array], Array]
    stats_bytes: int


def _logsumexp(logits: Array) -> Array:
    peak = logits.max(axis=1, keepdims=True)
    result: Array = (peak + np.log(np.exp(logits - peak).sum(axis=1, keepdims=True)))[:, 0]
    return result


def within_class_pca(features: Array, labels: npt.NDArray[np.int64]) -> tuple[Array, Array, Array, Array]:
    """Global mean, class means, and the eigenvalues/vectors (descending) of the shared within-class covariance."""
    mean = features.mean(axis=0)
    classes = np.unique(labels)
    class_means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    centred = features - class_means[np.searchsorted(classes, labels)]
    covariance = centred.T @ centred / len(features)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    return mean, class_means, np.maximum(values[order], 1e-12), vectors[:, order]


def _mahalanobis(
    mean: Array, class_means: Array, values: Array, vectors: Array, k: int, residual: bool
) -> Callable[[Array, Array], Array]:
    """-(min over classes of the squared Mahalanobis distance in the top-k within-class directions),
    plus, with ``residual``, the squared distance off that subspace over its mean variance (a PPCA)."""
    basis = vectors[:, :k] / np.sqrt(values[:k])
    centred_means = (class_means - mean) @ basis
    noise = float(values[k:].mean()) if residual and k < len(values) else 0.0

    def score(logits: Array, features: Array) -> Array:
        centred = features - mean
        z = centred @ basis
        squared = (z * z).sum(1)[:, None] - 2 * z @ centred_means.T + (centred_means**2).sum(1)
        distance = squared.min(axis=1)
        if noise:
            off = (centred * centred).sum(1) - ((z * np.sqrt(values[:k])) ** 2).sum(1)
            distance = distance + np.maximum(off, 0) / noise
        result: Array = -distance
        return result

    return score


def _knn(train: Array, k: int) -> Callable[[Array, Array], Array]:
    bank = train / np.linalg.norm(train, axis=1, keepdims=True)

    def score(logits: Array, features: Array) -> Array:
        unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        similarity = unit @ bank.T
        result: Array = np.sort(similarity, axis=1)[:, -k]  # cosine similarity to the k-th nearest
        return result

    return score


def knn_scorer(
    train_features: Array, *, dims: int | None = DEFAULT_DIMS, k: int = DEFAULT_K, centre: bool = False
) -> FlowerScorer:
    """The k-NN scorer's statistics from training flowers: an int8 bank of their unit vectors.

    ``dims=None`` keeps every feature (what ships); otherwise the features are
    projected on their top ``dims`` principal directions (centred first with
    ``centre``). Threshold and slope are left at 0 and 1; ``fit_scorer`` sets them.
    """
    size = train_features.shape[1]
    mean = train_features.mean(axis=0) if centre else None
    rows = train_features - mean if mean is not None else train_features
    projection = None
    if dims is not None:
        values, vectors = np.linalg.eigh(rows.T @ rows / len(rows))
        projection = vectors[:, np.argsort(values)[::-1][:dims]].astype(np.float32)
        rows = rows @ projection
    bank, scales = FlowerScorer.quantize_bank(unit_rows(rows.astype(np.float32)))
    return FlowerScorer(
        mean=None if mean is None else mean.astype(np.float32),
        projection=projection,
        bank=bank,
        bank_scales=scales,
        feature_size=size,
        k=k,
        threshold=0.0,
        slope=1.0,
    )


def fit_methods(train_features: Array, train_labels: npt.NDArray[np.int64]) -> list[Fitted]:
    """Fit every candidate on the training flowers."""
    mean, class_means, values, vectors = within_class_pca(train_features, train_labels)
    d = train_features.shape[1]
    c = len(class_means)
    fitted = [
        Fitted("max softmax", "top-1 probability (v1's only signal)", lambda lg, f: _softmax_max(lg), 0),
        Fitted("max logit", "largest calibrated logit", lambda lg, f: lg.max(axis=1), 0),
        Fitted("energy", "logsumexp of the logits (Liu et al., 2020)", lambda lg, f: _logsumexp(lg), 0),
        Fitted(
            "Mahalanobis (full)",
            f"shared within-class covariance, all {d} dimensions (Lee et al., 2018)",
            _mahalanobis(mean, class_means, values, vectors, d, residual=False),
            4 * (d * d + c * d + d),
        ),
    ]
    for k in (64, 128, 256):
        fitted.append(
            Fitted(
                f"Mahalanobis (top {k})",
                f"the {k} largest within-class directions",
                _mahalanobis(mean, class_means, values, vectors, k, residual=False),
                4 * (d * k + c * k + d),
            )
        )
        fitted.append(
            Fitted(
                f"PPCA (top {k} + residual)",
                f"top {k} directions plus the distance off them over its mean variance",
                _mahalanobis(mean, class_means, values, vectors, k, residual=True),
                4 * (d * k + c * k + d + k),
            )
        )
    for k in (1, 10, 50):
        fitted.append(
            Fitted(
                f"k-NN (k={k})",
                f"cosine similarity to the {k}th nearest training photo, all {d} dims, float32 (Sun et al., 2022)",
                _knn(train_features, k),
                4 * train_features.size,
            )
        )
    variants: list[tuple[str, str, FlowerScorer]] = [
        (
            f"k-NN (k={DEFAULT_K}, int8 bank) (shipped)",
            f"the serving scorer: all {d} dims, one int8 row with its scale per training photo",
            knn_scorer(train_features, dims=None),
        ),
        *[
            (
                f"k-NN (k={DEFAULT_K}, centred, PCA {dims}, int8)",
                f"centred, top {dims} principal directions, int8 bank: smaller",
                knn_scorer(train_features, dims=dims, centre=True),
            )
            for dims in (128, 256)
        ],
        (
            f"k-NN (k={DEFAULT_K}, PCA 256, int8)",
            "top 256 principal directions of the uncentred features, int8 bank",
            knn_scorer(train_features, dims=256),
        ),
    ]
    for name, description, scorer in variants:
        fitted.append(
            Fitted(
                name,
                description,
                lambda lg, f, s=scorer: s.similarities(f.astype(np.float32)).astype(np.float64),
                scorer.bank.nbytes
                + scorer.bank_scales.nbytes
                + sum(a.nbytes for a in (scorer.mean, scorer.projection) if a is not None),
            )
        )
    return fitted


def _softmax_max(logits: Array) -> Array:
    result: Array = np.exp(logits.max(axis=1) - _logsumexp(logits))
    return result
