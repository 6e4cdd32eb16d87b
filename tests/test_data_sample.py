"""The offline sample set: deterministic, cached atomically, and sharp enough to tell from upscales."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.data import open_dataset, validate
from aesthetic4k.data.sample import materialise_sample, sample_folder
from aesthetic4k.data.scenes import SCENES, render_scene
from aesthetic4k.errors import UserError
from tests.glcm_reference import reference_glcm_score


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
