"""Hostile images made at run time: tiny files that decode to huge arrays.

Shared by the serving tests (peak RSS of the handler), the contract cases and
the benchmark. Every generator writes the file byte by byte (zlib streams,
hand-made TIFF/BMP/GIF headers), so making a 40-megapixel image costs a few
MB here, never the gigabyte its pixels would: only the code under test pays
for the pixels. :data:`CLASSES` names one example of each kind with what the
service must answer (``None``: classified, else the error code).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CLASSES",
    "HostileImage",
    "bmp_rle8",
    "exif_block",
    "gif",
    "gif_with_extension",
    "jpeg_with_exif",
    "png",
    "png_chunk",
    "png_with_chunks",
    "tiff",
    "tiff_with_tags",
]

_BLOCK = 1 << 20


@functools.cache
def _zero_segment() -> bytes:
    """Raw deflate of one block of zeros, ended by a full flush: it can be repeated as is."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(b"\x00" * _BLOCK) + comp.flush(zlib.Z_FULL_FLUSH)


def _zlib_zeros(total: int) -> bytes:
    """A zlib stream of ``total`` zero bytes, built without compressing them all (fast for gigabytes)."""
    full, rest = divmod(total, _BLOCK)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = comp.compress(b"\x00" * rest) + comp.flush()
    adler = ((total % 65521) << 16) | 1  # Adler-32 of n zeros: a stays 1, b grows by 1 per byte
    return b"\x78\xda" + _zero_segment() * full + tail + struct.pack(">I", adler)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png(
    width: int,
    height: int,
    *,
    bit_depth: int = 8,
    color_type: int = 2,
    interlace: int = 0,
    frames: int = 1,
    palette_size: int = 256,
    transparency: bool = False,
    rows: int | None = None,
) -> bytes:
    """A PNG of zeros (APNG when ``frames`` > 1: every frame full size); ``rows`` cuts the data
    short after that many rows (a bomb: the header alone is what matters)."""
    bits_per_row = width * _PNG_CHANNELS[color_type] * bit_depth
    row = (bits_per_row + 7) // 8
    out = [b"\x89PNG\r\n\x1a\n"]
    out.append(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)))
    if color_type == 3:
        out.append(_png_chunk(b"PLTE", bytes(range(256)) * 3 if palette_size == 256 else b"\x80" * 3 * palette_size))
        if transparency:
            out.append(_png_chunk(b"tRNS", b"\x00"))
    if frames > 1:
        out.append(_png_chunk(b"acTL", struct.pack(">II", frames, 0)))
    if interlace:
        # Adam7: seven passes, each a sub-image with its own filtered rows (all zero bytes here).
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        total = 0
        for x0, y0, dx, dy in passes:
            pw = (width - x0 + dx - 1) // dx if width > x0 else 0
            ph = (height - y0 + dy - 1) // dy if height > y0 else 0
            if pw and ph:
                total += ph * ((pw * _PNG_CHANNELS[color_type] * bit_depth + 7) // 8 + 1)
        data = _zlib_zeros(total)
    else:
        data = _zlib_zeros((row + 1) * (rows or height))  # filter byte 0 and zero pixels: all zeros
    seq = 0
    for frame in range(frames):
        if frames > 1:
            out.append(_png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, width, height, 0, 0, 1, 10, 0, 0)))
            seq += 1
        if frame == 0:
            out.append(_png_chunk(b"IDAT", data))
        else:
            out.append(_png_chunk(b"fdAT", struct.pack(">I", seq) + data))
            seq += 1
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def png_text_bomb(chunks: int = 200) -> bytes:
    """A small PNG with ``chunks`` zTXt chunks that each inflate to 1 MB (Pillow stops at 64 MB)."""
    inflates_to_1mb = zlib.compress(b"a" * (1024 * 1024 - 100), 9)
    text = b"".join(_png_chunk(b"zTXt", b"k%d\x00\x00" % i + inflates_to_1mb) for i in range(chunks))
    base = png(1000, 1000)
    return base[:33] + text + base[33:]  # after the IHDR chunk


