"""`a4k-eval` with generated images: saving, resuming, plugins, baselines on the sample set."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aesthetic4k.cli.eval import main
from tests.plugin_generators import Solid

SIZE = 256


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    from aesthetic4k_metrics.cache import cache_root

    kernels = cache_root() / "kernels"      # the run's compiled GLCM kernels: subprocesses load, not compile, them
    kernels.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "kernels").symlink_to(kernels)
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    Solid.made = []
    Solid.fail_after = None


def run(*args):
    return main(["--no-progress", "--workers", "1", "--size", str(SIZE), *map(str, args)])


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_generated_images_are_saved_as_q95_jpeg_and_resumed(tmp_path):
    images, out = tmp_path / "gen", tmp_path / "r.csv"
    Solid.fail_after = 5  # interrupted while making the 6th image
    args = ["--generator", "tests.plugin_generators:Solid", "--dataset", "sample", "--images-out", images,
            "--metrics", "glcm_score,compression_ratio", "--out", out]
    assert run(*args) == 130
    assert not out.exists()
    assert sorted(p.name for p in images.iterdir()) == sorted(p.name for p in images.glob("*.jpg"))
    assert len(list(images.glob("*.jpg"))) == 5
    Solid.fail_after = None
    Solid.made = []
    assert run(*args) == 0
    assert len(Solid.made) == 3  # only the missing images were generated
    (row,) = read(out)
    assert row["generator"] == "solid" and row["n_images"] == "8" and row["dataset"] == "sample"
    assert "smoke test" in row["status"]
    from PIL import Image

    with Image.open(next(images.glob("*.jpg"))) as im:
        assert im.format == "JPEG" and im.size == (SIZE, SIZE)


def test_entry_point_style_object_and_default_image_folder(tmp_path):
    out = tmp_path / "r.csv"
    assert run("--generator", "tests.plugin_generators:ready_made", "--dataset", "sample", "--limit", "2",
               "--metrics", "glcm_score", "--out", out) == 0
    assert len(list((tmp_path / "cache" / "generated").rglob("*.jpg"))) == 2


@pytest.mark.parametrize("name, message", [
    ("TooFew", "returned 0 images for 1 prompts"),
    ("WrongSize", f"returned a {SIZE // 2}x{SIZE} image, expected {SIZE}x{SIZE}"),
    ("Broken", "model exploded"),
])
def test_misbehaving_plugins(tmp_path, capsys, name, message):
    out = tmp_path / "r.csv"
    status = run("--generator", f"tests.plugin_generators:{name}", "--dataset", "sample", "--limit", "1",
                 "--metrics", "glcm_score", "--out", out)
    assert status == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("a4k-eval")]
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_reference_beats_upscale_on_detail_metrics(tmp_path):
    out = tmp_path / "r.csv"
    for generator in ("reference", "upscale"):
        assert run("--generator", generator, "--base-size", "64", "--dataset", "sample",
                   "--metrics", "glcm_score,compression_ratio", "--out", out) == 0
    reference, upscale = read(out)
    assert float(reference["glcm_score"]) > float(upscale["glcm_score"])
    assert float(reference["compression_ratio"]) < float(upscale["compression_ratio"])


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_ranks(common, out):
    """``python <common> --out out`` as ranks 0 and 1 of a torchrun-style gloo group."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, *map(str, common), "--out", str(out)],
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors


def test_two_processes_equal_one(tmp_path):
    """torchrun-style sharding over 2 gloo ranks gives the same row as one process."""
    images = tmp_path / "gen"
    common = ["-m", "aesthetic4k.cli.eval", "--no-progress", "--workers", "1", "--size", str(SIZE),
              "--generator", "tests.plugin_generators:Solid", "--dataset", "sample", "--images-out", str(images),
              "--metrics", "glcm_score,compression_ratio"]
    two_ranks(common, tmp_path / "two.csv")
    assert run(*common[2:], "--out", tmp_path / "one.csv") == 0
    (two,), (one,) = read(tmp_path / "two.csv"), read(tmp_path / "one.csv")
    assert two["n_images"] == one["n_images"] == "8"
    assert float(two["glcm_score"]) == pytest.approx(float(one["glcm_score"]), abs=1e-12)
    assert float(two["compression_ratio"]) == pytest.approx(float(one["compression_ratio"]), abs=1e-12)


