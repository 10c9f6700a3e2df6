"""The one image-loading path: bytes in, a model-ready RGB array out.

Serving, evaluation and the training pipeline's validation step all call
:func:`load_image`, so the accuracy we measure is the accuracy we serve.
Training augmentation starts from :func:`decode_image` (same decoding, same
colour handling) and only replaces the final resize/crop with a random one.

Memory is decided before any pixel is decoded. From the header alone
(format, mode, bit depth, size, strip or tile size, JPEG scans and sampling)
:func:`decode_cost` works out what Pillow and its codecs will allocate, and
an image over the budget is refused with :class:`ImageTooLarge`. Decoding
itself never makes a full-size temporary beyond the decoded image: JPEGs are
scaled by the codec while decoding (``draft``), only the first frame of a
multi-frame file is read, and every other image is converted to 8-bit RGB
(high bit depths scaled, alpha composited on white) and shrunk by an integer
factor a few rows at a time.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from flowers_serving.errors import ImageTooLarge, ServingError, UndecodableImage, UnsupportedMediaType
from flowers_serving.logs import capture_stderr
from flowers_serving.structure import check_structure, exif_is_bounded

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_PIXELS",
    "decode_cost",
    "decode_image",
    "fit_square",
    "load_image",
]

logger = logging.getLogger(__name__)

#: Pillow format names we decode; Pillow is told to try no other parser. Left
#: out on purpose: AVIF/HEIF, JPEG 2000, PSD, ICO/CUR, SVG (Pillow has no SVG),
#: PDF/EPS (Ghostscript), and the long tail of scientific and legacy formats:
#: each is one more decoder an anonymous request could aim at, for photos
#: nobody sends us.
ACCEPTED_FORMATS: Final = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO")
# The parsers Image.open may try (MPO files come out of the JPEG parser).
_PARSERS: Final = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
# Importing a plugin registers it; these are the only parsers Image.open may try.
_PLUGINS: Final = (
    BmpImagePlugin,
    GifImagePlugin,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

#: 40 megapixels: a 7,000 x 5,700 camera photo passes, a 20,000 x 20,000
#: decompression bomb (a few KB of PNG) is refused before any pixel is decoded.
DEFAULT_MAX_PIXELS: Final = 40_000_000

#: What decoding one image may allocate, as :func:`decode_cost` estimates it:
#: beside the ~80 MB the runtime and model take, and the request's own bytes,
#: this keeps the process under 512 MB for any input (see the RSS tests).
DEFAULT_MAX_DECODE_BYTES: Final = 256 * 1024 * 1024

#: Progressive and multi-scan JPEGs are decoded scan by scan over the whole
#: image; real files have about ten, a crafted one can have millions.
MAX_JPEG_SCANS: Final = 100

_WHITE: Final = 255
_ROW_OVERHEAD: Final = 16  # Pillow keeps a pointer per row, plus block bookkeeping
_STRIPE_BYTES: Final = 1024 * 1024  # source bytes converted at a time
_FIXED_OVERHEAD: Final = 24 * 1024 * 1024  # stripes in flight, codec state, the array for the model
_GREY_MODES: Final = frozenset({"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N", "LA", "La"})
_HIGH_BIT_MODES: Final = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def _bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel in ``mode`` (3-band images are padded to 4 bytes)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


@dataclass(frozen=True)
class _Plan:
    """How one image will be decoded: its size after ``draft``, the shrink factor, the crop."""

    size: tuple[int, int]
    full_size: tuple[int, int]  # before draft
    scans: int  # JPEG scans (SOS markers); 1 for other formats
    factor: int
    box: tuple[int, int, int, int]


def _plan(img: Image.Image, full_size: tuple[int, int], scans: int, draft_size: int | None, square: bool) -> _Plan:
    width, height = img.size
    box = (0, 0, width, height)
    # What fit_square keeps anyway: the centred square. JPEGs keep their whole
    # (drafted) frame so that evaluation sees exactly the pixels it always did.
    if square and img.format not in ("JPEG", "MPO"):
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
    factor = 1
    if draft_size and img.format not in ("JPEG", "MPO"):  # JPEGs were scaled by their decoder
        factor = max(1, min(box[2] - box[0], box[3] - box[1]) // draft_size)
    return _Plan(size=(width, height), full_size=full_size, scans=scans, factor=factor, box=box)


def decode_cost(img: Image.Image, data_size: int, plan: _Plan) -> int:
    """Bytes that decoding ``img`` (opened, not loaded) will allocate at its peak, from the header alone."""
    width, height = plan.size
    decoded = height * (width * _bytes_per_pixel(img.mode) + _ROW_OVERHEAD)
    out_w = math.ceil((plan.box[2] - plan.box[0]) / plan.factor)
    out_h = math.ceil((plan.box[3] - plan.box[1]) / plan.factor)
    output = out_h * (out_w * 4 + _ROW_OVERHEAD)
    if img.mode == "RGB" and plan.factor == 1 and plan.box == (0, 0, width, height):
        output = 0  # already what we need: no copy
    return decoded + output + _codec_cost(img, data_size, plan) + _FIXED_OVERHEAD


def _codec_cost(img: Image.Image, data_size: int, plan: _Plan) -> int:
    """What the codec allocates beside the decoded image."""
    width, height = img.size
    fmt = img.format
    if fmt in ("JPEG", "MPO"):
        # A progressive or multi-scan JPEG keeps every DCT coefficient of the
        # full-size image (2 bytes each) until the last scan, whatever the draft scale.
        if plan.scans <= 1:
            return 0
        full_w, full_h = plan.full_size
        layers = getattr(img, "layer", None) or [("", 1, 1, 0)] * len(img.getbands())
        h_max = max(h for _, h, _, _ in layers)
        v_max = max(v for _, _, v, _ in layers)
        total = 0
        for _, h, v, _ in layers:
            blocks_w = math.ceil(full_w * h / h_max / 8)
            blocks_h = math.ceil(full_h * v / v_max / 8)
            total += blocks_w * blocks_h * 64 * 2
        return total
    if fmt == "PNG":
        # The inflater keeps the previous and the current raw row (and one more to unpack); text
        # chunks (zTXt, iTXt, iCCP) may inflate up to Pillow's own cap while the image loads.
        return 3 * (width * _png_bits_per_pixel(img) // 8 + 1) + PngImagePlugin.MAX_TEXT_MEMORY
    if fmt == "TIFF":
        tags = getattr(img, "tag_v2", {})
        bits = tags.get(258, (8,))
        raw_bpp = max(1, (sum(bits) if isinstance(bits, tuple) else int(bits) * int(tags.get(277, 1))) // 8)
        if 322 in tags and 323 in tags:  # tiled
            chunk_pixels = int(tags[322]) * int(tags[323])
        else:
            chunk_pixels = width * min(height, int(tags.get(278, height)) or height)
        # libtiff reads a whole strip (or tile), in its raw depth or as RGBA, and gets the file as one buffer.
        return chunk_pixels * max(raw_bpp, 4) + data_size
    if fmt == "WEBP":
        # libwebp's canvas, its frame buffer and the bytes Pillow copies the frame through (measured).
        return 3 * width * height * 4
    if fmt == "BMP":
        # Pillow expands RLE BMPs in a Python bytearray, then copies it.
        return (
            2 * width * height if img.info.get("compression") in (1, 2) or "rle" in str(getattr(img, "tile", "")) else 0
        )
    if fmt == "GIF":
        return width * height  # the frame Pillow keeps for disposal
    return width * height * 4


def _png_bits_per_pixel(img: Image.Image) -> int:
    tile = getattr(img, "tile", None)
    rawmode = str(tile[0][3]) if tile else img.mode  # e.g. "RGB;16B", "P;4", "I;16B"
    base, _, depth = rawmode.partition(";")
    channels = {"LA": 2, "RGB": 3, "RGBA": 4}.get(base, 1)
    digits = "".join(c for c in depth if c.isdigit())
    return channels * (int(digits) if digits else 8)


@contextmanager
def _image_problems() -> Iterator[None]:
    """Collect every warning a codec raises (and whatever it prints to stderr) into at most one log line."""
    count = 0
    first = ""

    def record(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        nonlocal count, first
        count += 1
        if not first:
            first = f"{category.__name__}: {message}"

    try:
        with warnings.catch_warnings(), capture_stderr() as printed:
            # "always" keeps the warnings module's registry from growing with every
            # distinct message; record() keeps only a count and the first one.
            warnings.simplefilter("always")
            warnings.showwarning = record
            yield
    finally:
        if count or printed.text:
            logger.warning(
                "image problems",
                extra={
                    "image_warnings": count,
                    "first_warning": first[:300] or None,
                    "codec_output": printed.text[:300] or None,
                },
            )


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        parsed = check_structure(data)  # Pillow's own parsing, in Python, must stay short
    except ServingError:
        raise
    except Exception as exc:  # a header our walk could not follow is a bad image, not our bug
        raise UndecodableImage(f"cannot read the image's structure: {type(exc).__name__}: {exc}") from exc
    try:
        return Image.open(io.BytesIO(parsed), formats=_PARSERS)
    except UnidentifiedImageError as exc:
        claimed = _claimed_format(data)
        if claimed:  # the magic bytes of a format we accept, and a header its parser refused
            raise UnsupportedMediaType(
                f"this {claimed} file is of a kind we cannot decode (e.g. a 64-bit or 12-bit variant), or its "
                "header is cut short"
            ) from exc
        name = _sniff_format(data)
        if name:
            raise UnsupportedMediaType(
                f"image format {name} is not accepted; send {', '.join(ACCEPTED_FORMATS)}"
            ) from exc
        raise UnsupportedMediaType("the data is not an image in a format we accept") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own cap, far above ours: from BMP and GIF headers
        raise ImageTooLarge(f"the image header claims too many pixels; the limit is {max_pixels:,} pixels") from exc
    except MemoryError as exc:
        raise ImageTooLarge("the image header asks for more memory than the function has") from exc
    except ValueError as exc:
        if _is_text_bomb(exc):
            raise ImageTooLarge(f"a compressed PNG text or ICC chunk inflates too far: {exc}") from exc
        raise UndecodableImage(f"cannot read the image header: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # corrupt headers surface as OSError, ValueError, SyntaxError, struct.error...
        raise UndecodableImage(f"cannot read the image header: {type(exc).__name__}: {exc}") from exc


def _is_text_bomb(exc: ValueError) -> bool:
    """Pillow's refusal of a zTXt/iTXt/iCCP chunk past ``MAX_TEXT_CHUNK`` or ``MAX_TEXT_MEMORY`` (a
    decompression bomb in the metadata); it raises a bare ValueError, so its words are all there is."""
    text = str(exc)
    return "MAX_TEXT_CHUNK" in text or "text chunks" in text


def _claimed_format(data: bytes) -> str | None:
    """The accepted format whose magic bytes ``data`` starts with, if any."""
    Image.init()
    for name in _PARSERS:
        accept = Image.OPEN[name][1]
        with contextlib.suppress(Exception):
            if accept is not None and accept(data[:64]):
                return name
    return None


def _sniff_format(data: bytes) -> str | None:
    """Name a refused format from its magic bytes, without running its parser."""
    Image.init()
    head = data[:64]
    for name, (_factory, accept) in Image.OPEN.items():
        if name in ACCEPTED_FORMATS or accept is None:
            continue
        with contextlib.suppress(Exception):  # an accept function that chokes on the prefix names nothing
            if accept(head):
                return name
    if head[4:8] == b"ftyp":
        return "HEIF/AVIF"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return "SVG"
    return None


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode image bytes to an upright 8-bit RGB Pillow image.

    Raises :class:`UnsupportedMediaType` for bytes that are not an image format
    we accept, :class:`ImageTooLarge` for images over ``max_pixels`` or whose
    decoding would allocate more than ``max_decode_bytes`` (both checked from
    the header, before decoding) and :class:`UndecodableImage` for truncated or
    corrupt files. Only the first frame of an animation or multi-page file is read.

    ``draft_size`` lets the decoder shrink the image by an integer factor (the
    JPEG codec while decoding, by 1/2, 1/4 or 1/8; other formats a few rows at
    a time as they are converted), never below that size; the final resize
    still happens in :func:`fit_square`.
    """
    return _decode(data, max_pixels=max_pixels, max_decode_bytes=max_decode_bytes, draft_size=draft_size)


