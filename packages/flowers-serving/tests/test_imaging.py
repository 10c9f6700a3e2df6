from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from conftest import FIXTURES
from hostile import CLASSES, HostileImage, exif_block, jpeg_with_exif, png_chunk, png_with_chunks
from PIL import Image

from flowers_serving.errors import ImageTooLarge, UndecodableImage, UnsupportedMediaType
from flowers_serving.imaging import decode_image, fit_square, load_image
from flowers_serving.structure import check_structure, exif_is_bounded

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


# --- Every mode to 8-bit RGB, without full-size float temporaries -----------------------------------
def _tiff_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="TIFF")
    return buf.getvalue()


def _gradient(dtype: str, low: float, high: float) -> npt.NDArray[np.generic]:
    return np.linspace(low, high, 300 * 200, dtype=np.float64).reshape(200, 300).astype(dtype)


@pytest.mark.parametrize(
    ("array", "mode"),
    [
        (_gradient("float32", 0.0, 1.0), "F"),  # floats in 0-1
        (_gradient("float32", 0.0, 255.0), "F"),  # floats in 0-255
        (_gradient("float32", -5000.0, 5000.0), "F"),  # stretched from min to max
        (_gradient("int32", -(2**31), 2**31 - 1), "I"),
        (_gradient("int32", 0, 65535), "I"),
        (_gradient("uint16", 0, 65535), "I;16"),
    ],
    ids=["f-unit", "f-byte", "f-signed", "i32-full", "i32-16bit", "i16"],
)
def test_high_bit_depths_span_0_to_255(array: npt.NDArray[np.generic], mode: str) -> None:
    img = decode_image(_tiff_bytes(Image.fromarray(array)))
    grey = np.asarray(img)[..., 0]
    assert img.mode == "RGB"
    assert grey.min() <= 1
    assert grey.max() >= 254
    assert np.all(np.diff(grey[0].astype(int)) >= 0)  # still a gradient


def test_nan_and_inf_pixels_are_clipped_without_warnings(recwarn: pytest.WarningsRecorder) -> None:
    array = _gradient("float32", 0.0, 1.0)
    array[0, :10], array[1, :10], array[2, :10] = np.nan, np.inf, -np.inf
    grey = np.asarray(decode_image(_tiff_bytes(Image.fromarray(array))))[..., 0]
    assert grey[0, 0] == 0
    assert grey[1, 0] == 255
    assert grey[2, 0] == 0
    assert len(recwarn) == 0


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I;16B", "RGBX"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    img = Image.new(mode, (500, 300))
    data = _tiff_bytes(img) if mode not in ("PA", "YCbCr", "HSV", "I;16B", "RGBX") else None
    if data is None:
        buf = io.BytesIO()
        img.convert("RGBA" if mode == "PA" else "RGB").save(buf, format="PNG")
        data = buf.getvalue()
    pixels = load_image(data, 224)
    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.uint8


def test_palette_transparency_is_white() -> None:
    img = Image.new("P", (300, 300), 0)
    img.putpalette([255, 0, 0] * 256)
    img.info["transparency"] = 0
    buf = io.BytesIO()
    img.save(buf, format="GIF", transparency=0)
    assert decode_image(buf.getvalue()).getpixel((5, 5)) == (255, 255, 255)


