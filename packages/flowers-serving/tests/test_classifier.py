from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import FIXTURES

from flowers_serving import Classifier
from flowers_serving.classifier import MAX_TOP_K, default_model_dir, softmax
from flowers_serving.errors import BadRequest


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_env()


def test_runtime_is_the_one_under_test(classifier: Classifier) -> None:
    expected = os.environ.get("FLOWERS_EXPECT_RUNTIME")
    if expected:
        assert classifier.info.runtime == expected
    assert classifier.info.num_threads == int(os.environ.get("FLOWERS_NUM_THREADS", "1"))


def test_packaged_model_matches_its_labels(classifier: Classifier) -> None:
    labels = (default_model_dir() / "labels.txt").read_text().splitlines()
    assert len(labels) == 102
    assert classifier.labels == labels
    assert classifier.info.input_size >= 224


@pytest.mark.parametrize("photo", sorted((FIXTURES / "flowers").glob("*.jpg")), ids=lambda p: p.name)
def test_classifies_real_photos(classifier: Classifier, photo: object) -> None:
    from pathlib import Path

    assert isinstance(photo, Path)
    expected = int(photo.name.split("-", 1)[0])
    result = classifier.classify(photo.read_bytes(), top_k=5)
    assert result.predictions[0].class_id == expected
    assert result.predictions[0].label == classifier.labels[expected - 1]
    scores = [p.score for p in result.predictions]
    assert scores == sorted(scores, reverse=True)
    assert result.predictions[0].score > 0.3
    # The shipped model has the features output, so every photo is also scored for "not a flower".
    # (and a second look for an unsure one: none of these photos is)
    assert set(result.timings_ms) - {"second_look_ms"} == {"decode_ms", "preprocess_ms", "infer_ms", "flower_score_ms"}
    assert result.flower is not None
    assert result.flower.is_flower


def test_all_scores_are_a_distribution(classifier: Classifier, flower_bytes: bytes) -> None:
    result = classifier.classify(flower_bytes, top_k=MAX_TOP_K)
    assert len(result.predictions) == 102
    assert sorted(p.class_id for p in result.predictions) == list(range(1, 103))
    assert sum(p.score for p in result.predictions) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("top_k", [0, -1, 103])
def test_top_k_bounds(classifier: Classifier, flower_bytes: bytes, top_k: int) -> None:
    with pytest.raises(BadRequest):
        classifier.classify(flower_bytes, top_k=top_k)


def test_softmax_is_stable() -> None:
    probs = softmax(np.array([1000.0, 1000.0, -1000.0], dtype=np.float32))
    assert probs == pytest.approx([0.5, 0.5, 0.0])
