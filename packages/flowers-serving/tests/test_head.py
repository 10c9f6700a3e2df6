"""The refit last layer (head.npz): its arithmetic, its file, and that the core really uses it."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from flowers_serving import Classifier
from flowers_serving.classifier import default_model_dir
from flowers_serving.head import GREYSCALE_SHARE, GREYSCALE_SPREAD, HEAD_FILE, Head, LinearHead, is_greyscale


def _head(classes: int = 102, features: int = 1280, seed: int = 0, temperature: float = 0.5) -> LinearHead:
    rng = np.random.default_rng(seed)
    return LinearHead(
        weights=rng.normal(size=(classes, features)).astype(np.float32),
        bias=rng.normal(size=classes).astype(np.float32),
        temperature=temperature,
    )


def test_logits_are_the_affine_map_divided_by_the_temperature() -> None:
    head = _head(classes=3, features=4, temperature=2.0)
    features = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    expected = (head.weights @ features + head.bias) / 2.0
    assert head.logits(features) == pytest.approx(expected, rel=1e-6)
    assert head.logits(features).dtype == np.float32
    rows = np.stack([features, 2 * features])
    assert head.logits(rows).shape == (2, 3)


@pytest.mark.parametrize("with_greyscale", [False, True])
def test_round_trip_through_the_file(tmp_path: Path, with_greyscale: bool) -> None:
    head = Head(colour=_head(), greyscale=_head(seed=1, temperature=0.7) if with_greyscale else None)
    head.save(tmp_path / HEAD_FILE)
    loaded = Head.load(tmp_path / HEAD_FILE)
    for layer, original in ((loaded.colour, head.colour), (loaded.greyscale, head.greyscale)):
        if original is None:
            assert layer is None
            continue
        assert layer is not None
        assert np.array_equal(layer.weights, original.weights)
        assert np.array_equal(layer.bias, original.bias)
        assert layer.temperature == original.temperature


@pytest.mark.parametrize(
    "dropped",
    [
        ["weights", "bias", "temperature"],  # only a greyscale layer
        ["grey_bias"],
        ["grey_weights"],  # a stray greyscale bias and temperature
        ["temperature"],
    ],
)
def test_a_head_file_missing_a_part_is_refused(tmp_path: Path, dropped: list[str]) -> None:
    Head(colour=_head(), greyscale=_head(seed=1)).save(tmp_path / "full.npz")
    with np.load(tmp_path / "full.npz") as full:
        kept = {name: full[name] for name in full.files if name not in dropped}
    np.savez(tmp_path / HEAD_FILE, **kept)
    with pytest.raises(ValueError, match=r"missing|no colour layer"):
        Head.load(tmp_path / HEAD_FILE)


def test_a_greyscale_layer_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="greyscale"):
        Head(colour=_head(), greyscale=_head(classes=101))


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.parametrize("quality", [10, 50, 95])
def test_greyscale_photos_are_told_from_colour_ones(flower_bytes: bytes, quality: int) -> None:
    photo = Image.open(io.BytesIO(flower_bytes)).convert("RGB")
    grey_rgb = np.asarray(Image.open(io.BytesIO(_jpeg(photo.convert("L").convert("RGB"), quality))).convert("RGB"))
    grey_l = np.asarray(Image.open(io.BytesIO(_jpeg(photo.convert("L"), quality))).convert("RGB"))
    colour = np.asarray(Image.open(io.BytesIO(_jpeg(photo, quality))).convert("RGB"))
    assert is_greyscale(grey_rgb)
    assert is_greyscale(grey_l)
    assert not is_greyscale(colour)


def test_the_greyscale_test_counts_pixels_with_colour() -> None:
    pixels = np.full((100, 100, 3), 100, dtype=np.uint8)
    assert is_greyscale(pixels)
    pixels[..., 2] += GREYSCALE_SPREAD  # every pixel exactly at the limit: a faint cast, as on a B&W scan
    assert is_greyscale(pixels)
    colourful = int(GREYSCALE_SHARE * pixels.size / 3)
    pixels.reshape(-1, 3)[:colourful, 0] = 250  # that many coloured pixels are still noise
    assert is_greyscale(pixels)
    pixels.reshape(-1, 3)[colourful, 0] = 250  # one more is a colour photo
    assert not is_greyscale(pixels)
    tinted = np.full((100, 100, 3), 100, dtype=np.uint8)
    tinted[..., 0] = 120  # a sepia-like cast is colour
    assert not is_greyscale(tinted)
    warm = np.empty((100, 100, 3), dtype=np.uint8)
    warm[...] = (116, 108, 100)  # neighbouring channels 8 apart, red and blue 16: colour
    assert not is_greyscale(warm)


def test_a_white_flower_on_black_with_a_coloured_centre_is_colour() -> None:
    # Like the least colourful photos in the data set: grey almost everywhere, a small yellow centre (2%).
    pixels = np.zeros((224, 224, 3), dtype=np.uint8)
    pixels[40:180, 40:180] = 235
    pixels[101:133, 101:133] = (240, 210, 60)
    photo = Image.fromarray(pixels)
    assert not is_greyscale(np.asarray(Image.open(io.BytesIO(_jpeg(photo))).convert("RGB")))
    assert is_greyscale(np.asarray(Image.open(io.BytesIO(_jpeg(photo.convert("L")))).convert("RGB")))


@pytest.mark.parametrize(
    ("weights", "bias", "temperature"),
    [
        (np.zeros((3, 4)), np.zeros(2), 1.0),  # bias of another width
        (np.zeros(4), np.zeros(4), 1.0),  # not a matrix
        (np.full((3, 4), np.nan), np.zeros(3), 1.0),
        (np.zeros((3, 4)), np.zeros(3), 0.0),
        (np.zeros((3, 4)), np.zeros(3), float("nan")),
    ],
)
def test_inconsistent_heads_are_refused(weights: np.ndarray, bias: np.ndarray, temperature: float) -> None:
    with pytest.raises(ValueError, match=r"head|temperature"):
        LinearHead(weights=weights.astype(np.float32), bias=bias.astype(np.float32), temperature=temperature)


def test_the_shipped_model_has_its_head() -> None:
    classifier = Classifier(default_model_dir())
    assert classifier.head is not None
    assert classifier.head.classes == len(classifier.labels)


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    shutil.copytree(default_model_dir(), tmp_path / "model")
    return tmp_path / "model"


def test_the_core_takes_its_logits_from_the_head(model_copy: Path, flower_bytes: bytes) -> None:
    # A head that ignores the photo and always says class 5: if the core used the file's logits, a sunflower stays 54.
    weights = np.zeros((102, 1280), dtype=np.float32)
    bias = np.zeros(102, dtype=np.float32)
    bias[4] = 10.0
    Head(colour=LinearHead(weights=weights, bias=bias, temperature=1.0)).save(model_copy / HEAD_FILE)
    result = Classifier(model_copy).classify(flower_bytes, top_k=2)
    assert result.predictions[0].class_id == 5
    assert result.predictions[0].score == pytest.approx(np.exp(10) / (np.exp(10) + 101), rel=1e-5)


def test_the_core_takes_a_greyscale_photos_logits_from_the_greyscale_layer(
    model_copy: Path, flower_bytes: bytes
) -> None:
    def constant(class_id: int) -> LinearHead:
        bias = np.zeros(102, dtype=np.float32)
        bias[class_id - 1] = 10.0
        return LinearHead(weights=np.zeros((102, 1280), dtype=np.float32), bias=bias, temperature=1.0)

    Head(colour=constant(5), greyscale=constant(7)).save(model_copy / HEAD_FILE)
    classifier = Classifier(model_copy)
    grey = _jpeg(Image.open(io.BytesIO(flower_bytes)).convert("L"))
    assert classifier.classify(flower_bytes, top_k=1).predictions[0].class_id == 5
    assert classifier.classify(grey, top_k=1).predictions[0].class_id == 7
    # A head without the greyscale layer sends greyscale photos through the colour one.
    Head(colour=constant(5)).save(model_copy / HEAD_FILE)
    assert Classifier(model_copy).classify(grey, top_k=1).predictions[0].class_id == 5


def test_without_a_head_the_file_logits_decide(model_copy: Path, flower_bytes: bytes) -> None:
    (model_copy / HEAD_FILE).unlink()
    classifier = Classifier(model_copy)
    assert classifier.head is None
    assert classifier.classify(flower_bytes, top_k=1).predictions[0].class_id == 54


def test_a_head_of_another_shape_is_refused_at_load(model_copy: Path) -> None:
    Head(colour=_head(features=640)).save(model_copy / HEAD_FILE)
    with pytest.raises(ValueError, match="features"):
        Classifier(model_copy)
    Head(colour=_head(classes=101)).save(model_copy / HEAD_FILE)
    with pytest.raises(ValueError, match="labels"):
        Classifier(model_copy)


def test_a_greyscale_photo_keeps_its_species() -> None:
    # The head was refit on greyscale views too: the fixtures' flowers stay themselves without colour.
    classifier = Classifier(default_model_dir())
    kept = 0
    photos = sorted((FIXTURES / "flowers").glob("*.jpg"))
    for photo in photos:
        buffer = io.BytesIO()
        Image.open(photo).convert("L").save(buffer, format="JPEG", quality=95)
        kept += classifier.classify(buffer.getvalue(), top_k=1).predictions[0].class_id == int(photo.name[:3])
    assert kept >= len(photos) - 1, f"{kept} of {len(photos)}"


def test_the_core_scores_a_greyscale_photo_at_the_greyscale_threshold(flower_bytes: bytes) -> None:
    classifier = Classifier(default_model_dir())
    assert classifier.scorer is not None
    assert classifier.scorer.greyscale_threshold is not None  # the shipped scorer has one
    classifier.scorer.threshold, classifier.scorer.greyscale_threshold = 2.0, -2.0  # colour: none pass; grey: all
    grey = _jpeg(Image.open(io.BytesIO(flower_bytes)).convert("L"))
    colour_result, grey_result = classifier.classify(flower_bytes), classifier.classify(grey)
    assert colour_result.flower is not None
    assert grey_result.flower is not None
    assert (colour_result.flower.is_flower, grey_result.flower.is_flower) == (False, True)


def test_a_model_without_greyscale_parts_never_runs_the_greyscale_test(
    model_copy: Path, flower_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flowers_serving.classifier as core
    from flowers_serving.flower_score import SCORER_FILE, FlowerScorer

    (model_copy / HEAD_FILE).unlink()
    scorer = FlowerScorer.load(model_copy / SCORER_FILE)
    scorer.greyscale_threshold = None
    scorer.save(model_copy / SCORER_FILE)

    def refuse(pixels: np.ndarray) -> bool:
        raise AssertionError("is_greyscale called for a model with no use for it")

    monkeypatch.setattr(core, "is_greyscale", refuse)
    assert Classifier(model_copy).classify(flower_bytes, top_k=1).predictions[0].class_id == 54
