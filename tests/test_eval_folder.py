"""`a4k-eval --generator folder`: scoring a folder, its outputs and its bad-input contract."""
import csv

import numpy as np
import pytest

import aesthetic4k_metrics
from aesthetic4k.cli.eval import main
from tests.images import natural, save


def run(*args):
    return main(["--no-progress", "--workers", "1", *map(str, args)])


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        save(natural(160 + 40 * i, 200, seed=i), images / f"img{i}.jpg", quality=95)
    return images


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_scores_equal_the_metric_functions(folder, tmp_path):
    out, per = tmp_path / "r.csv", tmp_path / "per.csv"
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score,compression_ratio",
               "--cr-mode", "file", "--out", out, "--per-image", per) == 0
    files = sorted(folder.iterdir())
    (row,) = read(out)
    assert row["generator"] == f"folder:{folder}" and row["n_images"] == "3" and row["status"] == "ok"
    assert row["size"] == "mixed" and "widths 200-200, heights 160-240" in row["settings"]
    assert float(row["glcm_score"]) == pytest.approx(np.mean([aesthetic4k_metrics.glcm_score(f) for f in files]), abs=1e-12)
    raw = sum(aesthetic4k_metrics.image_input.read_rgb(f).size for f in files)
    assert float(row["compression_ratio"]) == pytest.approx(raw / sum(f.stat().st_size for f in files))
    assert row["fid"] == "" and '"cr_mode": "file"' in row["settings"] and row["toolkit_version"]
    per_rows = read(per)
    assert [r["stem"] for r in per_rows] == ["img0", "img1", "img2"]
    assert int(per_rows[2]["height"]) == 240 and int(per_rows[0]["jpeg_bytes"]) == files[0].stat().st_size


def test_two_workers_give_the_same_numbers(folder, tmp_path):
    one, two = tmp_path / "1.csv", tmp_path / "2.csv"
    base = ["--no-progress", "--generator", "folder", "--images", str(folder), "--metrics",
            "glcm_score,compression_ratio"]
    assert main([*base, "--workers", "1", "--out", str(one)]) == 0
    assert main([*base, "--workers", "2", "--out", str(two)]) == 0
    assert read(one)[0]["glcm_score"] == read(two)[0]["glcm_score"]
    assert read(one)[0]["compression_ratio"] == read(two)[0]["compression_ratio"]


def test_rerun_replaces_its_row_and_folders_keep_their_own(folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for i in range(2):
        save(natural(256, 256, seed=20 + i), other / f"o{i}.png")
    out = tmp_path / "r.csv"
    for images in (folder, other, folder):
        assert run("--generator", "folder", "--images", images, "--metrics", "glcm_score", "--out", out) == 0
    rows = read(out)
    assert [r["generator"] for r in rows] == [f"folder:{folder}", f"folder:{other}"]
    assert [r["size"] for r in rows] == ["mixed", "256"]    # the size of the images scored, not --size


def test_bad_file_stops_with_one_line_and_no_output(folder, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score", "--out", out) == 0
    before = out.read_text()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score", "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.jpg" in err[0] and "--skip-bad" in err[0]
    assert out.read_text() == before  # the earlier row is intact, no partial row


def test_skip_bad_lists_the_file_in_status(folder, tmp_path):
    save(natural(32, 300), folder / "tiny.png")          # smaller than one 64x64 patch
    (folder / "zero.png").write_bytes(b"")
    out = tmp_path / "r.csv"
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score,compression_ratio",
               "--skip-bad", "--out", out) == 0
    (row,) = read(out)
    assert row["n_images"] == "3"
    assert "skipped 2 bad file(s)" in row["status"] and "tiny.png" in row["status"] and "zero.png" in row["status"]
    assert "smaller than" in row["status"] and "empty" in row["status"]


@pytest.mark.parametrize("setup, message", [
    ("missing", "does not exist"),
    ("empty", "no image files"),
    ("not_a_folder", "not a folder"),
])
def test_folder_problems(tmp_path, capsys, setup, message):
    target = tmp_path / "x"
    if setup == "empty":
        target.mkdir()
        (target / "notes.txt").write_text("hi")
    elif setup == "not_a_folder":
        target.write_text("file")
    assert run("--generator", "folder", "--images", target, "--out", tmp_path / "r.csv") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_usage_errors(tmp_path, capsys):
    assert run("--generator", "nope", "--out", tmp_path / "r.csv") == 2
    err = capsys.readouterr().err
    assert "unknown generator" in err and "folder" in err
    assert run("--generator", "folder", "--images", tmp_path, "--metrics", "glcm,fid", "--out", "r.csv") == 2
    assert "unknown metric(s) glcm" in capsys.readouterr().err


def test_reference_metric_without_dataset_is_reported_or_refused(folder, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score,fid", "--out", out) == 2
    assert "fid: unavailable: give --dataset with reference images" in capsys.readouterr().err
    assert not out.exists()


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from aesthetic4k.cli.eval import build_parser; build_parser().format_help(); "
            "import aesthetic4k_metrics; print('torch' in sys.modules, 'diffusers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"
