"""The offline sample set: pinned pixels, numpy-only rendering, cached atomically, sharp enough to tell from upscales."""
from __future__ import annotations

import ast
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.data import open_dataset, validate
from aesthetic4k.data.sample import materialise_sample, sample_folder
from aesthetic4k.data.scenes import SCENES, render_scene
from aesthetic4k.errors import UserError
from tests.glcm_reference import reference_glcm_score
from tests.sample_pins import PIXEL_SHA256

RENDERER = [Path(__file__).resolve().parents[1] / "aesthetic4k" / "data" / name
            for name in ("raster.py", "font.py", "scenes.py")]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def jpeg_bytes(rgb: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=95)
    return len(buffer.getvalue())


def test_sample_dataset_contents(cache):
    dataset = open_dataset("sample", size=256)
    assert (dataset.name, dataset.size, dataset.is_sample, len(dataset)) == ("sample", 256, True, 8)
    assert "NOT the Aesthetic-4K benchmark" in dataset.description
    records = list(dataset.records())
    assert len({r.stem for r in records}) == 8
    assert all(len(r.prompt.split()) >= 20 for r in records)
    for record in records:
        with Image.open(record.image_path) as image:
            assert image.size == (256, 256) and image.format == "PNG"
    assert validate(dataset) == []
    info = json.loads((sample_folder(256) / "sample.json").read_text())
    assert info["smoke_test"] is True and info["name"] == "sample"
    assert open_dataset("sample", size=256, split="train").is_sample


def pixel_hash(rgb: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb, np.uint8).tobytes()).hexdigest()


@pytest.mark.parametrize("size", [256, 512])
def test_pixels_are_pinned(size):
    """Every scene's pixels, exactly: a numpy (or any) release that moved one would fail here (2048: test_sample_baselines)."""
    assert [pixel_hash(render_scene(index, size)) for index in range(len(SCENES))] == PIXEL_SHA256[size]


def test_files_decode_to_the_pinned_pixels(cache):
    """The cached files are lossless: decoded, they are the rendered pixels, whatever the codec release."""
    folder = materialise_sample(256, progress=False)
    for scene, expected in zip(SCENES, PIXEL_SHA256[256]):
        with Image.open(folder / "images" / f"{scene.stem}.png") as image:
            assert image.mode == "RGB" and pixel_hash(np.asarray(image)) == expected, scene.stem


# numpy functions whose results a numpy or libm release may change in the last bit, or that draw from
# numpy's random streams, or float reductions whose summation order is numpy's: the renderer has its own
# (raster.sin, cos, exp_neg, log, Stream, upsample, quantised_mean_std); its integer sums are exact anyway
UNSTABLE_NUMPY = {"random", "sin", "cos", "tan", "arctan2", "exp", "expm1", "log", "log2", "log1p", "power",
                  "hypot", "interp", "linspace", "mean", "std", "var", "average", "dot", "matmul", "einsum",
                  "convolve", "gradient", "sum", "nansum", "tensordot", "fft", "linalg"}


