"""Image opening (orientation, modes, bomb guard, corrupt files), resizing and the perceptual hash."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.data.images import (ImageHeader, load_center_crop, needs_normalisation, open_rgb, read_header,
                                     resize_center_crop)
from aesthetic4k.data.near_duplicates import near_duplicate_groups
from aesthetic4k.data.phash import hamming, phash
from aesthetic4k.data.scenes import render_scene
from aesthetic4k.errors import ImageError


def gradient_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth colour ramps plus noise, distinct per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], -1)
    blobs = sum(np.sin(x / width * rng.uniform(2, 9) + rng.uniform(0, 6)) * np.cos(y / height * rng.uniform(2, 9))
                for _ in range(3))[..., None] * 40
    return np.clip(base + blobs + rng.normal(0, 6, (height, width, 1)), 0, 255).astype(np.uint8)


def test_exif_orientation_is_applied(tmp_path):
    array = gradient_image(60, 40)
    array[:10, :10] = (255, 0, 0)  # a red corner to follow
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: displayed rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    image.save(path, quality=95, exif=exif)
    header = read_header(path)
    assert (header.width, header.height, header.orientation) == (40, 60, 6)
    assert needs_normalisation(header)
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape == (60, 40, 3)
    # clockwise rotation moves the top-left corner to the top-right
    assert rgb[2:8, -8:-2, 0].mean() > 200 and rgb[2:8, -8:-2, 1].mean() < 80


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(open_rgb(path)).astype(int)
    expected = np.clip(values / 257.0 + 0.5, 0, 255).astype(int)
    assert rgb.shape == (64, 64, 3)
    assert np.abs(rgb[..., 0] - expected).max() <= 1
    assert rgb.max() >= 250 and (rgb < 250).mean() > 0.9  # not saturated to white


def test_cmyk_palette_and_alpha_become_rgb(tmp_path):
    rgb = gradient_image(50, 50)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    rgba = np.dstack([rgb, np.zeros((50, 50), np.uint8)])  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    for name in ("cmyk.jpg", "palette.png"):
        out = open_rgb(tmp_path / name)
        assert out.mode == "RGB" and out.size == (50, 50)
        assert np.abs(np.asarray(out).astype(int) - rgb).mean() < 20
    assert np.asarray(open_rgb(tmp_path / "alpha.png")).min() == 255  # composited over white


def test_bad_files_raise_image_error(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image at all")
    buffer = io.BytesIO()
    Image.fromarray(gradient_image(300, 300)).save(buffer, "JPEG", quality=95)
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    expected = {"zero.jpg": "empty file", "text.jpg": "not an image", "cut.jpg": "truncated",
                "loop.jpg": "symbolic link loop", "absent.jpg": "not found"}
    for name, words in expected.items():
        with pytest.raises(ImageError) as info:
            open_rgb(tmp_path / name)
        assert words in str(info.value) and name in str(info.value)


def test_decompression_bomb_guard(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(path)
    with pytest.raises(ImageError, match="decompression bomb"):
        open_rgb(path, max_pixels=100_000)
    with pytest.raises(ImageError, match="--max-pixels"):
        read_header(path, max_pixels=119_999)
    assert open_rgb(path, max_pixels=120_000).size == (400, 300)


def test_resize_center_crop_and_training_loader(tmp_path):
    image = Image.fromarray(gradient_image(300, 200))
    out = resize_center_crop(image, 100)
    assert out.size == (100, 100)
    # shorter side 200 -> 100: the width 300 -> 150, the crop keeps columns 25..125 of the resized image
    reference = np.asarray(image.resize((150, 100), Image.LANCZOS))[:, 25:125]
    assert np.array_equal(np.asarray(out), reference)
    path = tmp_path / "photo.png"
    image.save(path)
    array = load_center_crop(path, 64)
    assert array.shape == (64, 64, 3) and array.dtype == np.uint8


def test_phash_separates_copies_from_other_pictures():
    originals = [render_scene(i, 256) for i in range(6)]
    hashes = [phash(a) for a in originals]
    for array, value in zip(originals, hashes):
        smaller = np.asarray(Image.fromarray(array).resize((180, 180), Image.BICUBIC))
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "JPEG", quality=70)
        recompressed = np.asarray(Image.open(buffer))
        brighter = np.clip(array.astype(int) + 12, 0, 255).astype(np.uint8)
        for copy in (smaller, recompressed, brighter):
            assert hamming(value, phash(copy)) <= 4
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    assert min(distances) > 8
    # groups: the first two hashes linked, everything else alone
    assert near_duplicate_groups([hashes[0], hashes[0] ^ 0b101, hashes[1]], threshold=8) == [[0, 1]]


def test_header_for_plain_rgb_jpeg_allows_copy(tmp_path):
    path = tmp_path / "plain.jpg"
    Image.fromarray(gradient_image(40, 30)).save(path, quality=90)
    header = read_header(path)
    assert header == ImageHeader(40, 30, "JPEG", "RGB", 1, "none")
    assert not needs_normalisation(header)
