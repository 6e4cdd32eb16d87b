"""Compression Ratio: a ratio of sums, over Pillow q95 encodes or file sizes."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

import metrics
from metrics.detail import CompressionRatio, GLCMScore
from tests.images import natural, save


def pillow_q95_size(rgb):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    return len(buffer.getvalue())


def test_jpeg_size_is_pillow_q95():
    rgb = natural(200, 300)
    assert metrics.jpeg_size(rgb) == pillow_q95_size(rgb)
    assert metrics.jpeg_size(rgb, quality=50) < metrics.jpeg_size(rgb)


def test_ratio_of_sums_not_mean_of_ratios():
    images = [natural(128, 128, seed=1), natural(256, 384, seed=2)]
    metric = CompressionRatio()
    metric.update(images)
    raw = sum(im.shape[0] * im.shape[1] * 3 for im in images)
    expected = raw / sum(pillow_q95_size(im) for im in images)
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-12)
    mean_of_ratios = np.mean([im.size / pillow_q95_size(im) for im in images])
    assert abs(expected - mean_of_ratios) > 1e-3


def test_file_mode_uses_bytes_on_disk(tmp_path):
    paths = [save(natural(128, 192, seed=s), tmp_path / f"{s}.jpg", quality=80) for s in range(3)]
    metric = CompressionRatio(mode="file")
    metric.update(paths)
    expected = 3 * 128 * 192 * 3 / sum(p.stat().st_size for p in paths)
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-12)
    assert metric.settings()["cr_mode"] == "file"
    with pytest.raises(ValueError, match="needs image files"):
        metric.update(natural(64, 64))


def test_settings_record_the_encoder():
    settings = CompressionRatio().settings()
    assert settings["quality"] == 95 and settings["encoder"] == "Pillow JPEG" and settings["pillow"]


def test_metric_classes_accept_tensors_and_keep_per_image_values():
    images = [natural(128, 128, seed=s) for s in range(3)]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    metric = GLCMScore()
    metric.update(batch)
    expected = [metrics.glcm_score(im) for im in images]
    assert metric.per_image().tolist() == pytest.approx(expected, abs=1e-12)
    assert float(metric.compute()) == pytest.approx(np.mean(expected), abs=1e-12)
    metric.reset()
    assert torch.isnan(metric.compute())


def test_glcm_variant_property():
    metric = GLCMScore(prop="contrast")
    metric.update([natural(128, 128)])
    assert float(metric.compute()) > 0
    with pytest.raises(ValueError):
        GLCMScore(prop="nonsense")
