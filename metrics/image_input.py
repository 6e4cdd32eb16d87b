"""Decoding images the way the Aesthetic-4K scripts do (OpenCV, EXIF orientation applied), safely.

Every metric takes a path or an H x W x 3 uint8 RGB array. Paths are read once as bytes (the
byte count is the on-disk size used by the Compression Ratio ``file`` mode) and decoded with
``cv2.imdecode``, which is what ``cv2.imread`` in the authors' scripts does: EXIF orientation
applied, grey/palette images expanded to 3 channels, alpha dropped, 16-bit samples scaled to
8 bits (value >> 8), CMYK JPEGs converted by libjpeg.

Before anything is decoded, the file must be a regular file (never a FIFO, which would block,
a folder, a device, a broken symbolic link or a link loop), its content must be JPEG, PNG,
WebP, BMP or TIFF, and the size declared in its header must stay under ``max_pixels`` and
within what the decoders take (libjpeg 65,500 pixels a side, libpng 1,000,000, libwebp 16,383,
OpenCV 2^20 a side and 2^30 pixels). Each
refusal is an ``ImageError`` with a one-line reason. PNG chunk checksums and the JPEG end marker
are checked here so that truncated and corrupt files get a clear reason instead of a decoder
message.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aesthetic4k_metrics.defaults import MAX_PIXELS as DEFAULT_MAX_PIXELS
from aesthetic4k_metrics.errors import ImageError
from aesthetic4k_metrics.file_kinds import FileKindError, open_regular
from aesthetic4k_metrics.files import display_path
from aesthetic4k_metrics.native_stderr import decoder_messages_hidden

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # OpenCV's own warnings ("[ WARN:0@...") off the terminal

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
_OPENCV_MAX_PIXELS = 1 << 30  # OpenCV's own decoder limit (OPENCV_IO_MAX_IMAGE_PIXELS)
_OPENCV_MAX_SIDE = 1 << 20    # ... and per side (OPENCV_IO_MAX_IMAGE_WIDTH / _HEIGHT)
JPEG_MAX_SIDE = 65500         # libjpeg's JPEG_MAX_DIMENSION: no JPEG, encoded or decoded, has a longer side
# the libraries under OpenCV refuse longer sides themselves (libpng: its default user limit)
_DECODER_MAX_SIDE = {"JPEG": (JPEG_MAX_SIDE, "libjpeg"), "PNG": (1_000_000, "libpng"), "WebP": (16383, "libwebp")}


@dataclass
class DecodedImage:
    bgr: np.ndarray        # H x W x 3 uint8, OpenCV channel order
    file_bytes: int        # size of the encoded file (0 for arrays)

    @property
    def rgb(self) -> np.ndarray:
        return self.bgr[:, :, ::-1]


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


# ---------------------------------------------------------------- reading the file


def _refuse(path, reason):
    return ImageError(display_path(path), reason)


def read_file(path) -> bytes:
    """The bytes of a regular file; anything else (or an unreadable file) is an ImageError.

    The kind is checked before opening and again on the open descriptor (opened non-blocking,
    :mod:`aesthetic4k_metrics.file_kinds`), so a FIFO is never waited on, even if it replaced the file in between.
    """
    try:
        with open_regular(path) as file:
            return file.read()
    except FileKindError as exc:
        raise _refuse(path, exc.reason) from None
    except OSError as exc:
        raise _refuse(path, f"cannot read ({exc.strerror or exc})") from None


# ---------------------------------------------------------------- what the header says


def _png_size(data):
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data):
    """(width, height) from the first frame header (SOFn marker)."""
    pos, end = 2, len(data)
    while pos + 9 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return None


def _webp_size(data):
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:  # lossless: 14 bits each, minus one
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24 bits each, minus one
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _bmp_size(data):
    if int.from_bytes(data[14:18], "little") == 12:  # OS/2 core header
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _tiff_size(data):
    """(ImageWidth, ImageLength) of the first image directory (classic TIFF or BigTIFF)."""
    order = "<" if data[:2] == b"II" else ">"
    if struct.unpack(order + "H", data[2:4])[0] == 43:  # BigTIFF
        ifd = struct.unpack(order + "Q", data[8:16])[0]
        count, first, entry, value_at = struct.unpack(order + "Q", data[ifd:ifd + 8])[0], ifd + 8, 20, 12
    else:
        ifd = struct.unpack(order + "I", data[4:8])[0]
        count, first, entry, value_at = struct.unpack(order + "H", data[ifd:ifd + 2])[0], ifd + 2, 12, 8
    size = {}
    for k in range(min(count, (len(data) - first) // entry)):
        at = first + k * entry
        tag, kind = struct.unpack(order + "HH", data[at:at + 4])
        if tag in (256, 257):
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            size[tag] = struct.unpack(order + fmt, data[at + value_at:at + value_at + struct.calcsize(fmt)])[0]
    return (size[256], size[257]) if len(size) == 2 else None


_FORMATS = (  # (name, test on the first bytes, header parser)
    ("JPEG", lambda d: d[:3] == b"\xff\xd8\xff", _jpeg_size),
    ("PNG", lambda d: d[:8] == b"\x89PNG\r\n\x1a\n", _png_size),
    ("WebP", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp_size),
    ("BMP", lambda d: d[:2] == b"BM", _bmp_size),
    ("TIFF", lambda d: d[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff_size),
)
_UNSUPPORTED = (  # formats OpenCV or the protocol does not read, named so the reason is clear
    ("GIF", lambda d: d[:6] in (b"GIF87a", b"GIF89a")),
    ("HEIF/AVIF", lambda d: d[4:8] == b"ftyp" and d[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"avis")),
    ("JPEG 2000", lambda d: d[:4] == b"\x00\x00\x00\x0c" and d[4:8] == b"jP  "),
    ("PDF", lambda d: d[:5] == b"%PDF-"),
    ("SVG/XML", lambda d: d.lstrip()[:5] in (b"<?xml", b"<svg ")),
)
SUPPORTED = ", ".join(name for name, _, _ in _FORMATS)


def image_format(data: bytes) -> str:
    """Name of the supported format the bytes are in; ImageError-ready reason as ValueError if none."""
    head = bytes(data[:64])
    for name, test, _ in _FORMATS:
        if test(head):
            return name
    for name, test in _UNSUPPORTED:
        if test(head):
            raise ValueError(f"{name} images are not supported (supported: {SUPPORTED})")
    raise ValueError(f"not an image: the content is none of {SUPPORTED}")


def declared_size(data: bytes, fmt: str):
    """(width, height) declared by the header of an image in format ``fmt``, or None if unreadable."""
    parse = next(parser for name, _, parser in _FORMATS if name == fmt)
    try:
        return parse(data)
    except (struct.error, IndexError):
        return None


def _png_problem(data) -> str | None:
    """Why a PNG's chunk structure is broken (truncated, or a critical chunk's checksum wrong), or None.

    Ancillary chunks (lower-case first letter) with a bad checksum are skipped by libpng, so
    they are not refused here either.
    """
    view, pos, end = memoryview(data), 8, len(data)
    while pos + 12 <= end:
        length = int.from_bytes(view[pos:pos + 4], "big")
        kind = bytes(view[pos + 4:pos + 8])
        stop = pos + 12 + length
        if stop > end:
            return f"truncated PNG (chunk {kind.decode('latin-1')!r} runs past the end of the file)"
        critical = kind[:1].isupper()
        if critical and zlib.crc32(view[pos + 4:pos + 8 + length]) != int.from_bytes(view[stop - 4:stop], "big"):
            return f"corrupt PNG (checksum mismatch in chunk {kind.decode('latin-1')!r})"
        if kind == b"IEND":
            return None
        pos = stop
    return "truncated PNG (no end chunk)"


def _truncated_jpeg(data: bytes) -> bool:
    # A complete JPEG has an end-of-image marker after its last start-of-scan marker
    # (0xFF is byte-stuffed inside entropy-coded data, so neither marker appears there).
    return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


def check_header(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Format, size and integrity checks that need no decoding; returns the declared (width, height)."""
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    try:
        fmt = image_format(data)
    except ValueError as exc:
        raise ImageError(name, str(exc)) from None
    size = declared_size(data, fmt)
    if not size or min(size) <= 0:
        raise ImageError(name, f"corrupt {fmt} header (no valid image size)")
    width, height = size
    if width * height > max_pixels:
        raise ImageError(name, f"declares {width}x{height} = {width * height:,} pixels, over the limit of "
                               f"{max_pixels:,} pixels; not decoded")
    limit, decoder = _DECODER_MAX_SIDE.get(fmt, (_OPENCV_MAX_SIDE, "OpenCV"))
    if max(width, height) > limit:
        raise ImageError(name, f"declares {width}x{height}; {decoder} decodes {fmt} images of at most "
                               f"{limit:,} pixels a side")
    if width * height > _OPENCV_MAX_PIXELS:
        raise ImageError(name, f"declares {width}x{height}, over OpenCV's decoder limit of "
                               f"{_OPENCV_MAX_PIXELS:,} pixels")
    if fmt == "JPEG" and _truncated_jpeg(data):
        raise ImageError(name, "truncated JPEG (no end-of-image marker)")
    if fmt == "PNG":
        problem = _png_problem(data)
        if problem:
            raise ImageError(name, problem)
    return width, height


