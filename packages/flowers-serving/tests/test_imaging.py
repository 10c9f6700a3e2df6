from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from flowers_serving.errors import ImageTooLarge, UndecodableImage, UnsupportedMediaType
from flowers_serving.imaging import decode_image, fit_square, load_image

HOSTILE = FIXTURES / "hostile"
SUNFLOWER = FIXTURES / "flowers" / "054-sunflower.jpg"


@pytest.mark.parametrize("name", ["alpha.png", "palette.gif", "cmyk.jpg", "grey16.png", "exif-rotated.jpg"])
def test_odd_images_become_rgb(name: str) -> None:
    pixels = load_image((HOSTILE / name).read_bytes(), 224)
    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.uint8
    assert 20 < pixels.mean() < 235  # neither blown out nor black


def test_exif_orientation_is_honoured() -> None:
    upright = np.asarray(decode_image(SUNFLOWER.read_bytes()), dtype=np.float64)
    rotated = np.asarray(decode_image((HOSTILE / "exif-rotated.jpg").read_bytes()), dtype=np.float64)
    assert rotated.shape == upright.shape
    assert np.abs(rotated - upright).mean() < 6  # only JPEG re-encoding noise
    # Without the tag it would be the transposed image: clearly different.
    raw = np.asarray(Image.open(HOSTILE / "exif-rotated.jpg").convert("RGB"))
    assert raw.shape[:2] == upright.shape[1::-1]


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = np.asarray(decode_image((HOSTILE / "grey16.png").read_bytes()))
    reference = np.asarray(Image.open(SUNFLOWER).convert("L"), dtype=np.float64)
    assert abs(grey[..., 0].mean() - reference.mean()) < 8


def test_transparency_composites_on_white() -> None:
    img = decode_image((HOSTILE / "alpha.png").read_bytes())
    assert img.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("name", "error"),
    [("not-an-image.jpg", UnsupportedMediaType), ("truncated.jpg", UndecodableImage), ("bomb.png", ImageTooLarge)],
)
def test_bad_images_raise_our_errors(name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        load_image((HOSTILE / name).read_bytes(), 224)


def test_pixel_limit_is_checked_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (3000, 2000)).save(buf, format="PNG")
    with pytest.raises(ImageTooLarge, match="3000x2000"):
        decode_image(buf.getvalue(), max_pixels=5_000_000)
    assert decode_image(buf.getvalue(), max_pixels=6_000_000).size == (3000, 2000)


def test_formats_outside_the_allow_list_are_refused() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="ICO")
    with pytest.raises(UnsupportedMediaType, match="ICO"):
        decode_image(buf.getvalue())


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"GIF89a"])
def test_fragments_never_crash(data: bytes) -> None:
    with pytest.raises((UnsupportedMediaType, UndecodableImage)):
        load_image(data, 224)


def test_fit_square_centre_crops() -> None:
    img = Image.new("RGB", (400, 200), (0, 0, 0))
    img.paste((255, 0, 0), (100, 0, 300, 200))  # red centre square, black sides
    pixels = fit_square(img, 100)
    assert pixels.shape == (100, 100, 3)
    assert (pixels[..., 0] > 200).all()


def test_load_image_reports_timings() -> None:
    timings: dict[str, float] = {}
    load_image(SUNFLOWER.read_bytes(), 224, timings=timings)
    assert set(timings) == {"decode_ms", "preprocess_ms"}
    assert all(v >= 0 for v in timings.values())
