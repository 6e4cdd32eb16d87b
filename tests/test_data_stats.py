"""`a4k-data stats`: size and caption statistics per split, histograms, CLI."""
from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.cli.data import main
from aesthetic4k.data.stats import find_splits, format_table, split_stats
from aesthetic4k.errors import UserError
from tests.test_data_loading import write_split


def make_dataset(tmp_path):
    root = tmp_path / "ds"
    train_sizes = [(40, 30), (50, 70), (64, 64), (90, 45), (33, 81)]
    write_split(root / "train", [(f"images/t{i}.png", "word " * (i + 1)) for i in range(len(train_sizes))],
                images=False)
    for i, (w, h) in enumerate(train_sizes):
        (root / "train" / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (i, i, i)).save(root / "train" / "images" / f"t{i}.png")
    write_split(root / "eval" / "size_2048", [("e.png", "a b c"), ("gone.png", "")], images=False)
    Image.new("RGB", (20, 10)).save(root / "eval" / "size_2048" / "e.png")
    return root, train_sizes


def test_split_statistics_match_direct_computation(tmp_path):
    root, sizes = make_dataset(tmp_path)
    splits = find_splits(root)
    assert [label for label, _ in splits] == ["train", "eval@2048"]
    train = split_stats(*splits[0]).summary()
    widths = [w for w, _ in sizes]
    heights = [h for _, h in sizes]
    assert train["images"] == 5
    assert train["width"]["median"] == np.median(widths) and train["width"]["mean"] == pytest.approx(np.mean(widths))
    assert train["height"]["median"] == np.median(heights)
    assert train["height"]["mean"] == pytest.approx(np.mean(heights))
    assert train["caption_words"]["mean"] == pytest.approx(statistics.fmean(range(1, 6)))
    assert train["caption_words"]["max"] == 5
    evaluation = split_stats(*splits[1]).summary()
    assert evaluation["missing_images"] == 1 and evaluation["empty_captions"] == 1
    table = format_table([train, evaluation])
    assert "train" in table and f"{np.median(heights):.0f}" in table and "1 missing" in table


def test_exif_rotation_counts_in_sizes(tmp_path):
    folder = tmp_path / "rot"
    write_split(folder, [("r.jpg", "rotated")], images=False)
    image = Image.new("RGB", (60, 20))
    exif = image.getexif()
    exif[0x0112] = 8
    image.save(folder / "r.jpg", exif=exif)
    summary = split_stats(*find_splits(folder)[0]).summary()
    assert (summary["width"]["median"], summary["height"]["median"]) == (20, 60)


def test_cli_stats_writes_histograms_and_json(tmp_path, capsys):
    root, _ = make_dataset(tmp_path)
    plots = tmp_path / "plots"
    out_json = tmp_path / "stats.json"
    assert main(["stats", str(root), "--plots", str(plots), "--json", str(out_json), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "median H" in printed
    for name in ("train_sizes.png", "eval_2048_sizes.png"):
        with Image.open(plots / name) as image:
            assert image.format == "PNG" and image.size[0] > 500
    data = json.loads(out_json.read_text())
    assert [d["split"] for d in data] == ["train", "eval@2048"]
    assert main(["stats", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    with pytest.raises(UserError, match="no metadata.jsonl"):
        find_splits(tmp_path)