def tiff(
    width: int,
    height: int,
    *,
    bits: int = 8,
    samples: int = 1,
    sample_format: int = 1,
    photometric: int = 1,
    rows_per_strip: int | None = None,
    pages: int = 1,
    big_endian: bool = False,
    extra_samples: int = 0,
    truncated: bool = False,
) -> bytes:
    """A deflate-compressed TIFF of zeros (``sample_format`` 1 uint, 2 int, 3 float; ``photometric``
    0/1 grey, 2 RGB, 3 palette, 5 CMYK); ``truncated`` keeps one row of data per strip (a bomb:
    only the header matters)."""
    e = ">" if big_endian else "<"
    rows = rows_per_strip or height
    row_bytes = (width * samples * bits + 7) // 8
    strip = _zlib_zeros(row_bytes * (1 if truncated else rows))
    last_rows = height - rows * ((height - 1) // rows)
    last = strip if last_rows == rows or truncated else _zlib_zeros(row_bytes * last_rows)
    n_strips = (height + rows - 1) // rows
    buf = io.BytesIO()
    buf.write((b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 0))
    first_ifd_pos = 4
    for _page in range(pages):
        # Strip data first (shared: every strip holds the same zeros), then arrays, then the IFD.
        strip_at = buf.tell()
        buf.write(strip)
        last_at = strip_at
        if last is not strip:
            last_at = buf.tell()
            buf.write(last)
        offsets = [strip_at] * (n_strips - 1) + [last_at]
        counts = [len(strip)] * (n_strips - 1) + [len(last)]
        arrays: dict[int, tuple[int, list[int]]] = {}  # tag -> (type, values)
        entries: list[tuple[int, int, list[int]]] = [
            (256, 4, [width]),
            (257, 4, [height]),
            (258, 3, [bits] * samples),
            (259, 3, [8]),  # deflate
            (262, 3, [photometric]),
            (273, 4, offsets),
            (277, 3, [samples]),
            (278, 4, [rows]),
            (279, 4, counts),
            (284, 3, [1]),
        ]
        if photometric == 3:
            entries.append((320, 3, [0] * (3 * (1 << bits))))
        if extra_samples:
            entries.append((338, 3, [2] * extra_samples))
        entries.append((339, 3, [sample_format] * samples))
        entries.sort()
        for tag, typ, values in entries:
            if len(values) * (2 if typ == 3 else 4) > 4:
                if buf.tell() % 2:
                    buf.write(b"\x00")
                arrays[tag] = (buf.tell(), values)
                buf.write(struct.pack(e + ("H" if typ == 3 else "I") * len(values), *values))
        if buf.tell() % 2:
            buf.write(b"\x00")
        ifd_at = buf.tell()
        end = buf.getbuffer().nbytes
        buf.seek(first_ifd_pos)
        buf.write(struct.pack(e + "I", ifd_at))
        buf.seek(end)
        buf.write(struct.pack(e + "H", len(entries)))
        for tag, typ, values in entries:
            if tag in arrays:
                field = struct.pack(e + "I", arrays[tag][0])
            elif typ == 3:
                field = struct.pack(e + "H" * len(values), *values).ljust(4, b"\x00")
            else:
                field = struct.pack(e + "I", values[0])
            buf.write(struct.pack(e + "HHI", tag, typ, len(values)) + field)
        first_ifd_pos = buf.tell()
        buf.write(struct.pack(e + "I", 0))
    return buf.getvalue()


def bmp_rle8(width: int, height: int, *, line: bytes | None = None) -> bytes:
    """An RLE8 BMP: runs of 255 zero pixels, two bytes each (or ``line`` for every row)."""
    if line is None:
        line = b"\xff\x00" * (width // 255) + (bytes([width % 255, 0]) if width % 255 else b"") + b"\x00\x00"
    pixels = line * height + b"\x00\x01"
    palette = b"\x00\x00\x00\x00" * 256
    header_size = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", header_size + len(pixels), 0, 0, header_size) + info + palette + pixels


def _lzw_zeros(pixels: int, min_code_size: int = 8) -> bytes:
    """GIF LZW for ``pixels`` zero indices: each new code spells one more zero than the last."""
    clear, eoi = 1 << min_code_size, (1 << min_code_size) + 1
    codes: list[tuple[int, int]] = []
    size = min_code_size + 1
    codes.append((clear, size))
    next_code = eoi + 1
    run = 1  # the length the next emitted code spells
    prev: int | None = None  # code spelling `run - 1` zeros
    remaining = pixels
    while remaining > 0:
        if prev is None or run > remaining or next_code >= 4096:
            if next_code >= 4096:
                codes.append((clear, size))
                size, next_code, prev, run = min_code_size + 1, eoi + 1, None, 1
                continue
            if prev is None:
                codes.append((0, size))  # one zero
                remaining -= 1
                prev, run = 0, 2
                continue
            codes.append((0, size))  # fewer left than the next run: spell them one at a time
            remaining -= 1
            continue
        # `next_code` will be defined as prev + first char of the next string (zero): it spells `run` zeros.
        # Emitting it before the decoder defines it is the KwKwK case, which LZW decoders handle.
        codes.append((next_code, size))
        prev = next_code
        next_code += 1
        remaining -= run
        run += 1
        if next_code == (1 << size) and size < 12:
            size += 1
    codes.append((eoi, size))
    out = bytearray()
    acc = nbits = 0
    for code, width in codes:
        acc |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc)
    blocks = b"".join(bytes([len(out[i : i + 255])]) + out[i : i + 255] for i in range(0, len(out), 255))
    return bytes([min_code_size]) + blocks + b"\x00"


def gif(width: int, height: int, *, frames: int = 1) -> bytes:
    """A GIF with a 256-colour table and ``frames`` full-size frames of index 0 (transparent)."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + bytes(range(256)) * 3
    if frames > 1:
        head += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    data = _lzw_zeros(width * height)
    frame = b"!\xf9\x04\x09\x0a\x00\x00\x00" + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + data
    return head + frame * frames + b";"


def _pillow(mode: str, size: tuple[int, int], fmt: str, **params: object) -> Callable[[], bytes]:
    """Files Pillow must write itself (JPEG, WebP): made in the caller's process."""

    def make() -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.new(mode, size).save(buf, format=fmt, **params)
        return buf.getvalue()

    return make


def _small_jpeg() -> bytes:
    return _pillow("RGB", (64, 64), "JPEG")()


def _insert(base: bytes, at: int, extra: bytes) -> bytes:
    return base[:at] + extra + base[at:]


def exif_block(entries: int = 1, *, rationals: int = 0) -> bytes:
    """A little-endian EXIF block (``Exif\\0\\0`` + TIFF structure): ``entries`` tags in its first
    directory, the first of them XResolution holding ``rationals`` values when asked."""
    head = b"Exif\x00\x00II*\x00\x08\x00\x00\x00"
    data_at = 8 + 2 + 12 * entries + 4
    first = struct.pack("<HHII", 0x011A, 5, rationals, data_at) if rationals else struct.pack("<HHI4x", 0x0112, 3, 1)
    rest = b"".join(struct.pack("<HHI4x", (1000 + i) % 65536, 7, 1) for i in range(entries - 1))
    return head + struct.pack("<H", entries) + first + rest + b"\x00" * 4 + b"\x01\x00\x00\x00" * 2 * rationals


def jpeg_with_exif(exif: bytes) -> bytes:
    """A small JPEG carrying ``exif`` in as many 64 KB APP1 segments as it takes (Pillow joins them)."""
    parts = [exif[:65000]] + [b"Exif\x00\x00" + exif[i : i + 65000] for i in range(65000, len(exif), 65000)]
    segments = b"".join(b"\xff\xe1" + struct.pack(">H", len(part) + 2) + part for part in parts)
    return _insert(_small_jpeg(), 2, segments)


def png_with_chunks(chunks: bytes, *, after_image: bool = False) -> bytes:
    """A 64x64 PNG with extra ``chunks`` (made with :func:`png_chunk`) before or after its image data."""
    base = png(64, 64)
    return _insert(base, len(base) - 12 if after_image else 33, chunks)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return _png_chunk(kind, data)


def gif_with_extension(label: int, sub_blocks: list[bytes]) -> bytes:
    """A 64x64 GIF with one extension block of the given sub-blocks before its image."""
    base = gif(64, 64)
    body = b"".join(bytes([len(b)]) + b for b in sub_blocks) + b"\x00"
    return _insert(base, 13 + 768, bytes([0x21, label]) + body)


def tiff_with_tags(extra: list[tuple[int, int, int]], data: bytes = b"") -> bytes:
    """A 64x64 TIFF whose first directory also holds ``extra`` (tag, type, count) entries, each pointing
    at ``data`` (appended to the file)."""
    base = bytearray(tiff(64, 64))
    (ifd_at,) = struct.unpack_from("<I", base, 4)
    (count,) = struct.unpack_from("<H", base, ifd_at)
    entries = [bytes(base[ifd_at + 2 + 12 * i : ifd_at + 14 + 12 * i]) for i in range(count)]
    data_at = len(base)
    base += data
    entries += [struct.pack("<HHII", tag, kind, n, data_at) for tag, kind, n in extra]
    entries.sort(key=lambda entry: struct.unpack_from("<H", entry)[0])
    if len(base) % 2:
        base += b"\x00"
    struct.pack_into("<I", base, 4, len(base))
    return bytes(base) + struct.pack("<H", len(entries)) + b"".join(entries) + b"\x00" * 4


def _webp_with_exif(entries: int) -> Callable[[], bytes]:
    def make() -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (64, 64)).save(buf, format="WEBP", exif=exif_block(entries))
        return buf.getvalue()

    return make


