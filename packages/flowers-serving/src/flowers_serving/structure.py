"""Bound the metadata Pillow parses in Python, before it parses any.

Pixel data is decoded in C, but Pillow walks each file's container in Python,
one segment, chunk, block or tag value at a time, and keeps what it reads: a
10 MB JPEG of 2.6 million empty comment markers, or of 5 million ``FF 00``
pairs, a PNG of 800,000 tiny text chunks, a GIF comment cut into 1-byte
sub-blocks, or a TIFF / EXIF tag holding a million rationals each cost tens
of seconds of CPU (and up to 580 MB for the GIF) while the image itself is a
few pixels. :func:`check_structure` walks the same structure with
``bytes.find`` and ``struct`` (milliseconds for any 10 MB file) and refuses,
as undecodable, a file with more of it than any real photo has. An EXIF
block over the limits is not a reason to refuse a photo: it is hidden from
Pillow (JPEG) or skipped (:func:`exif_is_bounded`, for the other formats),
as a broken one would be, and the photo is classified as stored.
"""

from __future__ import annotations

import re
import struct
import warnings
from typing import Final

from flowers_serving.errors import UndecodableImage, UnsupportedMediaType

__all__ = [
    "MAX_IFD_ENTRIES",
    "MAX_IFD_VALUES",
    "MAX_JUNK_BYTES",
    "MAX_SEGMENTS",
    "MAX_SUB_BLOCKS",
    "MAX_TIFF_STRIPS",
    "check_structure",
    "exif_is_bounded",
]

#: JPEG marker segments before the first scan, or PNG chunks other than image data;
#: real photos have tens (an ICC profile split in 64 KB parts, a few hundred at most).
MAX_SEGMENTS: Final = 4096
#: Bytes a JPEG or GIF parser skips one at a time (padding, junk between markers or blocks).
MAX_JUNK_BYTES: Final = 65_536
#: GIF extension sub-blocks before the first image (a 255-byte sub-block each: 16 MB of comments).
MAX_SUB_BLOCKS: Final = 65_536
#: Entries of one TIFF / EXIF directory; real files have tens.
MAX_IFD_ENTRIES: Final = 1024
#: Numbers in one directory's tags, strip and tile tables aside (Pillow makes an object of each).
MAX_IFD_VALUES: Final = 65_536
#: Strips or tiles of one TIFF image: Pillow makes a tile object and runs a decoder call for each (a 1-pixel
#: wide TIFF of a million 1-row strips took 12 s and 470 MB). A 40-megapixel photo has a few thousand strips
#: of one row, or a few hundred 256x256 tiles.
MAX_TIFF_STRIPS: Final = 65_536

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_IMAGE_CHUNKS: Final = frozenset({b"IDAT", b"fdAT", b"fcTL"})
# Standalone JPEG markers (no length field): TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xDA)})
# TIFF field types Pillow turns into one Python object per value (BYTE, ASCII, UNDEFINED become one bytes/str).
_IFD_NUMBER_TYPES: Final = frozenset({3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 16, 17, 18})
# StripOffsets, StripByteCounts, TileOffsets, TileByteCounts: as long as the image has strips.
_IFD_TABLE_TAGS: Final = frozenset({273, 279, 324, 325})
_GIF_BLOCK_START: Final = re.compile(rb"[!,;]")


def check_structure(data: bytes) -> bytes:
    """The bytes to hand Pillow: ``data``, or a copy with an oversized JPEG EXIF block hidden (a warning says so).

    Raises :class:`UndecodableImage` if the container holds more metadata than Pillow should walk.
    """
    if data.startswith(b"\xff\xd8"):
        return _check_jpeg(data)
    if data.startswith(_PNG_SIGNATURE):
        _check_png(data)
    elif data.startswith((b"GIF87a", b"GIF89a")):
        _check_gif(data)
    elif data.startswith(b"BM") and len(data) >= 34 and struct.unpack_from("<I", data, 14)[0] >= 40:
        if struct.unpack_from("<I", data, 30)[0] in (1, 2):  # BI_RLE8, BI_RLE4
            # Pillow expands RLE bitmaps in Python, a run (and an end-of-line pad) a pixel at a time: a
            # 1 MB file took a minute. Photos never come this way, so the variant is refused outright.
            raise UnsupportedMediaType("RLE-compressed BMP is not accepted; send it uncompressed, or as PNG or JPEG")
    elif data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):  # TIFF, BigTIFF
        problem = _ifd_problem(data)
        if problem:
            raise UndecodableImage(f"the TIFF's first directory {problem}")
    return data


def exif_is_bounded(exif: bytes) -> bool:
    """Whether an EXIF block (with or without its ``Exif\\0\\0`` prefix) is small enough to parse."""
    return _exif_problem(exif) is None


def _exif_problem(exif: bytes) -> str | None:
    base = 0
    while exif.startswith(b"Exif\x00\x00", base):  # Pillow strips one or two
        base += 6
    return _ifd_problem(exif, base)


def _too_many(what: str, limit: int) -> UndecodableImage:
    return UndecodableImage(f"the image has more than {limit:,} {what}; the limit is {limit:,}")


