"""The "not a flower" measurements: AUROC, thresholds, the candidate methods and the non-flower set."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from flowers_model.nonflowers import CATEGORIES, build, load_manifest
from flowers_model.not_a_flower import auroc, threshold_for
from flowers_model.ood_methods import fit_methods


def test_auroc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    positive, negative = rng.normal(1, 1, 50), rng.normal(0, 1, 40).round(1)
    pairs = (positive[:, None] > negative[None, :]).mean() + 0.5 * (positive[:, None] == negative[None, :]).mean()
    assert auroc(positive, negative) == pytest.approx(pairs)
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5


@pytest.mark.parametrize("accept", [0.9, 0.95, 0.98, 0.985, 1.0])
def test_threshold_accepts_at_least_the_share_asked(accept: float) -> None:
    scores = np.random.default_rng(1).normal(size=819)
    threshold = threshold_for(scores, accept)
    assert (scores >= threshold).mean() >= accept
    assert (scores > threshold).mean() < accept  # and no higher threshold would do


def test_feature_methods_separate_far_points_from_the_training_clusters() -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 5, (5, 300))
    labels = np.repeat(np.arange(5), 80)
    train = centres[labels] + rng.normal(0, 1, (400, 300))
    inside = centres[np.arange(50) % 5] + rng.normal(0, 1, (50, 300))
    outside = rng.normal(0, 5, (50, 300))
    logits_in, logits_out = np.zeros((50, 5)), np.zeros((50, 5))
    by_name = {m.name: m for m in fit_methods(train, labels)}
    shipped = "k-NN (k=10, int8 bank) (shipped)"
    for name in ("Mahalanobis (full)", "Mahalanobis (top 64)", "PPCA (top 64 + residual)", "k-NN (k=10)", shipped):
        method = by_name[name]
        assert auroc(method.score(logits_in, inside), method.score(logits_out, outside)) > 0.99, name


def test_the_shipped_scorer_keeps_the_asked_share_of_validation_flowers() -> None:
    from flowers_model.not_a_flower import calibrated
    from flowers_model.ood_methods import knn_scorer

    rng = np.random.default_rng(4)
    centres = rng.normal(0, 5, (6, 64))
    train = centres[np.arange(300) % 6] + rng.normal(0, 1, (300, 64))
    validation = centres[np.arange(120) % 6] + rng.normal(0, 1, (120, 64))
    scorer, _ = calibrated(knn_scorer(train, dims=32, k=5), validation, accept=0.98)
    decisions = [scorer.score(row[None].astype(np.float32)) for row in validation]
    assert np.mean([d.is_flower for d in decisions]) >= 0.98
    assert np.median([d.flower_score for d in decisions]) == pytest.approx(0.99, abs=1e-3)
    far = scorer.score(rng.normal(0, 5, (1, 64)).astype(np.float32))
    assert not far.is_flower
    assert far.flower_score < 0.5


def test_the_non_flower_set_is_deterministic_and_labelled(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    pytest.importorskip("mahotas")
    pytest.importorskip("sklearn")
    rows = build(tmp_path / "a", seed=3)
    again = build(tmp_path / "b", seed=3)
    assert [r[1:] for r in rows] == [r[1:] for r in again]
    assert [p.read_bytes() for p, _, _ in rows[:5]] == [p.read_bytes() for p, _, _ in again[:5]]
    assert {category for _, category, _ in rows} == set(CATEGORIES)
    assert len(load_manifest(tmp_path / "a")) == len(rows)
    with (tmp_path / "a" / "manifest.csv").open() as fh:
        assert not any("flower.jpg" in row["source"] for row in csv.DictReader(fh))


def test_wilson_interval_brackets_the_proportion_and_stays_in_range() -> None:
    from flowers_model.robustness import wilson_interval

    low, high = wilson_interval(806, 819)
    assert low < 806 / 819 < high
    assert low > 0.97
    assert high < 0.995
    assert wilson_interval(819, 819)[1] == 1.0
    assert wilson_interval(0, 10)[0] == 0.0


def test_corruptions_change_the_photo_but_keep_it_decodable(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from flowers_model.robustness import CORRUPTIONS, corrupt_bytes

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 40, 90)).save(buffer, format="JPEG")
    for name in CORRUPTIONS:
        out = Image.open(io.BytesIO(corrupt_bytes(buffer.getvalue(), name)))
        expected = {"rotated 90°": (200, 300), "shorter side 96 px": (144, 96)}.get(name, (300, 200))
        assert out.size == expected, name
        if name == "greyscale":
            r, g, b = out.convert("RGB").getpixel((10, 10))
            assert abs(r - g) <= 2
            assert abs(g - b) <= 2


def test_corruptions_can_end_in_greyscale() -> None:
    import io

    from PIL import Image

    from flowers_model.robustness import CORRUPTIONS, corrupt_bytes
    from flowers_serving.head import is_greyscale

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 40, 90)).save(buffer, format="JPEG")
    for name in CORRUPTIONS:
        grey = np.asarray(Image.open(io.BytesIO(corrupt_bytes(buffer.getvalue(), name, greyscale=True))).convert("RGB"))
        assert is_greyscale(grey), name
        colour = np.asarray(Image.open(io.BytesIO(corrupt_bytes(buffer.getvalue(), name))).convert("RGB"))
        assert is_greyscale(colour) == (name == "greyscale"), name
