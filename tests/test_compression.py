"""Compression Ratio: a ratio of sums, over Pillow q95 encodes or file sizes."""
import io

import numpy as np
import pytest
from PIL import Image

import aesthetic4k_metrics
from aesthetic4k_metrics.detail import CompressionRatio, measure_files
from tests.images import natural, save


def pillow_q95_size(rgb):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    return len(buffer.getvalue())


def test_jpeg_size_is_pillow_q95(tmp_path):
    rgb = natural(200, 300)
    assert aesthetic4k_metrics.jpeg_size(rgb) == pillow_q95_size(rgb)
    assert aesthetic4k_metrics.jpeg_size(save(rgb, tmp_path / "a.png")) == pillow_q95_size(rgb)
    assert aesthetic4k_metrics.jpeg_size(rgb, quality=50) < aesthetic4k_metrics.jpeg_size(rgb)


def test_ratio_of_sums_not_mean_of_ratios():
    images = [natural(128, 128, seed=1), natural(256, 384, seed=2)]
    metric = CompressionRatio()
    metric.update(images)
    raw = sum(im.shape[0] * im.shape[1] * 3 for im in images)
    sizes = [pillow_q95_size(im) for im in images]
    expected = raw / sum(sizes)
    assert metric.compute() == pytest.approx(expected, rel=1e-12)
    assert metric.byte_counts()[1].tolist() == sizes  # byte-exact
    mean_of_ratios = np.mean([im.size / pillow_q95_size(im) for im in images])
    assert abs(expected - mean_of_ratios) > 1e-3
    assert metric.per_image() == pytest.approx([im.size / s for im, s in zip(images, sizes)])


def test_file_mode_uses_bytes_on_disk(tmp_path):
    paths = [save(natural(128, 192, seed=s), tmp_path / f"{s}.jpg", quality=80) for s in range(3)]
    metric = CompressionRatio(mode="file")
    metric.update(paths)
    expected = 3 * 128 * 192 * 3 / sum(p.stat().st_size for p in paths)
    assert metric.compute() == pytest.approx(expected, rel=1e-12)
    assert metric.provenance()["cr_mode"] == "file"
    with pytest.raises(ValueError, match="needs image files"):
        metric.update(natural(64, 64))
    with pytest.raises(ValueError, match="needs image files"):
        list(measure_files([natural(64, 64)], jpeg_mode="file"))


def test_decoded_image_is_reencoded_not_the_file(tmp_path):
    rgb = natural(128, 160, seed=4)
    path = save(rgb, tmp_path / "a.png")
    (m,) = measure_files([path], glcm=False, jpeg_mode="jpeg95")
    assert m.jpeg_bytes == pillow_q95_size(rgb) and m.file_bytes == path.stat().st_size


def test_settings_record_the_encoder():
    settings = CompressionRatio().provenance()
    assert settings["quality"] == 95 and settings["encoder"] == "Pillow JPEG" and settings["pillow"]
    assert CompressionRatio(quality=80).provenance()["quality"] == 80


def test_empty_metric_is_nan_and_reset_clears():
    metric = CompressionRatio()
    assert np.isnan(metric.compute())
    metric.update([natural(64, 64)])
    assert metric.compute() > 0
    metric.reset()
    assert np.isnan(metric.compute()) and len(metric.per_image()) == 0