def _decode(
    data: bytes, *, max_pixels: int, max_decode_bytes: int, draft_size: int | None, square: bool = False
) -> Image.Image:
    with _image_problems():
        img = _open(data, max_pixels)
        try:
            return _decode_opened(
                img,
                data,
                max_pixels=max_pixels,
                max_decode_bytes=max_decode_bytes,
                draft_size=draft_size,
                square=square,
            )
        except ServingError:
            raise
        except MemoryError as exc:  # an estimate was wrong: refuse, and keep serving
            raise ImageTooLarge("the image needs more memory to decode than the function has") from exc
        except Exception as exc:  # any decoder failure on untrusted bytes is a bad image, not our bug
            if isinstance(exc, ValueError) and _is_text_bomb(exc):  # text chunks after the image data
                raise ImageTooLarge(f"a compressed PNG text chunk inflates too far: {exc}") from exc
            raise UndecodableImage(f"cannot decode the image: {type(exc).__name__}: {exc}") from exc


def _decode_opened(
    img: Image.Image, data: bytes, *, max_pixels: int, max_decode_bytes: int, draft_size: int | None, square: bool
) -> Image.Image:
    if img.format not in ACCEPTED_FORMATS:  # Pillow may hand back a subclass format (e.g. MPO for JPEG)
        raise UnsupportedMediaType(f"image format {img.format} is not accepted")
    width, height = img.size
    if width < 1 or height < 1:
        raise UndecodableImage("image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels:,} pixels")
    scans = 1
    if img.format in ("JPEG", "MPO"):
        scans = data.count(b"\xff\xda")  # SOS markers: 0xFF is always escaped inside entropy-coded data
        if scans > MAX_JPEG_SCANS:
            raise UndecodableImage(f"the JPEG has {scans} scans; the limit is {MAX_JPEG_SCANS}")
        if draft_size is not None:
            img.draft("RGB", (draft_size, draft_size))
    plan = _plan(img, (width, height), scans, draft_size, square)
    cost = decode_cost(img, len(data), plan)
    if cost > max_decode_bytes:
        mib = 1024 * 1024
        raise ImageTooLarge(
            f"decoding this {width}x{height} {img.format} ({img.mode}) image would take about "
            f"{math.ceil(cost / mib)} MiB; the limit is {max_decode_bytes // mib} MiB"
        )
    img.load()
    orientation = _orientation(img)
    rgb = _to_rgb(img, plan)
    method = _TRANSPOSE.get(orientation)
    return rgb.transpose(method) if method is not None else rgb


