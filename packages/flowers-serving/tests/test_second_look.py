"""The core's second look: an unsure flower is run again as its mirror image, the two logit vectors averaged."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from flowers_serving.classifier import METADATA_FILE, Classification, Classifier, default_model_dir, softmax
from flowers_serving.imaging import load_image

ALWAYS = {"view": "mirror", "below": 1.0}  # every photo short of certainty is unsure


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    shutil.copytree(default_model_dir(), tmp_path / "model")
    return tmp_path / "model"


def _with_second_look(model_dir: Path, spec: Any) -> Path:
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text())
    if spec is None:
        metadata.pop("second_look", None)
    else:
        metadata["second_look"] = spec
    path.write_text(json.dumps(metadata))
    return model_dir


def _one_and_two_looks(classifier: Classifier, image: bytes) -> tuple[np.ndarray, np.ndarray]:
    pixels = load_image(image, classifier.info.input_size)
    logits = classifier.run(pixels)[0]
    mirrored = classifier.run(np.ascontiguousarray(pixels[:, ::-1]))[0]
    return softmax(logits), softmax((logits + mirrored) / 2)


def _scores(result: Classification) -> np.ndarray:
    scores = np.zeros(102)
    for p in result.predictions:
        scores[p.class_id - 1] = p.score
    return scores


def _greyscale_jpeg(image: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(image)).convert("L").save(out, format="JPEG", quality=90)
    return out.getvalue()


def test_the_shipped_model_asks_for_a_second_look() -> None:
    below = Classifier(default_model_dir()).second_look_below
    assert below is not None
    assert 0.5 < below < 1.0


def test_an_unsure_flower_is_averaged_with_its_mirror_image(model_copy: Path, flower_bytes: bytes) -> None:
    classifier = Classifier(_with_second_look(model_copy, ALWAYS))
    one, two = _one_and_two_looks(classifier, flower_bytes)
    assert one.max() < 1.0  # short of certainty, so "unsure" below 1.0
    assert not np.allclose(one, two)  # the mirror image really gives other logits
    result = classifier.classify(flower_bytes, top_k=102)
    np.testing.assert_allclose(_scores(result), two, rtol=1e-6, atol=1e-9)
    assert result.flower is not None
    assert result.flower.is_flower
    # Each look is a phase of its own.
    assert result.timings_ms["infer_ms"] > 0
    assert result.timings_ms["second_look_ms"] > 0


def test_a_greyscale_flower_looks_twice_through_the_greyscale_layer(model_copy: Path, flower_bytes: bytes) -> None:
    classifier = Classifier(_with_second_look(model_copy, ALWAYS))
    assert classifier.head is not None
    assert classifier.head.greyscale is not None
    grey = _greyscale_jpeg(flower_bytes)
    pixels = load_image(grey, classifier.info.input_size)
    layer = classifier.head.greyscale
    features = [classifier.run(p, greyscale=True)[1] for p in (pixels, np.ascontiguousarray(pixels[:, ::-1]))]
    assert features[0] is not None
    assert features[1] is not None
    expected = softmax((layer.logits(features[0]) + layer.logits(features[1])) / 2)
    np.testing.assert_allclose(_scores(classifier.classify(grey, top_k=102)), expected, rtol=1e-6, atol=1e-9)


def test_a_confident_photo_is_looked_at_once(model_copy: Path, flower_bytes: bytes) -> None:
    classifier = Classifier(_with_second_look(model_copy, {"view": "mirror", "below": 0.5}))
    one, _ = _one_and_two_looks(classifier, flower_bytes)
    assert one.max() >= 0.5  # a sunflower the model is sure of
    result = classifier.classify(flower_bytes, top_k=102)
    np.testing.assert_allclose(_scores(result), one, rtol=1e-6, atol=1e-9)
    assert "second_look_ms" not in result.timings_ms


def test_a_photo_that_is_not_a_flower_is_looked_at_once(model_copy: Path) -> None:
    # Its species answer is not worth a second inference, however unsure it is.
    cat = (FIXTURES / "nonflowers" / "cat.jpg").read_bytes()
    classifier = Classifier(_with_second_look(model_copy, ALWAYS))
    one, _ = _one_and_two_looks(classifier, cat)
    result = classifier.classify(cat, top_k=102)
    assert result.flower is not None
    assert not result.flower.is_flower
    assert "second_look_ms" not in result.timings_ms
    np.testing.assert_allclose(_scores(result), one, rtol=1e-6, atol=1e-9)


def test_a_model_without_a_second_look_never_takes_one(model_copy: Path, flower_bytes: bytes) -> None:
    classifier = Classifier(_with_second_look(model_copy, None))
    assert classifier.second_look_below is None
    one, _ = _one_and_two_looks(classifier, flower_bytes)
    result = classifier.classify(flower_bytes, top_k=102)
    np.testing.assert_allclose(_scores(result), one, rtol=1e-6, atol=1e-9)
    assert "second_look_ms" not in result.timings_ms


def test_the_scorer_judges_the_photo_itself(model_copy: Path, flower_bytes: bytes) -> None:
    # Whether a photo is a flower does not depend on whether it was unsure enough for a second look.
    always = Classifier(_with_second_look(model_copy, ALWAYS)).classify(flower_bytes)
    never = Classifier(_with_second_look(model_copy, None)).classify(flower_bytes)
    assert "second_look_ms" in always.timings_ms
    assert always.flower is not None
    assert never.flower is not None
    assert always.flower.similarity == never.flower.similarity


@pytest.mark.parametrize(
    "spec",
    [
        {"view": "rotate", "below": 0.9},
        {"view": "mirror", "below": 0.0},
        {"view": "mirror", "below": 1.5},
        {"view": "mirror", "below": None},
        {"view": "mirror", "below": "0.5"},
        {"view": "mirror", "below": True},
        {"view": "mirror"},
        "mirror",
    ],
)
def test_a_malformed_second_look_is_refused_at_load(model_copy: Path, spec: Any) -> None:
    with pytest.raises(ValueError, match="second_look"):
        Classifier(_with_second_look(model_copy, spec))


@pytest.mark.parametrize("size", [192, 256, 288])
def test_the_file_runs_at_another_input_size(flower_bytes: bytes, size: int) -> None:
    classifier = Classifier(default_model_dir(), input_size=size)
    assert classifier.info.input_size == size
    assert classifier.classify(flower_bytes, top_k=1).predictions[0].class_id == 54
