"""Turn what a caller hands us into the request payload.

An http(s) URL is sent for the service to fetch (``{"url": ...}``); a path,
``pathlib.Path``, bytes or a binary file object is sent as the image itself
(``{"image": "<base64>"}``), checked against the transport's payload limit
before anything goes on the wire. :func:`find_images` expands a directory.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import IO, Any, Union

from flowers_client._config import IMAGE_SUFFIXES
from flowers_client._exceptions import InvalidInputError

__all__ = [
    "ImageInput",
    "build_item",
    "build_payload",
    "check_top_k",
    "describe",
    "find_images",
    "is_url",
    "options",
]

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]

_JSON_OVERHEAD = 64  # {"image":"...","top_k":10,"reject":true}


def is_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def describe(image: ImageInput) -> str:
    """A short human-readable name for an input (for tables, logs and batch items)."""
    if isinstance(image, str):
        return image
    if isinstance(image, os.PathLike):
        return os.fspath(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<{len(image)} bytes>"
    name = getattr(image, "name", None)
    return str(name) if isinstance(name, str) else "<file object>"


def find_images(directory: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``directory``, recursively, in sorted order.

    Files are picked by suffix (``.jpg``, ``.png``, ``.webp``...; any case);
    hidden files and directories are skipped and symlinked directories are not
    followed (no loops).
    """
    root = Path(directory)
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a directory")
    found: list[Path] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        found.extend(
            Path(folder, name)
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return sorted(found, key=lambda p: p.parts)


def _read(image: ImageInput) -> bytes:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise InvalidInputError(f"{path}: no such file (URLs must start with http:// or https://)") from None
        except IsADirectoryError:
            raise InvalidInputError(f"{path}: is a directory") from None
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    read = getattr(image, "read", None)
    if callable(read):
        data = read()
        if not isinstance(data, bytes):
            raise InvalidInputError("file objects must be opened in binary mode ('rb')")
        return data
    raise InvalidInputError(f"cannot classify a {type(image).__name__}: pass a URL, a path, bytes or a binary file")


def check_top_k(top_k: int) -> None:
    if not 1 <= top_k <= 102:
        raise InvalidInputError("top_k must be between 1 and 102")


def build_payload(image: ImageInput, *, top_k: int, max_payload: int, reject: bool = False) -> dict[str, Any]:
    """The request body for one image. ``reject`` is sent only when true (older services don't know it)."""
    check_top_k(top_k)
    return {**build_item(image, max_payload=max_payload), **options(top_k=top_k, reject=reject)}


def options(*, top_k: int, reject: bool) -> dict[str, Any]:
    return {"top_k": top_k, **({"reject": True} if reject else {})}


def build_item(image: ImageInput, *, max_payload: int) -> dict[str, str]:
    """``{"url": ...}`` or ``{"image": <base64>}``: one image as a request (with the options) or a batch item."""
    if isinstance(image, str) and is_url(image):
        return {"url": image}
    data = _read(image)
    if not data:
        raise InvalidInputError(f"{describe(image)}: the image is empty")
    encoded_size = 4 * ((len(data) + 2) // 3) + _JSON_OVERHEAD
    if encoded_size > max_payload:
        # base64 grows the image by a third; the limit applies to the whole request.
        limit = (max_payload - _JSON_OVERHEAD) * 3 // 4
        raise InvalidInputError(
            f"{describe(image)}: {len(data):,} bytes is too large to send; the limit through this endpoint "
            f"is about {limit:,} bytes (send a URL instead, or resize the image)"
        )
    return {"image": base64.b64encode(data).decode("ascii")}