def test_only_the_first_frame_is_decoded() -> None:
    frames = [Image.new("RGB", (300, 300), colour) for colour in ((255, 255, 255), (0, 0, 0), (0, 0, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue()).getpixel((10, 10)) == (255, 255, 255)


def test_large_images_are_shrunk_while_converting() -> None:
    buf = io.BytesIO()
    Image.new("LA", (3000, 2000), (128, 255)).save(buf, format="PNG")
    img = decode_image(buf.getvalue(), draft_size=224)
    assert min(img.size) >= 224
    assert max(img.size) < 1500


# --- The memory budget, decided from the header ------------------------------------------------------
def test_decode_budget_is_checked_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (3000, 2000)).save(buf, format="PNG")
    with pytest.raises(ImageTooLarge, match="MiB"):
        decode_image(buf.getvalue(), max_decode_bytes=16 * 1024 * 1024)
    assert decode_image(buf.getvalue(), max_decode_bytes=128 * 1024 * 1024).size == (3000, 2000)


def test_one_strip_tiffs_cost_twice_their_pixels() -> None:
    sys.path.insert(0, str(FIXTURES.parent))
    from hostile import tiff

    one_strip = tiff(6324, 6324, bits=32, sample_format=3, rows_per_strip=None)
    with pytest.raises(ImageTooLarge, match="TIFF"):
        load_image(one_strip, 224)


def test_jpeg_scan_count_is_limited(flower_bytes: bytes) -> None:
    with pytest.raises(UndecodableImage, match="scans"):
        load_image(flower_bytes + b"\xff\xda" * 200, 224)


@pytest.mark.parametrize(
    ("fmt", "name"), [("ICO", "ICO"), ("JPEG2000", "JPEG2000"), ("PSD", "PSD"), ("SVG", "SVG"), ("AVIF", "AVIF")]
)
def test_refused_formats_are_named_and_never_parsed(fmt: str, name: str) -> None:
    if fmt == "PSD":
        data = b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 64, 64, 8, 3)
    elif fmt == "SVG":
        data = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>'
    else:
        buf = io.BytesIO()
        try:
            Image.new("RGB", (64, 64)).save(buf, format=fmt)
        except (KeyError, OSError):
            pytest.skip(f"this Pillow cannot write {fmt}")
        data = buf.getvalue()
    with pytest.raises(UnsupportedMediaType, match=name):
        load_image(data, 224)


# --- Metadata Pillow would walk in Python, bounded before it does ---------------------------------------
_STRUCTURE_CASES = [
    case
    for case in CLASSES
    if case.name
    in {
        "jpeg-5000-comment-markers",
        "jpeg-100k-fill-bytes",
        "jpeg-50k-escaped-ff",
        "png-5000-text-chunks",
        "png-5000-private-chunks-after-image",
        "gif-comment-70k-sub-blocks",
        "gif-100k-junk-bytes",
        "tiff-2000-tags",
        "tiff-100k-rationals",
    }
]


def test_every_metadata_case_is_listed() -> None:
    assert len(_STRUCTURE_CASES) == 9


@pytest.mark.parametrize("case", _STRUCTURE_CASES, ids=str)
def test_oversized_metadata_is_refused_before_pillow_parses_it(case: HostileImage) -> None:
    data = case.make()
    with pytest.raises(UndecodableImage, match="limit"):
        check_structure(data)
    with pytest.raises(UndecodableImage, match="limit"):
        load_image(data, 224)


@pytest.mark.parametrize(
    "path", sorted(p for p in FIXTURES.rglob("*") if p.suffix in {".jpg", ".png", ".gif", ".tif"}), ids=str
)
def test_real_images_pass_the_metadata_limits(path: Path) -> None:
    check_structure(path.read_bytes())


def test_an_exif_block_too_large_to_parse_is_ignored_like_a_broken_one() -> None:
    assert exif_is_bounded(exif_block(1000))
    assert not exif_is_bounded(exif_block(1025))
    assert not exif_is_bounded(exif_block(2, rationals=70_000))
    huge = png_with_chunks(png_chunk(b"eXIf", exif_block(65535)[6:]))
    assert decode_image(huge).size == (64, 64)
    assert decode_image(jpeg_with_exif(exif_block(500))).size == (64, 64)
    # A JPEG's is hidden from Pillow (which reads it while opening), with a warning.
    for exif in (exif_block(2000), exif_block(2, rationals=100_000)):
        with pytest.warns(UserWarning, match="EXIF block ignored"):
            hidden = check_structure(jpeg_with_exif(exif))
        assert b"Exif\x00\x00" not in hidden
        assert decode_image(jpeg_with_exif(exif)).size == (64, 64)


@pytest.mark.parametrize("line", [None, b"\x01\x00\x00\x00"], ids=["runs-of-255", "end-of-line-padding"])
def test_rle_bmps_are_refused_before_pillow_expands_them(line: bytes | None) -> None:
    from hostile import bmp_rle8

    data = bmp_rle8(2000, 2000, line=line)
    with pytest.raises(UnsupportedMediaType, match="RLE"):
        load_image(data, 224)
    # An uncompressed BMP still decodes.
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(buf, format="BMP")
    assert decode_image(buf.getvalue()).getpixel((0, 0)) == (200, 10, 10)