def _webp_frames(frames: int) -> Callable[[], bytes]:
    def make() -> bytes:
        from PIL import Image

        images = [Image.new("RGB", (64, 64), (i % 256, 0, 0)) for i in range(frames)]
        buf = io.BytesIO()
        images[0].save(buf, format="WEBP", save_all=True, append_images=images[1:], quality=1)
        return buf.getvalue()

    return make


def _jpeg_precision(bits: int) -> bytes:
    """A baseline JPEG relabelled as extended-sequential (SOF1) of ``bits`` bits per sample."""
    data = _small_jpeg()
    at = data.find(b"\xff\xc0")
    return data[:at] + b"\xff\xc1" + data[at + 2 : at + 4] + bytes([bits]) + data[at + 5 :]


_BIGTIFF_FAR = b"II+\x00\x08\x00\x00\x00" + struct.pack("<Q", 2**63)


@dataclass(frozen=True)
class HostileImage:
    name: str
    make: Callable[[], bytes]
    code: str | None  # None: must be classified (200); else the error code

    def __str__(self) -> str:
        return self.name


# 40 megapixels is the pixel cap: every image below is at or under it, so only
# the memory budget (or a frugal decoder) stands between it and the OOM killer.
CLASSES: list[HostileImage] = [
    # TIFF: libtiff reads a whole strip at once, so one-strip files cost twice their pixels.
    HostileImage("float32-tiff-6324x6324", lambda: tiff(6324, 6324, bits=32, sample_format=3), "image_too_large"),
    HostileImage("float32-tiff-5000x5000", lambda: tiff(5000, 5000, bits=32, sample_format=3), None),
    HostileImage(
        "float32-tiff-strips-6324x6324", lambda: tiff(6324, 6324, bits=32, sample_format=3, rows_per_strip=16), None
    ),
    HostileImage(
        "float64-tiff-2000x2000", lambda: tiff(2000, 2000, bits=64, sample_format=3), "unsupported_media_type"
    ),
    HostileImage("int32-tiff-6324x6324", lambda: tiff(6324, 6324, bits=32, sample_format=2), "image_too_large"),
    HostileImage("uint16-tiff-6324x6324", lambda: tiff(6324, 6324, bits=16), None),
    HostileImage(
        "uint16be-tiff-4000x4000", lambda: tiff(4000, 4000, bits=16, big_endian=True, rows_per_strip=64), None
    ),
    HostileImage(
        "rgb16-tiff-6324x6324", lambda: tiff(6324, 6324, bits=16, samples=3, photometric=2, rows_per_strip=8), None
    ),
    HostileImage("cmyk-tiff-6324x6324", lambda: tiff(6324, 6324, samples=4, photometric=5), "image_too_large"),
    HostileImage(
        "cmyk-tiff-strips-6324x6324", lambda: tiff(6324, 6324, samples=4, photometric=5, rows_per_strip=32), None
    ),
    HostileImage(
        "rgba-tiff-8-pages-3000x3000",
        lambda: tiff(3000, 3000, samples=4, photometric=2, extra_samples=1, pages=8, rows_per_strip=64),
        None,
    ),
    HostileImage("palette-tiff-6324x6324", lambda: tiff(6324, 6324, photometric=3, rows_per_strip=256), None),
    HostileImage("bilevel-tiff-6324x6324", lambda: tiff(6324, 6324, bits=1, rows_per_strip=512), None),
    # PNG: every bit depth and colour type, interlaced, animated, and absurd aspect ratios.
    HostileImage("grey16-png-6324x6324", lambda: png(6324, 6324, bit_depth=16, color_type=0), None),
    HostileImage("rgb16-png-6324x6324", lambda: png(6324, 6324, bit_depth=16, color_type=2), None),
    HostileImage("rgba16-png-6324x6324", lambda: png(6324, 6324, bit_depth=16, color_type=6), None),
    HostileImage("la16-png-6324x6324", lambda: png(6324, 6324, bit_depth=16, color_type=4), None),
    HostileImage("la8-png-6324x6324", lambda: png(6324, 6324, color_type=4), None),
    HostileImage("rgb-png-interlaced-6324x6324", lambda: png(6324, 6324, interlace=1), None),
    HostileImage("rgb-png-1x39999999", lambda: png(1, 39_999_999), "image_too_large"),
    HostileImage("grey-png-39999999x1", lambda: png(39_999_999, 1, color_type=0), None),
    HostileImage("palette-png-6324x6324", lambda: png(6324, 6324, color_type=3, transparency=True), None),
    HostileImage("bilevel-png-6324x6324", lambda: png(6324, 6324, bit_depth=1, color_type=0), None),
    HostileImage("apng-50-frames-3000x3000", lambda: png(3000, 3000, frames=50), None),
    HostileImage("png-text-chunks-200mb", png_text_bomb, "image_too_large"),
    HostileImage("png-60000x60000", lambda: png(60_000, 60_000, rows=1), "image_too_large"),
    # GIF, BMP: palette images, one frame decoded of many.
    HostileImage("gif-6324x6324", lambda: gif(6324, 6324), None),
    HostileImage("gif-65535x610", lambda: gif(65535, 610), None),
    HostileImage("gif-30-frames-2000x2000", lambda: gif(2000, 2000, frames=30), None),
    # RLE BMPs: Pillow decodes them in Python, a pixel at a time (a 4 KB one can pad 36 million pixels one
    # by one); refused outright.
    HostileImage("bmp-rle8-6324x6324", lambda: bmp_rle8(6324, 6324), "unsupported_media_type"),
    HostileImage(
        "bmp-rle8-end-of-line-padding", lambda: bmp_rle8(6000, 6000, line=b"\x01\x00\x00\x00"), "unsupported_media_type"
    ),
    # JPEG: progressive files keep every coefficient of the full-size image.
    HostileImage("jpeg-6324x6324", _pillow("RGB", (6324, 6324), "JPEG", quality=5), None),
    HostileImage("jpeg-progressive-6324x6324", _pillow("RGB", (6324, 6324), "JPEG", quality=5, progressive=True), None),
    HostileImage(
        "jpeg-progressive-444-6324x6324",
        _pillow("RGB", (6324, 6324), "JPEG", quality=5, progressive=True, subsampling=0),
        None,
    ),
    HostileImage(
        "jpeg-cmyk-progressive-6324x6324",
        _pillow("CMYK", (6324, 6324), "JPEG", quality=5, progressive=True),
        "image_too_large",
    ),
    # WebP: libwebp's canvas plus Pillow's copy.
    HostileImage(
        "webp-8000x5000", _pillow("RGBA", (8000, 5000), "WEBP", lossless=True, quality=0, method=0), "image_too_large"
    ),
    HostileImage("webp-3700x3700", _pillow("RGBA", (3700, 3700), "WEBP", lossless=True, quality=0, method=0), None),
    # Metadata Pillow walks in Python, a segment, chunk, block or value at a time: refused before it does
    # (each of these, at 10 MB, held the CPU for 20-65 s; the GIF also took 580 MB).
    HostileImage(
        "jpeg-5000-comment-markers", lambda: _insert(_small_jpeg(), 2, b"\xff\xfe\x00\x02" * 5000), "undecodable_image"
    ),
    HostileImage("jpeg-100k-fill-bytes", lambda: _insert(_small_jpeg(), 2, b"\xff" * 100_000), "undecodable_image"),
    HostileImage("jpeg-50k-escaped-ff", lambda: _insert(_small_jpeg(), 2, b"\xff\x00" * 50_000), "undecodable_image"),
    # An EXIF block too large to parse in time is ignored, like a broken one: the photo is still classified.
    HostileImage("jpeg-exif-2000-entries", lambda: jpeg_with_exif(exif_block(2000)), None),
    HostileImage("jpeg-exif-100k-rationals", lambda: jpeg_with_exif(exif_block(2, rationals=100_000)), None),
    HostileImage("jpeg-exif-500-entries", lambda: jpeg_with_exif(exif_block(500)), None),
    HostileImage("jpeg-12-bit", lambda: _jpeg_precision(12), "unsupported_media_type"),
    HostileImage(
        "png-5000-text-chunks",
        lambda: png_with_chunks(b"".join(png_chunk(b"tEXt", b"k%d\x00" % i) for i in range(5000))),
        "undecodable_image",
    ),
    HostileImage(
        "png-5000-private-chunks-after-image",
        lambda: png_with_chunks(png_chunk(b"prVt", b"") * 5000, after_image=True),
        "undecodable_image",
    ),
    HostileImage(
        "png-ztxt-inflating-to-1gb",
        lambda: png_with_chunks(png_chunk(b"zTXt", b"k\x00\x00" + _zlib_zeros(1 << 30))),
        "image_too_large",
    ),
    HostileImage(
        "png-iccp-inflating-to-1gb",
        lambda: png_with_chunks(png_chunk(b"iCCP", b"icc\x00\x00" + _zlib_zeros(1 << 30))),
        "image_too_large",
    ),
    HostileImage("png-exif-65535-entries", lambda: png_with_chunks(png_chunk(b"eXIf", exif_block(65535)[6:])), None),
    HostileImage("webp-exif-65535-entries", _webp_with_exif(65535), None),
    HostileImage("gif-comment-70k-sub-blocks", lambda: gif_with_extension(0xFE, [b"a"] * 70_000), "undecodable_image"),
    HostileImage("gif-100k-junk-bytes", lambda: _insert(gif(64, 64), 13 + 768, b"\x00" * 100_000), "undecodable_image"),
    HostileImage(
        "tiff-2000-tags", lambda: tiff_with_tags([(0x8000 + i, 7, 1) for i in range(2000)]), "undecodable_image"
    ),
    HostileImage(
        "tiff-100k-rationals",
        lambda: tiff_with_tags([(282, 5, 100_000)], b"\x01\x00\x00\x00" * 200_000),
        "undecodable_image",
    ),
    # A strip (or tile) per row of a 1-pixel-wide TIFF: Pillow makes a tile object and a decoder call of each.
    HostileImage("tiff-1x70000-strips", lambda: tiff(1, 70_000, rows_per_strip=1), "undecodable_image"),
    # A BigTIFF whose first directory lies at 2**63 (past any offset struct takes), alone and as a JPEG's EXIF.
    HostileImage("bigtiff-far-directory", lambda: _BIGTIFF_FAR, "undecodable_image"),
    HostileImage("jpeg-exif-bigtiff-far-directory", lambda: jpeg_with_exif(b"Exif\x00\x00" + _BIGTIFF_FAR), None),
    # Thousands of frames or pages: only the first is decoded.
    HostileImage("apng-5000-frames", lambda: png(200, 200, frames=5000), None),
    HostileImage("gif-3000-frames", lambda: gif(64, 64, frames=3000), None),
    HostileImage("webp-3000-frames", _webp_frames(3000), None),
    HostileImage("tiff-3000-pages", lambda: tiff(64, 64, pages=3000), None),
    # Headers alone: a format we accept with nothing behind it (415, as any variant we cannot read), and a
    # BMP claiming 3.6 gigapixels.
    HostileImage("png-signature-only", lambda: b"\x89PNG\r\n\x1a\n", "unsupported_media_type"),
    HostileImage(
        "bmp-60000x60000-header",
        lambda: (
            b"BM"
            + struct.pack("<IHHI", 54, 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, 60000, 60000, 1, 32, 0, 0, 0, 0, 0, 0)
        ),
        "image_too_large",
    ),
    # Formats outside the allow-list never reach a parser.
    HostileImage("ico", _pillow("RGB", (64, 64), "ICO"), "unsupported_media_type"),
    HostileImage("avif", _pillow("RGB", (64, 64), "AVIF"), "unsupported_media_type"),
    HostileImage("jpeg2000", _pillow("RGB", (64, 64), "JPEG2000"), "unsupported_media_type"),
    HostileImage(
        "psd",
        lambda: b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 30000, 30000, 8, 3),
        "unsupported_media_type",
    ),
    HostileImage(
        "svg",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="99999" height="99999"/>',
        "unsupported_media_type",
    ),
    HostileImage("pdf", _pillow("RGB", (64, 64), "PDF"), "unsupported_media_type"),
    HostileImage(
        "heic", lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100), "unsupported_media_type"
    ),
]
