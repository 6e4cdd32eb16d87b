"""`a4k-eval` with the model-based metrics: folder against a dataset, weights, unavailable metrics."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from aesthetic4k.cli.eval import main
from tests.images import natural, save
from tests.tiny_clip import TINY_CLIP, TINY_CLIP_768, register_tiny_models, save_random_checkpoint

HEAD = Path(__file__).resolve().parents[2] / "shared" / "weights" / "sac+logos+ava1-l14-linearMSE.pth"
CAPTIONS = ["a red fox in fresh snow", "a harbour full of boats", "a stone bridge over a river",
            "a field of sunflowers at noon", "a cat asleep on a windowsill", "an old map on a desk"]
SIZE = 320


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))       # no real CLIP weights anywhere
    for var in ("A4K_CLIP_B16", "A4K_CLIP_L14", "A4K_AESTHETIC_HEAD", "A4K_ALLOW_DOWNLOAD"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def dataset(tmp_path):
    """A folder with metadata.jsonl + reference images, and generated folders: exact copies and blurred."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    same, blurred = tmp_path / "same", tmp_path / "blurred"
    same.mkdir()
    blurred.mkdir()
    lines = []
    for i, caption in enumerate(CAPTIONS):
        rgb = natural(SIZE + 32 * (i % 2), SIZE, seed=10 + i)
        save(rgb, root / "images" / f"p{i}.png")
        lines.append(json.dumps({"file_name": f"images/p{i}.png", "text": caption}))
        square = Image.fromarray(rgb).crop((0, 16 * (i % 2), SIZE, 16 * (i % 2) + SIZE))
        square.save(same / f"p{i}.png")
        square.filter(ImageFilter.GaussianBlur(4)).save(blurred / f"p{i}.jpg", quality=95)
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root, same, blurred


def run(*args):
    return main(["--no-progress", "--workers", "1", "--size", str(SIZE), "--device", "cpu", *map(str, args)])


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_fid_family_against_a_dataset_folder(dataset, tmp_path):
    root, same, blurred = dataset
    out = tmp_path / "r.csv"
    metrics = "fid,kid,patch_fid,patch_kid"
    assert run("--generator", "folder", "--images", same, "--dataset", root, "--metrics", metrics,
               "--patch-count", "2", "--out", out) == 0
    assert run("--generator", "folder", "--images", blurred, "--dataset", root, "--metrics", metrics,
               "--patch-count", "2", "--size", SIZE * 2, "--out", out) == 0  # another size: its own row
    exact, blur = read(out)
    assert abs(float(exact["fid"])) < 1e-2 and abs(float(exact["patch_fid"])) < 1e-2
    assert float(blur["fid"]) > 10 and float(blur["patch_fid"]) > 10
    settings = json.loads(exact["settings"])
    assert settings["fid_protocol"] == "paper"
    assert "dominated by the sample size" in exact["status"]


def test_clip_score_and_aesthetics_with_local_tiny_models(dataset, tmp_path):
    if not HEAD.exists():
        pytest.skip(f"aesthetic head not found at {HEAD}")
    register_tiny_models(tmp_path / "configs")
    clip = save_random_checkpoint(TINY_CLIP, tmp_path / "clip.pt", seed=1)
    clip768 = save_random_checkpoint(TINY_CLIP_768, tmp_path / "clip768.pt", seed=2)
    root, same, _ = dataset
    out, per = tmp_path / "r.csv", tmp_path / "per.csv"
    weights = f"clip-{TINY_CLIP.lower()}={clip},clip-{TINY_CLIP_768.lower()}={clip768},aesthetic-head={HEAD}"
    assert run("--generator", "folder", "--images", same, "--dataset", root, "--metrics", "clip_score,aesthetics",
               "--clip-model", TINY_CLIP, "--aesthetics-model", TINY_CLIP_768, "--weights", weights,
               "--out", out, "--per-image", per) == 0
    (row,) = read(out)
    per_rows = read(per)
    assert len(per_rows) == len(CAPTIONS)
    clip_values = [float(r["clip_score"]) for r in per_rows]
    assert all(0 <= v <= 100 for v in clip_values)
    assert float(row["clip_score"]) == pytest.approx(np.mean(clip_values))
    assert np.isfinite(float(row["aesthetics"])) and row["clip_truncated"] == "0"


def test_missing_weights_are_reported_or_refused(dataset, tmp_path, capsys):
    root, same, _ = dataset
    out = tmp_path / "r.csv"
    # default metrics: those without weights are named in the status, the others run
    assert run("--generator", "folder", "--images", same, "--dataset", root, "--out", out) == 0
    (row,) = read(out)
    assert row["glcm_score"] and row["fid"] and not row["clip_score"] and not row["aesthetics"]
    assert "clip_score: unavailable: clip-vit-b-16 weights not found" in row["status"]
    assert "aesthetics: unavailable" in row["status"]
    # asked for by name: exit 2, one line, nothing written
    out2 = tmp_path / "r2.csv"
    assert run("--generator", "folder", "--images", same, "--dataset", root, "--metrics", "clip_score",
               "--out", out2) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("a4k-eval")]
    assert len(err) == 1 and "clip_score: unavailable" in err[0] and "A4K_CLIP_B16" in err[0]
    assert not out2.exists()
