"""Inference-time levers: the variants ask the serving core what it serves, and compare photo by photo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flowers_model import inference_levers
from flowers_model.inference_levers import Measured, paired, probabilities
from flowers_serving.classifier import METADATA_FILE, Classifier, softmax
from flowers_serving.imaging import load_image

SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "model" / "artifacts"
SUNFLOWER = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "flowers" / "054-sunflower.jpg"


@pytest.fixture(scope="module")
def always_twice(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    """The shipped model with a second look for every photo short of certainty."""
    model = tmp_path_factory.mktemp("model") / "model"
    shutil.copytree(SHIPPED_MODEL, model)
    metadata = json.loads((model / METADATA_FILE).read_text())
    metadata["second_look"] = {"view": "mirror", "below": 1.0}
    (model / METADATA_FILE).write_text(json.dumps(metadata))
    return Classifier(model)


def test_served_is_what_classify_answers(always_twice: Classifier) -> None:
    data = SUNFLOWER.read_bytes()
    probs, inferences = probabilities(always_twice, data, "served")
    scores = np.zeros(102)
    for p in always_twice.classify(data, top_k=102).predictions:
        scores[p.class_id - 1] = p.score
    np.testing.assert_allclose(probs, scores, rtol=1e-6, atol=1e-9)
    assert inferences == 2


def test_one_look_and_two_looks(always_twice: Classifier) -> None:
    data = SUNFLOWER.read_bytes()
    pixels = load_image(data, 224)
    logits = always_twice.run(pixels)[0]
    mirrored = always_twice.run(np.ascontiguousarray(pixels[:, ::-1]))[0]
    one, one_count = probabilities(always_twice, data, "one")
    two, two_count = probabilities(always_twice, data, "two")
    np.testing.assert_allclose(one, softmax(logits), rtol=1e-6)
    np.testing.assert_allclose(two, softmax((logits + mirrored) / 2), rtol=1e-6)
    assert (one_count, two_count) == (1, 2)


def test_paired_counts_fixed_and_broken_answers() -> None:
    labels = np.array([0, 1, 2, 3])
    baseline = Measured({}, {"clean": np.array([0, 1, 9, 9])}, labels, {"clean": 0.0})
    variant = Measured({}, {"clean": np.array([0, 9, 2, 3])}, labels, {"clean": 1.0})
    assert paired(variant, baseline) == {"clean": {"fixed": 2, "broken": 1}}


def test_the_command_writes_every_variant_against_one_look(tiny_data: Path, tmp_path: Path) -> None:
    levers = tmp_path / "levers.json"
    inference_levers.main(
        [
            *("--model-dir", str(SHIPPED_MODEL), "--data", str(tiny_data), "--out", str(tmp_path)),
            *("--variants", "shipped", "flip", "one-look", "--record", "--levers", str(levers)),
        ]
    )
    report = json.loads((tmp_path / "inference-levers-validation.json").read_text())
    assert set(report) == {"one-look", "shipped", "flip"}
    assert report["one-look"]["n"] == 4
    assert "vs_one_look" not in report["one-look"]
    assert set(report["flip"]["vs_one_look"]) == {"clean", *report["flip"]["corruptions"]}
    assert all(share == 1.0 for share in report["flip"]["second_looks"].values())
    assert all(share == 0.0 for share in report["one-look"]["second_looks"].values())
    # Only the variants that are not a shipped model's own row go into the levers table.
    assert [row["name"] for row in json.loads(levers.read_text())] == [
        f"{report['flip']['model_version']} + test-time flip"
    ]
