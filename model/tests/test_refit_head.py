"""The last layer refit on the shipped file's features: views, the fit, and a refit of the real file."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowers_model import refit_head
from flowers_serving.classifier import Classifier, default_model_dir
from flowers_serving.head import HEAD_FILE, is_greyscale


def test_views_are_the_photo_and_crops_each_in_colour_then_greyscale() -> None:
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    views = refit_head.photo_views(photo, 4, random.Random(1))
    assert len(views) == 8 + 4 + 4 == refit_head.rows_per_photo(4)
    assert np.array_equal(np.asarray(views[0]), np.asarray(photo))  # the photo itself first
    for colour, grey in zip(views[:8:2], views[1:8:2], strict=True):
        assert colour.size == grey.size
        pixels = np.asarray(grey).astype(int)
        assert grey.mode == "RGB"
        assert (pixels[..., 0] == pixels[..., 1]).all()
        assert (pixels[..., 1] == pixels[..., 2]).all()
        assert not np.array_equal(np.asarray(colour), pixels)
    for crop in views[2:8:2]:  # crops keep at least half the area
        assert crop.width * crop.height >= 0.5 * 90 * 120 - 120
    blurred, turned, brightness, shrunk = views[8:12]
    for colour, grey in zip(views[8:12], views[12:], strict=True):  # the changed photos again, in greyscale
        assert np.array_equal(np.asarray(grey), np.asarray(colour.convert("L").convert("RGB")))
    assert blurred.size == photo.size
    assert (
        np.abs(np.diff(np.asarray(blurred).astype(int), axis=1)).mean()
        < np.abs(np.diff(np.asarray(photo).astype(int), axis=1)).mean()
    )
    assert turned.size in (photo.size, photo.size[::-1])
    assert not np.array_equal(np.asarray(turned), np.asarray(photo))
    assert brightness.size == photo.size
    assert 64 <= min(shrunk.size) <= 128
    again = refit_head.photo_views(photo, 4, random.Random(1))
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(views, again, strict=True))


def test_greyscale_rows_are_the_greyscale_views() -> None:
    # The rows collect_views lays out are photo_views' views in order, photo after photo: exactly the views
    # greyscale_rows picks are the ones the service would send to the greyscale layer.
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)) for _ in range(3)]
    views = [view for i, photo in enumerate(photos) for view in refit_head.photo_views(photo, 3, random.Random(i))]
    grey = [i for i, view in enumerate(views) if is_greyscale(np.asarray(view))]
    assert list(refit_head.greyscale_rows(len(photos), 3)) == grey
    assert len(grey) == 3 * (3 + 4)
    # The shared layer: every view but the changed photos' greyscale copies, so its rows are 2.1.0's.
    colour = refit_head.colour_layer_rows(len(photos), 3)
    assert len(colour) == 3 * (2 * 3 + 4)
    assert set(colour) | set(grey) == set(range(len(views)))
    assert set(colour) & set(grey) == {i for i in grey if i % refit_head.rows_per_photo(3) < 6}


def test_the_fit_learns_a_separable_problem() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 32)).astype(np.float32) * 3
    labels = rng.integers(0, 5, 500)
    features = (centres[labels] + rng.normal(size=(500, 32))).astype(np.float32)
    weights, bias = refit_head.fit_linear(features, labels, 5, epochs=50, lr=1e-2)
    assert weights.shape == (5, 32)
    assert bias.shape == (5,)
    assert ((features @ weights.T + bias).argmax(1) == labels).mean() > 0.95


def test_refitting_the_shipped_file(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The real file over the tiny data set: a head, its metadata, and a core that uses it.
    model = tmp_path / "model"
    shutil.copytree(default_model_dir(), model)
    (model / HEAD_FILE).unlink(missing_ok=True)
    metadata = refit_head.refit_head(model, tiny_data, views=2, workers=1, version="9.9.9", cache_dir=tmp_path / "c")
    assert metadata["version"] == "9.9.9"
    assert metadata["head"]["train_rows"] == 8 * (2 * 2 + 4)
    assert json.loads((model / "metadata.json").read_text())["head"] == metadata["head"]
    assert metadata["head"]["greyscale"]["train_rows"] == 8 * (2 + 4)
    changed = metadata["head"]["greyscale"]["validation_top1_changed"]
    assert set(changed) == set(refit_head.GREYSCALE_CHANGES)
    assert all(len(pair) == 2 and all(0 <= top1 <= 1 for top1 in pair) for pair in changed.values())
    classifier = Classifier(model)
    assert classifier.head is not None
    assert classifier.head.greyscale is not None
    assert not np.array_equal(classifier.head.greyscale.weights, classifier.head.colour.weights)
    photo = sorted((tiny_data / "jpg").iterdir())[0]
    assert classifier.classify(photo.read_bytes(), top_k=1).predictions[0].class_id == 13

    # A second refit reads the views from the cache (keyed by the model file) and fits the same layer.
    first = np.load(model / HEAD_FILE)["weights"]
    refit_head.refit_head(model, tiny_data, views=2, workers=1, cache_dir=tmp_path / "c")
    assert "views from" in capsys.readouterr().out
    assert np.array_equal(np.load(model / HEAD_FILE)["weights"], first)
    assert len(list((tmp_path / "c").iterdir())) == 1


def test_export_head_only_keeps_the_views_cache(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `nox -s export -- --head-only` refits with the views cache, so a second refit of the same file is quick.
    from flowers_model import __version__, export

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(export, "refit_head", lambda out, data, **options: calls.append({"out": out, **options}))
    export.main(["--out", str(tmp_path), "--data", str(tiny_data), "--head-only"])
    assert calls == [{"out": tmp_path, "version": __version__, "cache_dir": refit_head.DEFAULT_CACHE}]
