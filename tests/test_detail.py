"""One pass per image for both fine-detail metrics; torch-free classes with the torchmetrics shape."""
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aesthetic4k_metrics
from aesthetic4k.errors import ImageError
from aesthetic4k_metrics.detail import CompressionRatio, DetailMeasurement, GLCMScore, measure_files
from aesthetic4k_metrics.registry import METRICS
from tests.glcm_reference import reference_file_score, reference_glcm_score
from tests.images import natural, save
from tests.test_compression import pillow_q95_size

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def files(tmp_path):
    paths = [save(natural(128 + 64 * (s % 2), 192, seed=s), tmp_path / f"{s}.jpg", quality=95) for s in range(6)]
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    return paths, tmp_path / "bad.jpg"


def test_measure_files_one_pass_both_metrics(files):
    paths, bad = files
    measured = list(measure_files([*paths[:3], bad, *paths[3:]], jpeg_mode="file", keep_patches=True, workers=3))
    assert [m.path for m in measured] == [*paths[:3], bad, *paths[3:]]  # input order
    assert measured[3].error == "not an image: the content is none of JPEG, PNG, WebP, BMP, TIFF"
    for path, m in zip(paths, measured[:3] + measured[4:]):
        assert m.ok and m.glcm_score == pytest.approx(reference_file_score(path), abs=1e-9)
        assert m.jpeg_bytes == m.file_bytes == path.stat().st_size
        assert m.glcm_patches.shape == (m.height // 64, m.width // 64)
        assert m.glcm_score == pytest.approx(float(np.mean(m.glcm_patches)), abs=1e-15)


def test_threads_give_the_same_measurements_as_inline(files):
    paths, _ = files
    inline = list(measure_files(paths, workers=1))
    threaded = list(measure_files(paths, workers=4))
    assert [(m.glcm_score, m.jpeg_bytes, m.width, m.height) for m in inline] == \
           [(m.glcm_score, m.jpeg_bytes, m.width, m.height) for m in threaded]
    single = list(measure_files(paths[:1], workers=4))  # one image: its patch rows go to the threads
    assert single[0].glcm_score == inline[0].glcm_score


def test_memory_stays_flat_at_most_two_images_per_worker_ahead(files):
    paths, _ = files
    taken = []

    def source():
        for path in paths * 4:
            taken.append(path)
            yield path

    results = measure_files(source(), workers=2, glcm=False, jpeg_mode=None)
    next(results)
    assert len(taken) <= 2 * 2 + 1
    assert len(list(results)) == len(paths) * 4 - 1


def test_glcm_metric_class(files):
    paths, bad = files
    metric = GLCMScore(workers=2)
    assert metric.higher_is_better is METRICS["glcm_score"].higher_is_better is True
    assert repr(metric) == "GLCMScore(prop='entropy')"
    assert list(inspect.signature(GLCMScore).parameters) == ["prop", "workers", "max_pixels"]
    metric.update(paths[:2])
    metric.update(paths[2])
    assert metric.per_image() == pytest.approx([reference_file_score(p) for p in paths[:3]], abs=1e-9)
    assert isinstance(metric.compute(), float)
    assert metric.compute() == pytest.approx(np.mean(metric.per_image()), abs=1e-15)
    with pytest.raises(ImageError, match="bad.jpg: not an image"):
        metric.update([paths[3], bad])
    assert len(metric.per_image()) == 3  # a failed update adds nothing
    metric.reset()
    assert np.isnan(metric.compute())
    variant = GLCMScore("homogeneity")
    variant.update(natural(128, 128))
    assert variant.compute() == pytest.approx(reference_glcm_score(natural(128, 128), "homogeneity"), abs=1e-9)
    with pytest.raises(ValueError):
        GLCMScore(prop="nonsense")


def test_one_decode_feeds_both_metrics(files):
    paths, _ = files
    measured = list(measure_files(paths, jpeg_mode="jpeg95", workers=2))
    glcm, cr = GLCMScore(), CompressionRatio()
    glcm.add(measured)
    cr.add(measured)
    direct_glcm, direct_cr = GLCMScore(), CompressionRatio()
    direct_glcm.update(paths)
    direct_cr.update(paths)
    assert glcm.compute() == direct_glcm.compute() and cr.compute() == direct_cr.compute()
    with pytest.raises(ValueError, match="jpeg_mode='jpeg95', this metric needs 'file'"):
        CompressionRatio(mode="file").add(measured)
    with pytest.raises(ValueError, match="without the GLCM 'contrast'"):
        GLCMScore("contrast").add(measured)
    with pytest.raises(ImageError, match="x.jpg: truncated"):
        glcm.add([DetailMeasurement("x.jpg", error="truncated JPEG")])


def test_update_accepts_uint8_tensors():
    torch = pytest.importorskip("torch")
    images = [natural(128, 128, seed=s) for s in range(3)]
    metric = GLCMScore()
    metric.update(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2))
    assert metric.per_image() == pytest.approx([reference_glcm_score(im) for im in images], abs=1e-9)
    cr = CompressionRatio()
    cr.update(torch.from_numpy(images[0]).permute(2, 0, 1))
    assert cr.byte_counts()[1].tolist() == [pillow_q95_size(images[0])]
    assert cr.per_image_values() == {"jpeg_bytes": [pillow_q95_size(images[0])]}