def _check_jpeg(data: bytes) -> bytes:
    # Mirrors JpegImageFile._open: markers up to the first scan (SOS); what follows is libjpeg's.
    pos, size = 2, len(data)
    segments = junk = 0
    exif: list[bytes] = []
    exif_at: list[int] = []
    while pos + 1 < size:
        if data[pos] != 0xFF:  # junk: Pillow reads it one byte at a time
            found = data.find(b"\xff", pos)
            junk += (found if found >= 0 else size) - pos
            pos = found if found >= 0 else size
        else:
            marker = data[pos + 1]
            if marker in (0xFF, 0x00):  # fill byte, or an escaped 0xFF outside any scan
                junk += 1 if marker == 0xFF else 2
                pos += 1 if marker == 0xFF else 2
            else:
                segments += 1
                if segments > MAX_SEGMENTS:
                    raise _too_many("JPEG marker segments before its first scan", MAX_SEGMENTS)
                if marker == 0xDA:
                    break
                if marker in _JPEG_STANDALONE:
                    pos += 2
                    continue
                if pos + 4 > size:
                    break
                (length,) = struct.unpack_from(">H", data, pos + 2)
                body = data[pos + 4 : pos + 2 + length]
                if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
                    exif.append(body if not exif else body[6:])  # Pillow joins every EXIF segment
                    exif_at.append(pos + 4)
                pos += 2 + max(length, 2)
        if junk > MAX_JUNK_BYTES:
            raise _too_many("bytes of padding or junk between JPEG markers", MAX_JUNK_BYTES)
    # Pillow reads the EXIF block while opening a JPEG (for its resolution): rename the segments it
    # would read ("Exif\0\0" -> "Exif\0X") and they become opaque application data.
    problem = _exif_problem(b"".join(exif))
    if not problem:
        return data
    warnings.warn(f"EXIF block ignored: it {problem}", stacklevel=2)
    hidden = bytearray(data)
    for at in exif_at:
        hidden[at + 5] = ord("X")
    return bytes(hidden)


def _check_png(data: bytes) -> None:
    pos, size = 8, len(data)
    chunks = 0
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IEND":
            break
        if kind not in _PNG_IMAGE_CHUNKS:
            chunks += 1
            if chunks > MAX_SEGMENTS:
                raise _too_many("PNG metadata chunks", MAX_SEGMENTS)
        pos += 12 + length


def _check_gif(data: bytes) -> None:
    # Mirrors GifImageFile._seek(0): blocks up to the first image descriptor; its pixels are the C decoder's.
    size = len(data)
    if size < 13:
        return
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    blocks = junk = 0
    while pos < size:
        kind = data[pos]
        if kind == 0x21:  # extension: introducer, label, then sub-blocks up to an empty one
            pos += 2
            while pos < size:
                blocks += 1
                if blocks > MAX_SUB_BLOCKS:
                    raise _too_many("GIF extension sub-blocks before its first image", MAX_SUB_BLOCKS)
                length = data[pos]
                pos += 1 + length
                if length == 0:
                    break
        elif kind in (0x2C, 0x3B):  # the first image, or the trailer
            return
        else:  # junk: Pillow skips it one byte at a time
            found = _GIF_BLOCK_START.search(data, pos)
            junk += (found.start() if found else size) - pos
            if junk > MAX_JUNK_BYTES:
                raise _too_many("junk bytes between GIF blocks", MAX_JUNK_BYTES)
            pos = found.start() if found else size


def _ifd_problem(tiff: bytes, base: int = 0) -> str | None:
    """What is wrong with the first directory of the TIFF structure at ``tiff[base:]``
    (a TIFF file, or an EXIF block), if anything."""
    order = tiff[base : base + 2]
    if len(tiff) < base + 8 or order not in (b"II", b"MM"):
        return None  # not a TIFF structure: Pillow refuses it without a long walk
    end = "<" if order == b"II" else ">"
    big = struct.unpack_from(end + "H", tiff, base + 2)[0] == 43
    try:
        if big:
            (offset,) = struct.unpack_from(end + "Q", tiff, base + 8)
            (entries,) = struct.unpack_from(end + "Q", tiff, base + offset)
            entry_format, first = end + "HHQ8x", base + offset + 8
        else:
            (offset,) = struct.unpack_from(end + "I", tiff, base + 4)
            (entries,) = struct.unpack_from(end + "H", tiff, base + offset)
            entry_format, first = end + "HHI4x", base + offset + 2
    except (struct.error, OverflowError):  # past the end, or (BigTIFF) past any offset struct can take
        return "points past the end of the data"
    if entries > MAX_IFD_ENTRIES:
        return f"has {entries:,} entries; the limit is {MAX_IFD_ENTRIES:,}"
    values = strips = 0
    step = struct.calcsize(entry_format)
    table = tiff[first : first + step * int(entries)]
    for tag, kind, count in struct.iter_unpack(entry_format, table[: len(table) - len(table) % step]):
        if kind in _IFD_NUMBER_TYPES and tag not in _IFD_TABLE_TAGS:
            values += count
        elif tag in _IFD_TABLE_TAGS:
            strips = max(strips, count)
    if values > MAX_IFD_VALUES:
        return f"holds {values:,} numbers outside its strip tables; the limit is {MAX_IFD_VALUES:,}"
    if strips > MAX_TIFF_STRIPS:
        return f"splits the image into {strips:,} strips or tiles; the limit is {MAX_TIFF_STRIPS:,}"
    return None
