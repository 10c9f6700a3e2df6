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

from flowers_serving.flower_score import BANK_SCALE, FlowerScorer, unit_rows

__all__ = ["DEFAULT_DIMS", "DEFAULT_K", "Fitted", "fit_methods", "knn_scorer", "within_class_pca"]

Array = npt.NDArray[np.float64]

#: Principal directions of the features the shipped k-NN scorer keeps, and its k (see the comparison).
DEFAULT_DIMS = 256
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


def knn_scorer(train_features: Array, *, dims: int = DEFAULT_DIMS, k: int = DEFAULT_K) -> FlowerScorer:
    """The k-NN scorer's statistics from training flowers: PCA to ``dims`` directions, an int8 bank of unit vectors.

    Threshold and slope are left at 0 and 1; :func:`fit_scorer` sets them from validation flowers.
    """
    mean = train_features.mean(axis=0)
    centred = train_features - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / len(centred))
    projection = vectors[:, np.argsort(values)[::-1][:dims]].astype(np.float32)
    unit = unit_rows((centred @ projection).astype(np.float32))
    bank = np.clip(np.round(unit * BANK_SCALE), -127, 127).astype(np.int8)
    return FlowerScorer(mean=mean.astype(np.float32), projection=projection, bank=bank, k=k, threshold=0.0, slope=1.0)


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
    for dims in (64, 128, DEFAULT_DIMS):
        scorer = knn_scorer(train_features, dims=dims)
        shipped = " (shipped)" if dims == DEFAULT_DIMS else ""
        fitted.append(
            Fitted(
                f"k-NN (k={DEFAULT_K}, PCA {dims}, int8){shipped}",
                f"centred, top {dims} principal directions, int8 bank of unit vectors: the serving scorer",
                lambda lg, f, s=scorer: s.similarities(f.astype(np.float32)).astype(np.float64),
                scorer.bank.nbytes + 4 * (scorer.mean.size + scorer.projection.size),
            )
        )
    return fitted


def _softmax_max(logits: Array) -> Array:
    result: Array = np.exp(logits.max(axis=1) - _logsumexp(logits))
    return result
