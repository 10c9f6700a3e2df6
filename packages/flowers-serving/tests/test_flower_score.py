"""The k-NN "not a flower" scorer on small synthetic statistics (the real ones are checked by the model tests)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flowers_serving.classifier import default_model_dir
from flowers_serving.flower_score import SCORER_FILE, FlowerScorer, unit_rows


def _scorer(k: int = 2, threshold: float = 0.5, *, pca: bool = False) -> tuple[FlowerScorer, np.ndarray]:
    rng = np.random.default_rng(7)
    train = rng.normal(size=(40, 16)).astype(np.float32)
    mean = train.mean(axis=0) if pca else None
    projection = np.linalg.svd(train - mean, full_matrices=False)[2][:8].T.astype(np.float32) if pca else None
    rows = (train - mean) @ projection if pca else train
    bank, scales = FlowerScorer.quantize_bank(unit_rows(rows.astype(np.float32)))
    scorer = FlowerScorer(
        mean=mean,
        projection=projection,
        bank=bank,
        bank_scales=scales,
        feature_size=16,
        k=k,
        threshold=threshold,
        slope=10.0,
    )
    return scorer, train


@pytest.mark.parametrize("pca", [False, True])
def test_a_training_photo_is_its_own_nearest_neighbour(pca: bool) -> None:
    scorer, train = _scorer(k=1, pca=pca)
    similarity = scorer.similarities(train[:5])
    np.testing.assert_allclose(similarity, 1.0, atol=0.005)  # int8 rounding only


def test_the_kth_neighbour_is_never_closer_than_the_first() -> None:
    nearest, train = _scorer(k=1)
    third, _ = _scorer(k=3)
    queries = train[:10] + np.random.default_rng(1).normal(scale=0.5, size=train[:10].shape).astype(np.float32)
    assert np.all(third.similarities(queries) <= nearest.similarities(queries) + 1e-6)


def test_score_is_monotone_bounded_and_half_at_the_threshold() -> None:
    scorer, _ = _scorer(threshold=0.3)
    grid = np.linspace(-1, 1, 201)
    scores = np.array([scorer.score_of(float(s)) for s in grid])
    assert np.all(np.diff(scores) >= 0)
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    assert scorer.score_of(0.3) == pytest.approx(0.5)
    assert scorer.score_of(-1e9) == 0.0  # no overflow far from the threshold


def test_is_flower_agrees_with_the_score(tmp_path: Path) -> None:
    scorer, train = _scorer(threshold=0.6)
    far = np.full((1, 16), 50.0, np.float32)
    for features in (train[:1], far, -far):
        result = scorer.score(features)
        assert result.is_flower == (result.flower_score >= 0.5) == (result.similarity >= 0.6)


@pytest.mark.parametrize("pca", [False, True])
def test_round_trip_through_the_file(tmp_path: Path, pca: bool) -> None:
    scorer, train = _scorer(pca=pca)
    scorer.save(tmp_path / "s.npz")
    loaded = FlowerScorer.load(tmp_path / "s.npz")
    assert (loaded.k, loaded.threshold, loaded.slope, loaded.feature_size) == (2, 0.5, 10.0, 16)
    assert (loaded.projection is None) is not pca
    np.testing.assert_array_equal(loaded.similarities(train[:3]), scorer.similarities(train[:3]))


def test_the_file_is_stored_uncompressed(tmp_path: Path) -> None:
    """Loading is a plain read: inflating the shipped bank took 45 ms of every cold start."""
    scorer, _ = _scorer()
    scorer.save(tmp_path / "s.npz")
    shipped = default_model_dir() / SCORER_FILE
    assert shipped.exists(), shipped
    for path in (tmp_path / "s.npz", shipped):
        with zipfile.ZipFile(path) as archive:
            assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}, path


def test_inconsistent_statistics_are_refused() -> None:
    scorer, _ = _scorer()
    common: dict[str, Any] = {"mean": None, "projection": None, "feature_size": 16, "threshold": 0.0, "slope": 1.0}
    with pytest.raises(ValueError, match="inconsistent"):
        FlowerScorer(bank=scorer.bank[:, :4], bank_scales=scorer.bank_scales, k=1, **common)
    with pytest.raises(ValueError, match="inconsistent"):
        FlowerScorer(bank=scorer.bank, bank_scales=scorer.bank_scales[:3], k=1, **common)
    with pytest.raises(ValueError, match="k=41"):
        FlowerScorer(bank=scorer.bank, bank_scales=scorer.bank_scales, k=41, **common)


def test_greyscale_inputs_meet_the_greyscale_threshold(tmp_path: Path) -> None:
    scorer, train = _scorer(threshold=0.6)
    scorer.greyscale_threshold = 0.2
    query = train[:1] + np.random.default_rng(3).normal(scale=1.2, size=(1, 16)).astype(np.float32)
    similarity = float(scorer.similarities(query)[0])
    assert 0.2 < similarity < 0.6  # between the two thresholds: the kind of input decides
    colour, grey = scorer.score(query), scorer.score(query, greyscale=True)
    assert (colour.is_flower, grey.is_flower) == (False, True)
    assert colour.flower_score < 0.5 <= grey.flower_score
    assert scorer.score_of(0.2, greyscale=True) == pytest.approx(0.5)
    # Kept in the file; an older file without it scores greyscale inputs at the one threshold.
    scorer.save(tmp_path / "s.npz")
    assert FlowerScorer.load(tmp_path / "s.npz").greyscale_threshold == 0.2
    scorer.greyscale_threshold = None
    scorer.save(tmp_path / "old.npz")
    old = FlowerScorer.load(tmp_path / "old.npz")
    assert old.greyscale_threshold is None
    assert old.score(query, greyscale=True).is_flower is False


def _with_greyscale_bank(scorer: FlowerScorer, rows: np.ndarray) -> FlowerScorer:
    bank, scales = FlowerScorer.quantize_bank(scorer.embed(rows))
    return scorer.replace(greyscale_threshold=0.6, greyscale_bank=bank, greyscale_bank_scales=scales)


def test_greyscale_inputs_are_compared_with_the_greyscale_bank(tmp_path: Path) -> None:
    """A photo without colour is near the training photos in greyscale, not near the colour ones: its own bank."""
    scorer, train = _scorer(k=1, threshold=0.6)
    greyscale_train = np.random.default_rng(11).normal(size=(30, 16)).astype(np.float32)  # another place entirely
    scorer = _with_greyscale_bank(scorer, greyscale_train)
    query = greyscale_train[:1]
    assert scorer.similarities(query)[0] < 0.6 < scorer.similarities(query, greyscale=True)[0]
    assert (scorer.score(query).is_flower, scorer.score(query, greyscale=True).is_flower) == (False, True)
    # A colour training photo, sent without colour, is compared with the greyscale bank: far from it.
    assert scorer.score(train[:1]).is_flower
    assert not scorer.score(train[:1], greyscale=True).is_flower
    scorer.save(tmp_path / "s.npz")
    loaded = FlowerScorer.load(tmp_path / "s.npz")
    assert loaded.greyscale_bank is not None
    np.testing.assert_array_equal(
        loaded.similarities(greyscale_train[:3], greyscale=True),
        scorer.similarities(greyscale_train[:3], greyscale=True),
    )
    with zipfile.ZipFile(tmp_path / "s.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_an_inconsistent_greyscale_bank_is_refused() -> None:
    scorer, _ = _scorer()
    common: dict[str, Any] = {
        "mean": None,
        "projection": None,
        "feature_size": 16,
        "threshold": 0.0,
        "slope": 1.0,
        "bank": scorer.bank,
        "bank_scales": scorer.bank_scales,
        "k": 2,
    }
    with pytest.raises(ValueError, match="inconsistent greyscale bank"):
        FlowerScorer(greyscale_bank=scorer.bank[:, :4], greyscale_bank_scales=scorer.bank_scales, **common)
    with pytest.raises(ValueError, match="inconsistent greyscale bank"):
        FlowerScorer(greyscale_bank=scorer.bank, greyscale_bank_scales=None, **common)
    with pytest.raises(ValueError, match="inconsistent greyscale bank"):
        FlowerScorer(greyscale_bank=scorer.bank[:1], greyscale_bank_scales=scorer.bank_scales[:1], **common)


def test_the_shipped_scorer_has_a_greyscale_bank_as_large_as_the_colour_one() -> None:
    scorer = FlowerScorer.load(default_model_dir() / SCORER_FILE)
    assert scorer.greyscale_bank is not None
    assert scorer.greyscale_threshold is not None
    assert scorer.greyscale_bank.shape == scorer.bank.shape


def test_replace_changes_only_what_it_is_given() -> None:
    scorer, train = _scorer(threshold=0.5)
    moved = scorer.replace(threshold=0.7, slope=3.0)
    assert (moved.threshold, moved.slope, moved.k, scorer.threshold) == (0.7, 3.0, scorer.k, 0.5)
    np.testing.assert_array_equal(moved.similarities(train[:3]), scorer.similarities(train[:3]))
    with pytest.raises(TypeError, match="no thresold"):
        scorer.replace(thresold=0.7)
