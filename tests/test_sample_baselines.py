"""What ships for the sample set matches a fresh computation: its 2048 px pixels, the `--reference sample`
statistics (make sample-stats) and the README's CI-loop baseline rows (make sample-baselines)."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.cli.check import main as a4k_check
from aesthetic4k.cli.eval import main as a4k_eval
from aesthetic4k.data.sample import materialise_sample
from aesthetic4k.data.scenes import SCENES
from aesthetic4k_metrics.reference_stats import ReferenceStats
from tests.sample_pins import PIXEL_SHA256

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_STATS = ROOT / "aesthetic4k" / "data" / "sample_stats" / "sample-2048-paper.npz"
BASELINES = ROOT / "leaderboards" / "results" / "sample-baselines.csv"
METRIC_CELLS = ("n_images", "glcm_score", "compression_ratio", "fid", "clip_score", "aesthetics", "clip_truncated",
                "kid", "kid_std", "patch_fid", "patch_kid", "status")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One fresh cache for the module: the sample set rendered at 2048 once, the compiled GLCM kernels shared."""
    from aesthetic4k_metrics.cache import cache_root

    kernels = cache_root() / "kernels"
    kernels.mkdir(parents=True, exist_ok=True)
    folder = tmp_path_factory.mktemp("cache")
    (folder / "kernels").symlink_to(kernels)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("A4K_CACHE", str(folder))
        materialise_sample(2048, progress=False)
        yield folder


def read(path):
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_pixels_at_2048_are_pinned(cache):
    from aesthetic4k.data.sample import sample_folder

    for scene, expected in zip(SCENES, PIXEL_SHA256[2048]):
        with Image.open(sample_folder(2048) / "images" / f"{scene.stem}.png") as image:
            assert hashlib.sha256(np.asarray(image).tobytes()).hexdigest() == expected, scene.stem


def test_shipped_reference_statistics_match_a_fresh_computation(cache, tmp_path):
    fresh = tmp_path / "fresh.npz"
    assert a4k_eval(["--no-progress", "--generator", "reference", "--dataset", "sample", "--size", "2048",
                     "--metrics", "fid,kid,patch_fid,patch_kid", "--save-reference-stats", str(fresh),
                     "--out", str(tmp_path / "r.csv")]) == 0
    shipped, new = ReferenceStats.load(SHIPPED_STATS), ReferenceStats.load(fresh)
    assert {k: v for k, v in shipped.meta.items() if k != "path"} == {k: v for k, v in new.meta.items() if k != "path"}
    assert set(shipped.features) == set(new.features) == {"full", "patches"}
    for kind in ("full", "patches"):
        # the Inception runs in float32 on the CPU: exact here, a last-bit tolerance for another CPU's kernels
        np.testing.assert_allclose(new.features[kind], shipped.features[kind], rtol=1e-5, atol=1e-5, err_msg=kind)


@pytest.mark.parametrize("generator", ["upscale", "reference"])
def test_sample_baselines_match_a_fresh_run(cache, tmp_path, generator):
    """The README's CI loop: a fresh row has the baseline's numbers, and a4k-check passes against it."""
    out = tmp_path / "r.csv"
    assert a4k_eval(["--no-progress", "--generator", generator, "--dataset", "sample", "--out", str(out)]) == 0
    (row,) = read(out)
    (baseline,) = [r for r in read(BASELINES) if r["generator"] == generator]
    assert (row["dataset"], row["size"]) == (baseline["dataset"], baseline["size"]) == ("sample", "2048")
    # the fine-detail metrics are exact; FID goes through float32 Inception features and a matrix square root
    for cell in METRIC_CELLS:
        if cell == "fid":
            assert float(row[cell]) == pytest.approx(float(baseline[cell]), rel=1e-5, abs=1e-4)
        else:
            assert row[cell] == baseline[cell], cell
    assert a4k_check([str(out), "--baseline", str(BASELINES)]) == 0