@pytest.mark.parametrize("path", RENDERER, ids=lambda p: p.name)
def test_the_renderer_uses_numpy_arithmetic_only(path):
    """No cv2, PIL (ImageDraw or otherwise), scipy, skimage or torch: only numpy, math and the renderer's own modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"__future__", "math", "dataclasses", "typing", "numpy",
                        "aesthetic4k.data.raster", "aesthetic4k.data.font"}, imported
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "np"}
    assert used & UNSTABLE_NUMPY == set()


def test_own_functions_match_libm():
    from aesthetic4k.data import raster

    x = np.linspace(-60.0, 60.0, 20001)
    assert np.abs(raster.sin(x) - np.sin(x)).max() < 1e-10 and np.abs(raster.cos(x) - np.cos(x)).max() < 1e-10
    z = np.linspace(0.0, 20.0, 2001)
    assert np.abs(raster.exp_neg(z) / np.exp(-z) - 1).max() < 1e-5
    positive = np.exp(np.linspace(-30.0, 30.0, 2001))
    assert np.abs(raster.log(positive) - np.log(positive)).max() < 1e-12
    values = np.random.default_rng(0).normal(3.0, 2.0, 10000)
    mean, std = raster.quantised_mean_std(values)
    assert mean == pytest.approx(values.mean(), abs=1e-4) and std == pytest.approx(values.std(), abs=1e-4)


def test_random_stream_is_counter_based():
    from aesthetic4k.data.raster import Stream

    first, again = Stream(0, 1, 2), Stream(0, 1, 2)
    a = first.random(1000)
    assert np.array_equal(a, again.random(1000)) and not np.array_equal(a, first.random(1000))
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean() - 0.5) < 0.03
    normal = Stream(3).normal(shape=100000)
    assert abs(normal.mean()) < 0.02 and abs(normal.std() - 1) < 0.02
    assert set(Stream(4).integers(2, 5, 1000).tolist()) == {2, 3, 4}



def test_hash_is_splitmix64():
    """The mixer against a pure-Python splitmix64 finaliser (Python ints, masked to 64 bits)."""
    from aesthetic4k.data.raster import _mix

    def reference(x):
        mask = (1 << 64) - 1
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    values = [0, 1, 2, 12345678901234567, (1 << 64) - 1]
    assert _mix(np.array(values, np.uint64)).tolist() == [reference(v) for v in values]


def test_rendering_is_deterministic_and_sized():
    for index in (0, 3):
        first = render_scene(index, 256)
        assert first.shape == (256, 256, 3) and first.dtype == np.uint8
        assert np.array_equal(first, render_scene(index, 256))
    assert not np.array_equal(render_scene(1, 256), render_scene(1, 256, seed=1))
    assert render_scene(2, 300).shape == (300, 300, 3)


def test_sharp_images_beat_their_upscaled_copies():
    sharp_scores, soft_scores = [], []
    for index in range(len(SCENES)):
        sharp = render_scene(index, 256)
        soft = np.asarray(Image.fromarray(sharp).resize((64, 64), Image.BICUBIC).resize((256, 256), Image.BICUBIC))
        sharp_scores.append(reference_glcm_score(sharp))
        soft_scores.append(reference_glcm_score(soft))
        assert jpeg_bytes(sharp) > 1.5 * jpeg_bytes(soft), SCENES[index].stem
    assert sum(s > u for s, u in zip(sharp_scores, soft_scores)) == len(SCENES)
    assert np.mean(sharp_scores) > np.mean(soft_scores) + 0.2


def test_cached_after_first_use_and_rerendered_when_damaged(cache, monkeypatch):
    folder = materialise_sample(256, progress=False)
    image = folder / "images" / f"{SCENES[0].stem}.png"
    stamp = image.stat().st_mtime_ns
    monkeypatch.setattr("aesthetic4k.data.scenes.render_scene", lambda *a, **k: pytest.fail("re-rendered"))
    assert materialise_sample(256, progress=False) == folder and image.stat().st_mtime_ns == stamp
    monkeypatch.undo()
    monkeypatch.setenv("A4K_CACHE", str(cache))
    image.unlink()
    assert materialise_sample(256, progress=False) == folder and image.is_file()


def test_interrupted_first_use_leaves_nothing(cache, monkeypatch):
    calls = []

    def failing(index, size, seed=0):
        calls.append(index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return np.zeros((size, size, 3), np.uint8)

    monkeypatch.setattr("aesthetic4k.data.scenes.render_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        materialise_sample(256, progress=False)
    parent = sample_folder(256).parent
    assert not sample_folder(256).exists()
    assert list(parent.iterdir()) == []  # no half-written staging folder either


def test_sample_size_floor():
    with pytest.raises(UserError, match="at least 256"):
        open_dataset("sample", size=128)
