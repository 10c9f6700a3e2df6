"""The one image-loading path: bytes in, a model-ready RGB array out.

Serving, evaluation and the training pipeline's validation step all call
:func:`load_image`, so the accuracy we measure is the accuracy we serve.
Training augmentation starts from :func:`decode_image` (same decoding, same
colour handling) and only replaces the final resize/crop with a random one.
"""

from __future__ import annotations

import io
import time
import warnings
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from flowers_serving.errors import ImageTooLarge, UndecodableImage, UnsupportedMediaType

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "decode_image",
    "fit_square",
    "load_image",
]

#: Pillow format names we decode. Anything else (PDF, EPS, ICO, ...) is refused
#: before decoding, which also keeps Ghostscript-backed plugins out of reach.
ACCEPTED_FORMATS: Final = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO"})

#: 40 megapixels: a 7,000 x 5,700 camera photo passes, a 20,000 x 20,000
#: decompression bomb (a few KB of PNG) is refused before any pixel is decoded.
DEFAULT_MAX_PIXELS: Final = 40_000_000

_WHITE: Final = (255, 255, 255)


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None) -> Image.Image:
    """Decode image bytes to an upright 8-bit RGB Pillow image.

    Raises :class:`UnsupportedMediaType` for bytes that are not an image format
    we accept, :class:`ImageTooLarge` for images over ``max_pixels`` (checked
    from the header, before decoding) and :class:`UndecodableImage` for
    truncated or corrupt files.

    ``draft_size`` lets the JPEG decoder scale down by 1/2, 1/4 or 1/8 while
    decoding (never below that size), which makes big photos several times
    cheaper to decode; the final resize still happens in :func:`fit_square`.
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we check
            # the size ourselves below, so silence the warning rather than leak it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType("the data is not an image in a format we accept") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except (OSError, ValueError, SyntaxError) as exc:  # corrupt headers surface as any of these
        raise UndecodableImage(f"cannot read the image header: {exc}") from exc

    if img.format not in ACCEPTED_FORMATS:
        raise UnsupportedMediaType(f"image format {img.format} is not accepted")
    width, height = img.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels:,} pixels")
    if width < 1 or height < 1:
        raise UndecodableImage("image has no pixels")

    try:
        if draft_size is not None and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        return _to_rgb(ImageOps.exif_transpose(img))
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UndecodableImage(f"cannot decode the image: {exc}") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, compositing transparency onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit / 32-bit greyscale: Pillow's convert("L") clips instead of
        # scaling, which turns most photos white. Scale to 8 bits ourselves.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr8 = np.clip(arr * (255.0 / peak), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def fit_square(img: Image.Image, size: int) -> npt.NDArray[np.uint8]:
    """Resize the shorter side to ``size`` and centre-crop to ``size`` x ``size``."""
    fitted = ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR, centering=(0.5, 0.5))
    return np.asarray(fitted, dtype=np.uint8)


def load_image(
    data: bytes,
    size: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    timings: dict[str, float] | None = None,
) -> npt.NDArray[np.uint8]:
    """Bytes to a ``(size, size, 3)`` uint8 RGB array: the model's input.

    If ``timings`` is given, ``decode_ms`` and ``preprocess_ms`` are written to it.
    """
    started = time.perf_counter()
    img = decode_image(data, max_pixels=max_pixels, draft_size=size)
    decoded = time.perf_counter()
    arr = fit_square(img, size)
    if timings is not None:
        timings["decode_ms"] = (decoded - started) * 1000
        timings["preprocess_ms"] = (time.perf_counter() - decoded) * 1000
    return arr
