from __future__ import annotations

import numpy as np
import pytest

from flowers_model.evaluate import expected_calibration_error, metrics


def test_ece_of_a_perfectly_calibrated_model_is_zero() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 1])) == 0.0


def test_ece_of_an_overconfident_model() -> None:
    # Always 90% sure, right half the time: ECE = |0.5 - 0.9| = 0.4.
    probs = np.array([[0.9, 0.1]] * 4)
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_metrics_report() -> None:
    names = ["a", "b", "c"]
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]])
    labels = np.array([0, 1, 2, 1])
    report = metrics(probs, labels, names)
    assert report["top1"] == pytest.approx(0.75)
    assert report["top5"] == 1.0
    assert report["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 1.0}
    assert report["most_confused"][0] == {"true": "b", "predicted": "a", "count": 1}
    assert report["worst_classes"][0]["class"] == "b"
    assert report["confusion"][1] == [1, 1, 0]
