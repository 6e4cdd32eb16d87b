"""`a4k-eval` with the model-based metrics: folder against a dataset, weights, unavailable metrics."""
import csv
import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from aesthetic4k.cli.eval import main
from tests.images import natural, save
from tests.tiny_clip import TINY_CLIP, TINY_CLIP_768, register_tiny_models, save_random_checkpoint

from tests.conftest import AESTHETIC_HEAD as HEAD  # noqa: E402
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


def test_fid_family_against_a_dataset_folder(dataset, tmp_path, tiny_inception):
    root, same, blurred = dataset
    out = tmp_path / "r.csv"
    metrics = "fid,kid,patch_fid,patch_kid"
    weights = f"inception={tiny_inception}"
    assert run("--generator", "folder", "--images", same, "--dataset", root, "--metrics", metrics,
               "--patch-count", "2", "--weights", weights, "--out", out) == 0
    assert run("--generator", "folder", "--images", blurred, "--dataset", root, "--metrics", metrics,
               "--patch-count", "2", "--size", SIZE * 2, "--weights", weights, "--out", out) == 0
    exact, blur = read(out)
    assert abs(float(exact["fid"])) < 1e-4 and abs(float(exact["patch_fid"])) < 1e-4
    assert float(blur["fid"]) > 1e-2 and float(blur["patch_fid"]) > 1e-2     # the tiny network's scale
    settings = json.loads(exact["settings"])
    assert settings["fid_protocol"] == "paper"
    assert "fid: " in exact["status"] and "feature dimensions: unstable" in exact["status"]
    assert f"--size {SIZE * 2} sets only the FID resize" in blur["status"] and blur["size"] == str(SIZE)


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


def test_missing_weights_are_reported_or_refused(dataset, tmp_path, capsys, tiny_inception, monkeypatch):
    root, same, _ = dataset
    out = tmp_path / "r.csv"
    monkeypatch.setenv("A4K_INCEPTION", str(tiny_inception))
    # default metrics: those without weights are named in the status, the others run
    assert run("--generator", "folder", "--images", same, "--dataset", root, "--out", out) == 0
    (row,) = read(out)
    assert row["glcm_score"] and row["fid"] and not row["clip_score"] and not row["aesthetics"]
    assert "clip_score: no weights" in row["status"] and "aesthetics: no weights" in row["status"]
    assert "A4K_CLIP_B16" not in row["status"]                # the how-to-fix goes to stderr, once
    assert "A4K_CLIP_B16" in capsys.readouterr().err
    # asked for by name: exit 2, one line, nothing written
    out2 = tmp_path / "r2.csv"
    assert run("--generator", "folder", "--images", same, "--dataset", root, "--metrics", "clip_score",
               "--out", out2) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("a4k-eval")]
    assert len(err) == 1 and "clip_score: unavailable" in err[0] and "A4K_CLIP_B16" in err[0]
    assert not out2.exists()


def test_folder_against_folder_statistics_and_json(dataset, tmp_path, tiny_inception, capsys):
    """--reference DIR (a plain folder), --save-reference-stats, --reference STATS.npz, --json."""
    import aesthetic4k_metrics

    root, _, blurred = dataset
    real = root / "images"
    weights = f"inception={tiny_inception}"
    out, stats = tmp_path / "r.csv", tmp_path / "real.npz"
    assert run("--generator", "folder", "--images", blurred, "--reference", real, "--metrics", "fid,kid,patch_fid",
               "--patch-count", "2", "--weights", weights, "--save-reference-stats", stats, "--out", out) == 0
    (row,) = read(out)
    assert row["dataset"] == "none" and float(row["fid"]) > 1e-2
    expected = aesthetic4k_metrics.compute_fid(blurred, real, size=SIZE, feature=str(tiny_inception))
    assert float(row["fid"]) == pytest.approx(expected, rel=1e-7)
    for name in ("fid", "kid", "patch_fid"):          # intervals with the reference folder held fixed
        assert float(row[f"{name}_low"]) <= float(row[name]) <= float(row[f"{name}_high"]), name
    capsys.readouterr()

    out2 = tmp_path / "r2.csv"
    assert run("--generator", "folder", "--images", blurred, "--reference", stats, "--metrics", "fid,kid,patch_fid",
               "--patch-count", "2", "--weights", weights, "--out", out2, "--json") == 0
    captured = capsys.readouterr()
    reply = json.loads(captured.out)
    assert reply["row"]["fid"] == pytest.approx(float(row["fid"]), rel=1e-7)
    assert reply["row"]["fid_low"] == float(row["fid_low"])      # the saved statistics hold the same features
    assert reply["row"]["settings"]["fid_protocol"] == "paper"
    assert any(note.startswith("fid: ") and "feature dimensions: unstable" in note for note in reply["notes"])
    assert "blurred" in captured.err                          # the human summary moved to stderr

    # statistics saved at another size, protocol or patch recipe are refused with the reason
    assert run("--generator", "folder", "--images", blurred, "--reference", stats, "--metrics", "fid",
               "--size", SIZE * 2, "--weights", weights, "--out", tmp_path / "r3.csv") == 2
    assert "saved with size=320 but this run uses 640 (--size)" in capsys.readouterr().err


def test_reference_features_are_cached_and_not_decoded_again(dataset, tmp_path, tiny_inception, monkeypatch):
    import aesthetic4k_metrics.pixel_input

    root, same, _ = dataset
    args = ["--generator", "folder", "--images", same, "--dataset", root, "--metrics", "fid,patch_fid",
            "--patch-count", "2", "--weights", f"inception={tiny_inception}"]
    assert run(*args, "--out", tmp_path / "a.csv") == 0
    assert len(list((tmp_path / "cache" / "features").rglob("*.npy"))) == 2 * 2 * len(CAPTIONS)  # both sides

    def no_decoding(path, max_pixels=0):
        raise AssertionError(f"{path} decoded again despite the feature cache")

    monkeypatch.setattr(aesthetic4k_metrics.pixel_input, "read_pil_rgb", no_decoding)
    assert run(*args, "--out", tmp_path / "b.csv") == 0
    assert read(tmp_path / "a.csv")[0]["fid"] == read(tmp_path / "b.csv")[0]["fid"]
