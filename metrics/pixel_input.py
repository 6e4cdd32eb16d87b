"""What the network-based metrics (FID, KID, CLIPScore, Aesthetics) accept as images, in one place.

Accepted, alone or in a list/tuple: a file path; a PIL image; an H x W x 3 (or H x W grey) numpy
array; a (3, H, W) or (N, 3, H, W) torch tensor. Pixels are uint8 in [0, 255], or, with
``normalize=True``, floats in [0, 1] that become ``(x * 255)`` truncated to uint8, as torchmetrics'
FID does. Every image comes out as an H x W x 3 uint8 RGB numpy array.

Files are read as the upstream evaluation script reads images for these metrics: Pillow,
``.convert("RGB")``, no EXIF orientation applied (``generate_and_eval_fid.py``; the fine-detail
metrics use OpenCV, which does rotate). The declared pixel count is checked from the header before
anything is decoded.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aesthetic4k_metrics.defaults import MAX_PIXELS as DEFAULT_MAX_PIXELS
from aesthetic4k_metrics.errors import ImageError, InputTypeError, UserError


def read_pil_rgb(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """H x W x 3 uint8 pixels of a file decoded by Pillow (no EXIF rotation), after a pixel-count check."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "is a folder, not an image" if path.is_dir() else "not a readable file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(path, f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
                                           f"limit of {max_pixels / 1e6:.0f} (max_pixels)")
                return pil_rgb_array(image)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(path, f"cannot decode ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                         ) from None


def pil_rgb_array(image) -> np.ndarray:
    """A PIL image's pixels as a writable H x W x 3 uint8 array, as ``np.array(image.convert("RGB"))``.

    ``convert`` of an image already in RGB only copies it (a 4915 x 6431 reference: 0.3 s), so
    that image is read directly.
    """
    return np.array(image if image.mode == "RGB" else image.convert("RGB"))


def _is_tensor(value) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "dtype")


def _uint8(array: np.ndarray, normalize: bool) -> np.ndarray:
    if array.dtype == np.uint8:
        if normalize:
            raise InputTypeError("normalize=True expects float images in [0, 1], got uint8")
        return array
    if not normalize or not np.issubdtype(array.dtype, np.floating):
        raise InputTypeError(f"expected uint8 images in [0, 255] (or float images in [0, 1] with normalize=True), "
                        f"got {array.dtype}")
    return (array * 255).astype(np.uint8)


def to_rgb(image, normalize: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One accepted image (see the module docstring) -> an H x W x 3 uint8 RGB array (files decoded here)."""
    if isinstance(image, (str, os.PathLike)):
        return read_pil_rgb(image, max_pixels)
    if type(image).__module__.startswith("PIL"):
        return pil_rgb_array(image)
    if _is_tensor(image):
        if image.ndim != 3 or image.shape[0] != 3:
            raise UserError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
        array = image.detach().cpu().permute(1, 2, 0).numpy()
    else:
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] != 3:
            raise UserError(f"expected an H x W x 3 image array, got shape {array.shape}")
    return np.ascontiguousarray(_uint8(array, normalize))


def image_list(images) -> list:
    """Any accepted input -> a list of single images, not decoded yet (a batch tensor or array is split)."""
    if (_is_tensor(images) or isinstance(images, np.ndarray)) and images.ndim == 4:
        return list(images)
    if isinstance(images, (str, os.PathLike, np.ndarray)) or _is_tensor(images) or \
            type(images).__module__.startswith("PIL"):
        return [images]
    return list(images)


def prepared_batches(images, prepare, keys=None, normalize: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                     workers: int | None = None, batch_size: int = 16):
    """Yield lists of ``prepare(rgb, key)`` of the images, ``batch_size`` at a time, in input order.

    Images are decoded and prepared in ``workers`` threads, up to one batch ahead: while the caller
    runs its network on one batch, the next is being prepared. Only one decoded image per thread
    is alive at a time (a 4096 x 4096 image is 48 MB) and at most two batches of prepared inputs,
    whatever the number of images.
    """
    from aesthetic4k_metrics.parallel import ordered_stream

    images = image_list(images)
    keys = [None] * len(images) if keys is None else list(keys)
    if len(keys) != len(images):
        raise ValueError(f"{len(keys)} keys for {len(images)} images")
    batch = []
    for prepared in ordered_stream(lambda pair: prepare(to_rgb(pair[0], normalize, max_pixels), pair[1]),
                                   zip(images, keys), workers, ahead=batch_size):
        batch.append(prepared)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_all(images, prepare, embed, keys=None, normalize: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
              workers: int | None = None, batch_size: int = 16) -> list:
    """``embed(batch)`` of every batch of ``prepared_batches``, concatenated: one result per image."""
    return [out for batch in prepared_batches(images, prepare, keys, normalize, max_pixels, workers, batch_size)
            for out in embed(batch)]