# ---------------------------------------------------------------- decoding


def decode_bytes(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to an H x W x 3 uint8 BGR array, or raise ImageError."""
    import cv2

    width, height = check_header(data, name, max_pixels)
    try:
        with decoder_messages_hidden():
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        raise ImageError(name, "OpenCV cannot decode it (corrupt or unsupported variant)") from None
    except MemoryError:
        raise ImageError(name, f"out of memory while decoding {width}x{height} pixels") from None
    if bgr is None:
        raise ImageError(name, "not a readable image (corrupt, truncated or an unsupported variant)")
    return bgr


def read_image(image, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode a path (str/Path) or accept an H x W x 3 uint8 RGB array (or H x W grey)."""
    if isinstance(image, (str, bytes, os.PathLike)):
        data = read_file(image)
        return DecodedImage(decode_bytes(data, display_path(image), max_pixels), len(data))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ImageError("<array>", f"expected uint8 pixels, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError("<array>", f"expected an H x W x 3 RGB array, got shape {array.shape}")
    return DecodedImage(np.ascontiguousarray(array[:, :, ::-1]), 0)


def read_rgb(image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """H x W x 3 uint8 RGB pixels of a path or array."""
    return bgr_to_rgb(read_image(image, max_pixels).bgr)


def bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """A contiguous RGB copy (OpenCV's conversion: fast, and it releases the GIL)."""
    import cv2

    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_gray(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR->grey conversion (fixed-point rounding differs from Pillow's convert('L'))."""
    import cv2

    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