_TRANSPOSE: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8), or 1 when absent or unreadable (broken EXIF is common)."""
    exif = img.info.get("exif")
    raw = img.info.get("Raw profile type exif")  # PNG text chunk, hex (ImageMagick); Pillow reads it too
    if exif is None and isinstance(raw, str):
        with contextlib.suppress(ValueError):
            exif = bytes.fromhex("".join(raw.split("\n")[3:]))
    if isinstance(exif, bytes) and not exif_is_bounded(exif):
        return 1  # too large to parse in time: ignored, like a broken block
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # any parse failure of the EXIF block means "as stored"
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(img: Image.Image, plan: _Plan) -> Image.Image:
    """Convert to 8-bit RGB and shrink by ``plan.factor``, a stripe of rows at a time.

    Each stripe is cropped from the decoded image, converted (high bit depths
    scaled to 8 bits, transparency composited on white), shrunk with a box
    filter and pasted into the output, so no full-size temporary is ever made.
    """
    left, top, right, bottom = plan.box
    factor = plan.factor
    if img.mode == "RGB" and factor == 1 and plan.box == (0, 0, *img.size):
        return img
    grey = img.mode in _GREY_MODES
    out_mode = "L" if grey else "RGB"
    out = Image.new(out_mode, (math.ceil((right - left) / factor), math.ceil((bottom - top) / factor)))
    width = right - left
    rows = max(1, _STRIPE_BYTES // max(1, width * _bytes_per_pixel(img.mode)))
    rows = max(factor, rows - rows % factor)
    scale = _high_bit_scale(img, plan, rows) if img.mode in _HIGH_BIT_MODES else None
    for y in range(top, bottom, rows):
        stripe = img.crop((left, y, right, min(bottom, y + rows)))
        part = _stripe_to_8bit(stripe, out_mode, scale)
        if factor > 1:
            part = part.reduce(factor)
        out.paste(part, (0, (y - top) // factor))
    return out if out_mode == "RGB" else out.convert("RGB")


def _high_bit_scale(img: Image.Image, plan: _Plan, rows: int) -> tuple[float, float]:
    """``(offset, gain)`` mapping this 16/32-bit or float image to 0-255.

    16-bit images span 0-65535. 32-bit and float images are read as 0-1
    (floats), 0-255 or 0-65535 when their values fit, else stretched from their
    own minimum to maximum.
    """
    if img.mode.startswith("I;16"):
        return 0.0, 255.0 / 65535.0
    lo, hi = math.inf, -math.inf
    left, top, right, bottom = plan.box
    for y in range(top, bottom, rows):
        arr = np.asarray(img.crop((left, y, right, min(bottom, y + rows))))
        finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if not math.isfinite(lo):
        return 0.0, 0.0
    if lo >= 0 and hi <= 1.0 and img.mode == "F":
        return 0.0, 255.0
    if lo >= 0 and hi <= 255:
        return 0.0, 1.0
    if lo >= 0 and hi <= 65535:
        return 0.0, 255.0 / 65535.0
    return lo, 255.0 / (hi - lo) if hi > lo else 0.0


def _stripe_to_8bit(stripe: Image.Image, out_mode: str, scale: tuple[float, float] | None) -> Image.Image:
    mode = stripe.mode
    if scale is not None:
        offset, gain = scale
        arr = np.asarray(stripe).astype(np.float32)  # stripe-sized only
        with np.errstate(all="ignore"):  # inf and NaN pixels are expected; they map to 255 and 0
            arr -= np.float32(offset)
            arr *= np.float32(gain)
        np.nan_to_num(arr, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(arr, 0, 255, out=arr)
        return Image.fromarray(np.rint(arr).astype(np.uint8), mode="L")
    if mode == "P":
        has_alpha = "transparency" in stripe.info or (stripe.palette is not None and stripe.palette.mode == "RGBA")
        stripe = stripe.convert("RGBA" if has_alpha else "RGB")
        mode = stripe.mode
    if mode == "La":
        stripe = stripe.convert("LA")
        mode = "LA"
    if mode in _ALPHA_MODES:
        target = "LA" if out_mode == "L" else "RGBA"
        with_alpha = stripe.convert(target)
        background = Image.new(out_mode, stripe.size, _WHITE if out_mode == "L" else (_WHITE,) * 3)
        background.paste(with_alpha.convert(out_mode), mask=with_alpha.getchannel("A"))
        return background
    return stripe if mode == out_mode else stripe.convert(out_mode)


def fit_square(img: Image.Image, size: int) -> npt.NDArray[np.uint8]:
    """Resize the shorter side to ``size`` and centre-crop to ``size`` x ``size``."""
    fitted = ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR, centering=(0.5, 0.5))
    return np.asarray(fitted, dtype=np.uint8)


def load_image(
    data: bytes,
    size: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
    timings: dict[str, float] | None = None,
) -> npt.NDArray[np.uint8]:
    """Bytes to a ``(size, size, 3)`` uint8 RGB array: the model's input.

    If ``timings`` is given, ``decode_ms`` and ``preprocess_ms`` are written to it.
    """
    started = time.perf_counter()
    # JPEGs keep their whole (drafted) frame so evaluation sees exactly what it
    # always did; other images are cropped to the centred square while converting.
    img = _decode(data, max_pixels=max_pixels, max_decode_bytes=max_decode_bytes, draft_size=size, square=True)
    decoded = time.perf_counter()
    arr = fit_square(img, size)
    if timings is not None:
        timings["decode_ms"] = (decoded - started) * 1000
        timings["preprocess_ms"] = (time.perf_counter() - decoded) * 1000
    return arr
