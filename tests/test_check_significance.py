"""a4k-check with per-image data: a paired bootstrap tells noise from change; other protocols are refused."""
import csv
import json

import pytest
from PIL import Image, ImageFilter

from aesthetic4k.check import NOISE, REGRESSION
from aesthetic4k.cli.check import main as check
from aesthetic4k.cli.eval import main as evaluate
from tests.images import natural

METRICS = "glcm_score,compression_ratio"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """12 photograph-like images; the same half mildly blurred and half mildly sharpened; all blurred."""
    root = tmp_path_factory.mktemp("runs")
    folders = {name: root / name for name in ("base", "mixed", "blurred")}
    for folder in folders.values():
        folder.mkdir()
    for i in range(12):
        image = Image.fromarray(natural(256, 256, seed=100 + i))
        blurred = image.filter(ImageFilter.GaussianBlur(0.6))
        sharpened = image.filter(ImageFilter.UnsharpMask(radius=1, percent=60, threshold=0))
        image.save(folders["base"] / f"p{i:02d}.png")
        (blurred if i % 2 else sharpened).save(folders["mixed"] / f"p{i:02d}.png")
        blurred.save(folders["blurred"] / f"p{i:02d}.png")
    for name, folder in folders.items():
        for per_image in (True, False):
            out = root / f"{name}{'' if per_image else '-plain'}.csv"
            extra = ["--per-image", str(root / f"{name}-per.csv")] if per_image else []
            assert evaluate(["--no-progress", "--workers", "1", "--generator", "folder", "--images", str(folder),
                             "--metrics", METRICS, "--out", str(out), *extra]) == 0
    return root


def gate(runs, name, *extra, baseline="base"):
    return check([str(runs / f"{name}.csv"), "--baseline", str(runs / f"{baseline}.csv"),
                  "--baseline-row", f"folder:{runs / baseline.replace('-plain', '')}/none/256", *extra])


def test_half_blurred_half_sharpened_is_within_noise(runs, capsys, tmp_path):
    summary = tmp_path / "summary.md"
    assert gate(runs, "mixed", "--markdown", str(summary)) == 0
    out = capsys.readouterr().out
    assert NOISE in out and REGRESSION not in out
    assert "paired bootstrap over the 12 images both runs cover (95% centred interval, 1000 resamples, seed 0)" in out
    line = next(line for line in out.splitlines() if line.startswith("compression_ratio"))
    low, high = (float(x) for x in line.split("[")[1].split("]")[0].split(","))
    assert low <= 0 <= high                      # the interval of the difference is shown, and includes 0
    markdown = summary.read_text()
    assert "| Interval of the difference |" in markdown and NOISE in markdown


def test_all_blurred_is_a_regression(runs, capsys):
    assert gate(runs, "blurred") == 1
    out = capsys.readouterr().out
    for metric in METRICS.split(","):
        line = next(line for line in out.splitlines() if line.startswith(metric))
        low, high = (float(x) for x in line.split("[")[1].split("]")[0].split(","))
        assert line.endswith(REGRESSION) and (high < 0 or low > 0), line


def test_a_tolerance_still_applies_to_a_significant_change(runs, capsys):
    assert gate(runs, "blurred", "--tolerance", "glcm_score=50%,compression_ratio=50%") == 0
    assert "worse, within tolerance" in capsys.readouterr().out


def test_without_per_image_data_it_falls_back_to_the_plain_comparison(runs, capsys):
    assert gate(runs, "mixed-plain", baseline="base-plain") == 1      # the false alarm, said to be plain
    out = capsys.readouterr().out
    assert sum("falls back to the plain comparison" in line for line in out.splitlines()) == 1
    assert REGRESSION in out


