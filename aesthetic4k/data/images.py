"""Opening photographs safely and bringing them to a fixed size (no torch).

Everything that decodes a dataset image goes through :func:`open_rgb`, so every part of the
toolkit sees the same pixels: EXIF orientation applied, embedded colour profile converted to
sRGB, 16-bit / CMYK / palette / alpha modes normalised to 8-bit RGB, and a decompression-bomb
guard that refuses images above ``max_pixels`` before their pixels are decoded.
"""
from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aesthetic4k.atomic import atomic_path
from aesthetic4k.errors import ImageError
from aesthetic4k_metrics.compression import jpeg_side_problem
from aesthetic4k_metrics.defaults import JPEG_QUALITY, MAX_PIXELS as DEFAULT_MAX_PIXELS
from aesthetic4k_metrics.file_kinds import file_problem

EXIF_ORIENTATION = 0x0112
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class ImageHeader:
    """What the file header says, after EXIF orientation (no pixels decoded)."""

    width: int
    height: int
    format: str
    mode: str
    orientation: int           # EXIF orientation tag, 1 when absent
    icc: str                   # embedded colour profile: "none", "srgb" or "other"

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


@contextmanager
def _pixel_limit(max_pixels: int):
    # Pillow raises its own error at 2x its global limit; ours is checked first, with a clearer message.
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(int(max_pixels), 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _open(path: Path, max_pixels: int):
    """Open lazily (header only) with the bomb guard; every failure becomes an ImageError."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    problem = file_problem(path)        # a FIFO, device or folder is refused, never opened
    if problem:
        raise ImageError(path, problem)
    try:
        if path.stat().st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        with _pixel_limit(max_pixels):
            image = Image.open(path)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(path, f"more than {max_pixels:,} pixels: refused as a possible decompression bomb "
                               "(raise the limit with --max-pixels if the image is genuine)") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image Pillow can read") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(path, f"cannot read image header ({exc})") from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        image.close()
        raise ImageError(path, f"{image.width}x{image.height} = {pixels:,} pixels is above the limit of "
                               f"{max_pixels:,}: refused as a possible decompression bomb "
                               "(raise the limit with --max-pixels if the image is genuine)")
    return image


def _orientation(image) -> int:
    try:
        value = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a broken EXIF block must not make the whole image unusable
        return 1
    return value if 1 <= value <= 8 else 1


def read_header(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """Size (as displayed, i.e. after EXIF rotation), format and mode, without decoding pixels."""
    image = _open(Path(path), max_pixels)
    try:
        orientation = _orientation(image)
        width, height = image.size
        if orientation in (5, 6, 7, 8):  # 90-degree rotations swap the axes
            width, height = height, width
        return ImageHeader(width, height, image.format or "", image.mode, orientation,
                           _profile_kind(image.info.get("icc_profile")))
    finally:
        image.close()


def _profile_kind(icc) -> str:
    if not icc:
        return "none"
    try:
        from PIL import ImageCms

        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))) or ""
    except Exception:
        return "other"
    return "srgb" if "srgb" in description.lower() else "other"


def needs_normalisation(header: ImageHeader) -> bool:
    """True when the file's bytes differ from what :func:`open_rgb` returns (so it cannot be copied as is)."""
    return (header.mode != "RGB" or header.orientation != 1 or header.icc == "other"
            or header.format not in ("JPEG", "PNG"))


def _to_srgb(image):
    """Convert an image with an embedded ICC profile to sRGB; leave it as is when that fails."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    try:
        from PIL import ImageCms

        if image.mode in ("RGB", "RGBA") and _profile_kind(icc) == "srgb":
            return image
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=out_mode)
    except Exception:  # unusual or broken profiles: keep the raw values rather than failing the image
        return image


def _high_bit_depth_to_8(image):
    """16-bit and 32-bit greyscale (modes I;16*, I, F) scaled to 8 bits instead of clipped."""
    from PIL import Image

    array = np.asarray(image)
    if image.mode == "F":
        array = array.astype(np.float64)
        top = 1.0 if np.nanmax(array) <= 1.0 else 255.0
        scaled = np.clip(np.nan_to_num(array) / top * 255.0 + 0.5, 0, 255)
    else:
        array = array.astype(np.int64)
        # Values above 255 mean a genuine 16-bit range; otherwise the file only used 8 bits.
        scaled = np.clip(array, 0, 65535) / 257.0 + 0.5 if array.max(initial=0) > 255 else np.clip(array, 0, 255)
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


def normalise_mode(image):
    """Any Pillow image -> 8-bit RGB: colour profile to sRGB, alpha composited over white."""
    from PIL import Image

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _high_bit_depth_to_8(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")
    elif image.mode in ("1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        image = _to_srgb(image) if image.mode in ("L", "CMYK") else image
        if image.mode != "RGB":
            image = image.convert("RGB")
    elif image.mode in ("RGB", "RGBA"):
        image = _to_srgb(image)
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def open_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None):
    """Decode an image fully into an 8-bit RGB Pillow image with EXIF orientation applied.

    ``draft_size`` lets JPEG decoding run at a reduced scale (DCT scaling) as long as both sides
    stay >= draft_size: a fast way to check a whole file decodes and to hash it. Truncated or
    corrupt files raise :class:`ImageError`.
    """
    from PIL import Image, ImageOps

    path = Path(path)
    image = _open(path, max_pixels)
    try:
        if draft_size and image.format == "JPEG":
            image.draft(None, (draft_size, draft_size))
        with _pixel_limit(max_pixels):
            image.load()
        image = ImageOps.exif_transpose(image)
        return normalise_mode(image)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(path, f"more than {max_pixels:,} pixels: refused as a possible decompression bomb") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = str(exc) or type(exc).__name__
        what = "truncated file" if "truncated" in detail.lower() else "corrupt image data"
        raise ImageError(path, f"cannot decode: {what} ({detail})") from None
    except MemoryError:
        raise ImageError(path, "not enough memory to decode") from None


def resize_center_crop(image, size: int, resample: str = "lanczos"):
    """Resize so the shorter side equals ``size`` (high-quality filter), then center-crop size x size."""
    from PIL import Image

    filters = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR,
               "area": Image.BOX}
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), filters[resample])
    left, top = (new_w - size) // 2, (new_h - size) // 2
    if (new_w, new_h) != (size, size):
        image = image.crop((left, top, left + size, top + size))
    return image


def load_center_crop(path: str | os.PathLike, size: int, resample: str = "lanczos",
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A record's image as a size x size x 3 uint8 array (training loaders use this; no torch)."""
    image = open_rgb(path, max_pixels=max_pixels, draft_size=size)
    return np.asarray(resize_center_crop(image, size, resample))


def save_atomic(image, path: str | os.PathLike, quality: int = JPEG_QUALITY) -> None:
    """Save as PNG (lossless) or JPEG (by suffix) through a temporary file and a rename."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        raise ValueError(f"unsupported output format {suffix}")
    problem = jpeg_side_problem(*image.size) if suffix != ".png" else None
    if problem:          # the encoder's limit makes a bad image, not a failed write
        raise ImageError(path, f"{problem}; write it as PNG (--train-format / --eval-format png)")
    with atomic_path(path) as tmp:
        if suffix == ".png":
            image.save(tmp, format="PNG", compress_level=6)
        else:
            image.save(tmp, format="JPEG", quality=quality)
