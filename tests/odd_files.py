"""A corpus of odd image files, made at test time: every case and the outcome it must have.

``make_odd_files(folder)`` writes the files and returns one ``OddFile`` per entry: its name in
the folder, whether scoring it with the fine-detail metrics must work ("ok") or be refused
("bad"), and a substring of the one-line reason for "bad" (for "ok", what is odd about it).
Cases the file system or the platform cannot make (FIFOs, names that are not UTF-8) are left
out. Used by the decoding tests and by the a4k-eval end-to-end tests.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from tests.images import natural

HUGE_SIDE = 20000  # a declared 20000 x 20000 (400 megapixels): over the default limit of 250


class OddFile(NamedTuple):
    name: str        # entry in the folder (undecodable bytes as surrogates: os.fsdecode)
    expected: str    # "ok" or "bad"
    reason: str      # "bad": substring of the reason; "ok": what is odd about it


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encoded(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def huge_png(side: int = HUGE_SIDE) -> bytes:
    """A valid 1-bit grey PNG of side x side black pixels (a few hundred kB)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def _after_ihdr(png: bytes, chunk: bytes) -> bytes:
    return png[:33] + chunk + png[33:]  # signature (8) + IHDR chunk (25)


def _idat_span(png: bytes) -> tuple[int, int]:
    start = png.index(b"IDAT") + 4
    return start, start + struct.unpack(">I", png[start - 8:start - 4])[0]


def make_odd_files(folder) -> list[OddFile]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rgb = natural(128, 160, seed=11)
    png = encoded(rgb, "PNG")
    jpeg = encoded(rgb, "JPEG", quality=95)
    cases: list[OddFile] = []

    def write(name, data: bytes, expected, reason):
        (folder / name).write_bytes(data)
        cases.append(OddFile(name, expected, reason))

    # ---- odd but valid: decoded the way cv2.imread does
    write("grey.png", encoded(rgb[:, :, 0], "PNG"), "ok", "grey, expanded to 3 channels")
    write("palette.png", encoded(np.asarray(Image.fromarray(rgb).convert("P")), "PNG"), "ok", "palette")
    write("alpha.png", encoded(np.dstack([rgb, np.full(rgb.shape[:2], 40, np.uint8)]), "PNG"), "ok",
          "alpha dropped")
    deep = io.BytesIO()
    Image.fromarray((rgb[:, :, 1].astype(np.uint16) * 257)).save(deep, format="PNG")
    write("deep16.png", deep.getvalue(), "ok", "16-bit grey")
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, format="JPEG", quality=95)
    write("cmyk.jpg", cmyk.getvalue(), "ok", "CMYK JPEG")
    rotated = io.BytesIO()
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(rotated, format="JPEG", quality=95, exif=exif)
    write("rotated.jpg", rotated.getvalue(), "ok", "EXIF orientation 6")
    write("progressive.jpg", encoded(rgb, "JPEG", quality=90, progressive=True), "ok", "progressive JPEG")
    write("image.webp", encoded(rgb, "WEBP", quality=90), "ok", "WebP")
    write("lossless.webp", encoded(rgb, "WEBP", lossless=True), "ok", "lossless WebP")
    write("image.bmp", encoded(rgb, "BMP"), "ok", "BMP")
    write("image.tiff", encoded(rgb, "TIFF"), "ok", "TIFF")
    write("jpeg_named.png", jpeg, "ok", "JPEG content under a .png name")
    write("UPPER.JPG", jpeg, "ok", "upper-case suffix")
    write("space and é.jpg", jpeg, "ok", "spaces and non-ASCII in the name")
    write("bad_text_crc.png", _after_ihdr(png, png_chunk(b"tEXt", b"Comment\x00hello", crc=1234)), "ok",
          "ancillary chunk with a bad checksum (libpng warns, decodes)")
    write("short_iccp.png", _after_ihdr(png, png_chunk(b"iCCP", b"p\x00\x00" + zlib.compress(b"x" * 40))), "ok",
          "broken colour profile (libpng warns, decodes)")
    scan = jpeg.rindex(b"\xff\xda") + 200
    write("corrupt_scan.jpg", jpeg[:scan] + bytes(b ^ 0x33 for b in jpeg[scan:scan + 64]).replace(b"\xff", b"\x00")
          + jpeg[scan + 64:], "ok", "damaged scan data (libjpeg warns and decodes, as cv2.imread does)")
    write("l" * 251 + ".jpg", jpeg, "ok", "name of 255 bytes")
    try:
        raw_name = b"non_utf8_\xff\xfe.jpg"
        with open(os.path.join(os.fsencode(folder), raw_name), "wb") as file:
            file.write(jpeg)
        cases.append(OddFile(os.fsdecode(raw_name), "ok", "file name bytes that are not UTF-8"))
    except (OSError, UnicodeError):
        pass  # the file system refuses such names

    # ---- bad: refused with a one-line reason, nothing decoded that should not be
    write("empty.jpg", b"", "bad", "empty file")
    write("truncated.jpg", jpeg[: len(jpeg) // 2], "bad", "truncated JPEG")
    write("truncated.png", png[: len(png) // 2], "bad", "truncated PNG")
    start, stop = _idat_span(png)
    flipped = png[:start + 10] + bytes(b ^ 0x5A for b in png[start + 10:start + 40]) + png[start + 40:]
    write("corrupt.png", flipped, "bad", "corrupt PNG (checksum mismatch in chunk 'IDAT')")
    garbled = zlib.compress(b"\x00" * 50)  # valid chunk checksum, image data that cannot be inflated to the image
    write("corrupt_data.png", png[:start - 8] + png_chunk(b"IDAT", garbled[:-3]) + png[stop + 4:], "bad",
          "not a readable image")
    write("huge.png", huge_png(), "bad", f"{HUGE_SIDE}x{HUGE_SIDE} = 400,000,000 pixels, over the limit")
    write("zero_size.png", png[:16] + struct.pack(">II", 0, 0) + png[24:], "bad", "corrupt PNG header")
    write("no_frame.jpg", b"\xff\xd8\xff\xd9", "bad", "corrupt JPEG header")
    write("not_image.jpg", b"this is a text file, not a JPEG\n", "bad", "not an image")
    write("anim.gif", encoded(rgb, "GIF"), "bad", "GIF images are not supported")
    write("tiny.png", encoded(rgb[:32, :32], "PNG"), "bad", "smaller than one 64x64 patch")
    (folder / "folder.jpg").mkdir()
    cases.append(OddFile("folder.jpg", "bad", "is a folder"))
    os.symlink(folder / "does-not-exist.jpg", folder / "broken_link.jpg")
    cases.append(OddFile("broken_link.jpg", "bad", "broken symbolic link"))
    os.symlink(folder / "loop.jpg", folder / "loop.jpg")
    cases.append(OddFile("loop.jpg", "bad", "symbolic link loop"))
    os.symlink(folder / "grey.png", folder / "link_to_grey.png")
    cases.append(OddFile("link_to_grey.png", "ok", "symbolic link to a good image"))
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "fifo.png")
        cases.append(OddFile("fifo.png", "bad", "FIFO"))
    return cases