def test_two_processes_with_one_image_on_a_rank_give_the_network_metrics(tmp_path, tiny_inception):
    """3 images over 2 ranks: the rank with 1 image must not skip the FID/KID collectives (found by
    benchmarks/gpu_check: the row's FID was empty, or the ranks' collectives went out of step)."""
    common = ["-m", "aesthetic4k.cli.eval", "--no-progress", "--workers", "1", "--size", str(SIZE), "--limit", "3",
              "--generator", "tests.plugin_generators:Solid", "--dataset", "sample", "--metrics", "fid,kid",
              "--weights", f"inception={tiny_inception}"]
    two_ranks(common + ["--images-out", tmp_path / "two"], tmp_path / "two.csv")
    assert run(*common[2:], "--images-out", tmp_path / "one", "--out", tmp_path / "one.csv") == 0
    (two,), (one,) = read(tmp_path / "two.csv"), read(tmp_path / "one.csv")
    assert two["n_images"] == one["n_images"] == "3"
    # each process sums its own features first: the sums' last bits differ, and FID's square roots of
    # the near-zero eigenvalues of a 3-image covariance lift that to ~1e-9 (a4k-check ignores < 1e-5)
    for column in ("fid", "kid", "kid_std"):
        assert one[column] and float(two[column]) == pytest.approx(float(one[column]), rel=1e-6, abs=1e-12), column
    # the intervals come from rank 0's bootstrap on the gathered per-image features, in stem order
    for column in ("fid_low", "fid_high", "kid_low", "kid_high"):
        assert one[column] and two[column] == one[column], column


def test_tiny_diffusers_pipeline_end_to_end(tmp_path):
    from tests.tiny_pipelines import save_tiny_flux

    folder = save_tiny_flux(tmp_path / "tiny-flux")
    out, images = tmp_path / "r.csv", tmp_path / "gen"
    assert run("--generator", f"diffusers:{folder}", "--dataset", "sample", "--limit", "2", "--steps", "2",
               "--images-out", images, "--metrics", "glcm_score,compression_ratio", "--out", out) == 0
    (row,) = read(out)
    assert row["n_images"] == "2" and row["generator"].startswith("diffusers")
    assert '"steps": 2' in row["settings"]
    assert len(list(images.glob("*.jpg"))) == 2


def test_fresh_rerun_and_resumed_runs_give_identical_rows(tmp_path, tiny_inception, tiny_clips, aesthetic_head):
    """The network metrics see the in-memory images; a re-run and a resumed run reuse their saved features."""
    (clip_name, clip), (clip768_name, clip768) = tiny_clips["clip_score"], tiny_clips["aesthetics"]
    weights = (f"inception={tiny_inception},clip-{clip_name.lower()}={clip},"
               f"clip-{clip768_name.lower()}={clip768},aesthetic-head={aesthetic_head}")

    def evaluate(images, out, fail_after=None):
        Solid.fail_after = fail_after
        Solid.made = []
        return run("--generator", "tests.plugin_generators:Solid", "--dataset", "sample", "--images-out", images,
                   "--size", "320", "--metrics", "glcm_score,compression_ratio,fid,kid,patch_fid,clip_score,aesthetics",
                   "--patch-count", "2", "--metric-batch-size", "3", "--clip-model", clip_name,
                   "--aesthetics-model", clip768_name, "--weights", weights, "--out", out)

    assert evaluate(tmp_path / "a", tmp_path / "fresh.csv") == 0
    assert evaluate(tmp_path / "a", tmp_path / "rerun.csv") == 0
    assert Solid.made == []                                   # every image was found saved
    assert evaluate(tmp_path / "b", tmp_path / "resumed.csv", fail_after=4) == 130
    assert evaluate(tmp_path / "b", tmp_path / "resumed.csv") == 0
    assert len(Solid.made) == 4                               # only the missing images were generated
    fresh, rerun, resumed = (read(tmp_path / name)[0] for name in ("fresh.csv", "rerun.csv", "resumed.csv"))
    for column in ("fid", "kid", "patch_fid", "clip_score", "aesthetics", "glcm_score", "compression_ratio"):
        assert fresh[column] != "", column
    assert rerun == fresh
    # the image folder is part of the settings only through the generator's defaults: equal too
    assert resumed == fresh
    assert '"network_metric_pixels": {"file": 0, "memory": 8}' in fresh["settings"]

    # --from-files: the saved JPEGs instead of the in-memory pixels; another number, just as stable
    assert run("--generator", "tests.plugin_generators:Solid", "--dataset", "sample", "--images-out", tmp_path / "a",
               "--size", "320", "--metrics", "fid", "--weights", weights, "--from-files", "--out", tmp_path / "files.csv") == 0
    (from_files,) = read(tmp_path / "files.csv")
    assert from_files["fid"] != fresh["fid"] and '"file": 8' in from_files["settings"]