def test_as_torchmetric_keeps_values_and_syncs_like_a_metric(files):
    pytest.importorskip("torchmetrics")
    import torch
    from torchmetrics import Metric, MetricCollection

    from aesthetic4k_metrics import as_torchmetric

    paths, _ = files
    plain_glcm, plain_cr = GLCMScore(), CompressionRatio(mode="file")
    plain_glcm.update(paths[:2])
    plain_cr.update(paths[:2])
    wrapped = MetricCollection({"glcm": as_torchmetric(plain_glcm), "cr": as_torchmetric(plain_cr)})
    assert all(isinstance(m, Metric) for m in wrapped.values())
    measured = list(measure_files(paths[2:], jpeg_mode="file"))
    for metric in wrapped.values():
        metric.add(measured)
    plain_glcm.add(measured)
    plain_cr.add(measured)
    values = wrapped.compute()
    assert values["glcm"].dtype == torch.float64 and float(values["glcm"]) == pytest.approx(plain_glcm.compute())
    assert float(values["cr"]) == pytest.approx(plain_cr.compute(), rel=1e-15)
    assert wrapped["glcm"].per_image().tolist() == pytest.approx(plain_glcm.per_image().tolist())
    wrapped["glcm"].update(paths[0])
    assert len(wrapped["glcm"].per_image()) == len(paths) + 1


HEAVY = ("torch", "torchvision", "torchmetrics", "diffusers", "transformers", "open_clip")
TORCH_FREE = f"""
import json, sys
for name in {HEAVY!r}:
    sys.modules[name] = None  # importing any of them now fails
import aesthetic4k_metrics
from aesthetic4k_metrics import GLCMScore, CompressionRatio, measure_files
paths = sys.argv[1:]
out = {{"score": aesthetic4k_metrics.glcm_score(paths[0]), "jpeg": aesthetic4k_metrics.jpeg_size(paths[0])}}
glcm, cr = GLCMScore(workers=2), CompressionRatio(mode="file")
glcm.update(paths); cr.update(paths)
measured = list(measure_files(paths, jpeg_mode="jpeg95", workers=2))
out.update(glcm=glcm.compute(), cr=cr.compute(), n=len(measured), errors=[m.error for m in measured if m.error])
out["kernels"] = aesthetic4k_metrics.glcm.kernels().source
out["heavy"] = sorted(m for m in {HEAVY!r} + ("numba", "scipy") if sys.modules.get(m) is not None)
print(json.dumps(out))
"""


def test_detail_path_never_imports_torch(files):
    paths, _ = files
    done = subprocess.run([sys.executable, "-c", TORCH_FREE, *map(str, paths)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["score"] == pytest.approx(reference_file_score(paths[0]), abs=1e-9)
    assert out["jpeg"] == aesthetic4k_metrics.jpeg_size(paths[0]) and out["n"] == len(paths) and not out["errors"]
    assert out["glcm"] == pytest.approx(np.mean([reference_file_score(p) for p in paths]), abs=1e-9)
    # with the machine code loaded from its cache, not even numba (nor SciPy, which numba pulls in) is imported
    assert out["heavy"] == ([] if out["kernels"] == "cache" else [m for m in out["heavy"] if m in ("numba", "scipy")])


DISTRIBUTED = """
import json, os, sys
import torch.distributed as dist
from aesthetic4k_metrics.detail import CompressionRatio, GLCMScore
dist.init_process_group("gloo")
paths = sys.argv[1:][dist.get_rank()::2]
glcm, cr = GLCMScore(workers=1), CompressionRatio(mode="file", workers=1)
glcm.update(paths); cr.update(paths)
print(json.dumps({"glcm": glcm.compute(), "cr": cr.compute(), "own": len(glcm.per_image())}))
dist.destroy_process_group()      # a process leaving its gloo group alive may abort at exit
"""


def test_compute_combines_all_processes_of_a_distributed_group(files):
    pytest.importorskip("torch")
    import socket

    paths, _ = files
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, "-c", DISTRIBUTED, *map(str, paths)], cwd=REPO, text=True,
                              env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for rank in range(2)]
    outs = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    alone_glcm, alone_cr = GLCMScore(), CompressionRatio(mode="file")
    alone_glcm.update(paths)
    alone_cr.update(paths)
    for result in results:
        assert result["own"] == len(paths) // 2
        assert result["glcm"] == pytest.approx(alone_glcm.compute(), abs=1e-12)
        assert result["cr"] == pytest.approx(alone_cr.compute(), rel=1e-12)


def test_bad_options_are_refused_at_the_call():
    with pytest.raises(ValueError, match="workers must be at least 1"):
        measure_files([], workers=0)
    with pytest.raises(ValueError, match="jpeg_mode must be one of"):
        measure_files([], jpeg_mode="png")
    with pytest.raises(ValueError, match="GLCM prop must be one of"):
        measure_files([], prop="nonsense")
    assert list(measure_files([], workers=3)) == []