def test_per_image_data_is_found_beside_a_moved_results_file(runs, tmp_path, capsys):
    """A relative per_image_data path is looked up from the results file's folder too."""
    moved = tmp_path / "mixed.csv"
    rows = list(csv.DictReader(open(runs / "mixed.csv", newline="")))
    settings = json.loads(rows[0]["settings"])
    settings["per_image_data"] = "mixed-per.features.npz"
    rows[0]["settings"] = json.dumps(settings)
    (tmp_path / "mixed-per.features.npz").write_bytes((runs / "mixed-per.features.npz").read_bytes())
    with open(moved, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert check([str(moved), "--baseline", str(runs / "base.csv"), "--baseline-row",
                  f"folder:{runs / 'base'}/none/256"]) == 0
    assert NOISE in capsys.readouterr().out


def test_rows_of_another_protocol_are_refused_naming_the_difference(runs, tmp_path, capsys):
    other = tmp_path / "file-mode.csv"
    assert evaluate(["--no-progress", "--workers", "1", "--generator", "folder", "--images", str(runs / "mixed"),
                     "--metrics", METRICS, "--cr-mode", "file", "--out", str(other)]) == 0
    capsys.readouterr()
    assert check([str(other), "--baseline", str(runs / "base.csv"), "--baseline-row",
                  f"folder:{runs / 'base'}/none/256"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "measured differently" in err[0] and "cr_mode file vs jpeg95" in err[0]


def test_an_old_baseline_without_fingerprint_is_compared_with_a_note(runs, tmp_path, capsys):
    rows = list(csv.DictReader(open(runs / "base-plain.csv", newline="")))
    old = tmp_path / "old.csv"
    columns = [c for c in rows[0] if not c.endswith(("_low", "_high")) and c != "protocol"]
    with open(old, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            settings = json.loads(row["settings"])
            settings.pop("protocol")
            writer.writerow({**row, "settings": json.dumps(settings)})
    assert check([str(runs / "blurred.csv"), "--baseline", str(old), "--baseline-row",
                  f"folder:{runs / 'base'}/none/256"]) == 1
    out = capsys.readouterr().out
    assert "the baseline carries no protocol fingerprint" in out and "falls back to the plain comparison" in out


def test_leaderboard_ranks_one_protocol_and_shows_the_others_apart(runs, tmp_path):
    from aesthetic4k.leaderboard import collect, render_markdown
    from aesthetic4k.leaderboard_page import render_html

    results = tmp_path / "results"
    results.mkdir()
    for name in ("base", "blurred"):
        (results / f"{name}.csv").write_text((runs / f"{name}-plain.csv").read_text())
    assert evaluate(["--no-progress", "--workers", "1", "--generator", "folder", "--images", str(runs / "mixed"),
                     "--metrics", METRICS, "--cr-mode", "file", "--out", str(results / "file-mode.csv")]) == 0
    collection = collect(results, None)
    markdown = render_markdown(collection)
    ranked, apart = markdown.split("under another protocol (not ranked with the table above)")
    assert f"folder:{runs / 'base'}" in ranked and f"folder:{runs / 'blurred'}" in ranked
    assert f"folder:{runs / 'mixed'}" not in ranked and f"folder:{runs / 'mixed'}" in apart
    assert "cr_mode file vs jpeg95" in apart
    base = next(r for r in collection.measured if r.generator.endswith("base"))
    low, high = base.intervals["glcm_score"]
    assert low <= base.values["glcm_score"] <= high and "the 95% interval of a seeded bootstrap" in ranked
    html = render_html(collection)
    assert "Measured under another protocol" in html and 'class="interval"' in html


def test_leaderboard_takes_rows_without_fingerprint_or_intervals(tmp_path):
    """Rows written before intervals and fingerprints existed are ranked as before, with no interval shown."""
    import csv
    from pathlib import Path

    from aesthetic4k.leaderboard import collect, render_markdown

    shipped = Path(__file__).resolve().parents[1] / "leaderboards" / "results" / "sample-baselines.csv"
    with open(shipped, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    old_columns = [c for c in rows[0] if c != "protocol" and not c.endswith(("_low", "_high"))]
    (tmp_path / "results").mkdir()
    with open(tmp_path / "results" / "old.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    collection = collect(tmp_path / "results", None)
    assert len(collection.measured) == 2 and not collection.problems
    assert all(not r.intervals and not r.protocol for r in collection.measured)
    markdown = render_markdown(collection)
    assert "another protocol" not in markdown and "seeded bootstrap" not in markdown


def test_comparable_rows_are_those_agreeing_on_every_part_both_have():
    from types import SimpleNamespace

    from aesthetic4k.protocol import differences, fingerprint, split_comparable

    def row(**parts):
        return SimpleNamespace(settings={"protocol": parts})

    plain = row(n_images="195", fid_protocol="paper")
    patches = row(n_images="195", fid_protocol="paper", patch_count=8)        # ran patch-FID too: comparable
    patches_4 = row(n_images="195", fid_protocol="paper", patch_count=4)
    clean = row(n_images="195", fid_protocol="clean")
    old = SimpleNamespace(settings={})
    assert fingerprint(plain.settings["protocol"]) != fingerprint(patches.settings["protocol"])
    assert differences(patches.settings["protocol"], patches_4.settings["protocol"]) == ["patch_count 8 vs 4"]
    ranked, apart = split_comparable([clean, plain, patches, old])
    assert ranked == [plain, patches, old] and apart == [(clean, "fid_protocol clean vs paper")]
    ranked, apart = split_comparable([patches_4, plain, patches])       # plain reaches all three
    assert ranked == [patches_4, plain] and apart == [(patches, "patch_count 8 vs 4")]


def test_per_image_data_moved_with_its_results_file_is_found_by_name(runs, tmp_path, capsys):
    for name in ("mixed", "base"):
        (tmp_path / f"{name}.csv").write_text((runs / f"{name}.csv").read_text())
        (tmp_path / f"{name}-per.features.npz").write_bytes((runs / f"{name}-per.features.npz").read_bytes())
    moved = {name: runs / f"{name}-per.features.npz" for name in ("mixed", "base")}
    for path in moved.values():
        path.rename(path.with_suffix(".away"))
    try:
        assert check([str(tmp_path / "mixed.csv"), "--baseline", str(tmp_path / "base.csv"), "--baseline-row",
                      f"folder:{runs / 'base'}/none/256"]) == 0
        assert "paired bootstrap over the 12 images" in capsys.readouterr().out
    finally:
        for path in moved.values():
            path.with_suffix(".away").rename(path)
