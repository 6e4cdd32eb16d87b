"""Intervals on every number of a row, and the per-image data a4k-eval keeps beside --per-image."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.cli.eval import main
from aesthetic4k.evaluation.intervals import FeatureKeeper, PerImageData, collect, features_path, rounded
from aesthetic4k_metrics.bootstrap import resample_indices
from tests.images import natural, save

SIZE = 320
CAPTIONS = ["a red fox", "boats", "a bridge", "sunflowers", "a cat", "a map"]


def run(*args):
    return main(["--no-progress", "--workers", "1", "--size", str(SIZE), "--device", "cpu", *map(str, args)])


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def dataset(tmp_path):
    root, generated = tmp_path / "ds", tmp_path / "gen"
    (root / "images").mkdir(parents=True)
    generated.mkdir()
    lines = []
    for i, caption in enumerate(CAPTIONS):
        rgb = natural(SIZE, SIZE, seed=30 + i)
        save(rgb, root / "images" / f"p{i}.png")
        lines.append(json.dumps({"file_name": f"images/p{i}.png", "text": caption}))
        Image.fromarray(rgb).resize((SIZE // 2, SIZE // 2)).resize((SIZE, SIZE)).save(generated / f"p{i}.jpg",
                                                                                       quality=95)
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root, generated


ALL = "glcm_score,compression_ratio,fid,kid,patch_fid,patch_kid"


def test_every_metric_has_an_interval_around_its_value_and_reruns_are_identical(dataset, tmp_path, tiny_inception,
                                                                              capsys):
    root, generated = dataset
    out, per = tmp_path / "r.csv", tmp_path / "per.csv"
    args = ["--generator", "folder", "--images", generated, "--dataset", root, "--metrics", ALL, "--patch-count", "2",
            "--weights", f"inception={tiny_inception}", "--bootstrap", "200", "--bootstrap-seed", "3"]
    assert run(*args, "--out", out, "--per-image", per) == 0
    first = out.read_text()
    (row,) = read(out)
    for name in ALL.split(","):
        low, value, high = float(row[f"{name}_low"]), float(row[name]), float(row[f"{name}_high"])
        assert low <= value <= high and low < high, name
    settings = json.loads(row["settings"])
    assert settings["bootstrap"] == {"resamples": 200, "seed": 3, "level": 0.95, "method": "centred", "unit": "image"}
    assert "fid: 6 images, fewer than its 2048 feature dimensions: unstable, 95% interval" in row["status"]
    assert settings["per_image_data"] == str(features_path(per)) and features_path(per).is_file()

    # the GLCM interval is the centred 95% interval of the mean over the recorded resamples, rounded outwards
    values = np.array([float(r["glcm_score"]) for r in read(per)])
    means = values[resample_indices(6, 200, 3)].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975]) - (means.mean() - values.mean())
    assert float(row["glcm_score_low"]) == pytest.approx(low, rel=1e-3)
    assert float(row["glcm_score_high"]) == pytest.approx(high, rel=1e-3)
    assert float(row["glcm_score_low"]) <= low and float(row["glcm_score_high"]) >= high

    saved = features_path(per).read_bytes()
    assert run(*args, "--out", out, "--per-image", per) == 0
    assert out.read_text() == first                  # a re-run writes the same bytes
    assert features_path(per).read_bytes() == saved

    # a4k-check of the row against itself: the paired differences are exactly 0, for the FID family too
    from aesthetic4k.cli.check import main as check

    assert check([str(out), "--baseline", str(out)]) == 0
    assert "paired bootstrap over the 6 images" in capsys.readouterr().out

    data = PerImageData.load(features_path(per))
    assert data.stems == [f"p{i}" for i in range(6)]
    assert data.features[data.metrics["patch_fid"]["generated"]].shape == (6, 2, 2048)
    assert data.features[data.metrics["fid"]["generated"]].dtype == np.float32
    for name in ALL.split(","):                       # the saved data gives the row's value back
        assert data.statistics([name])[name].estimate() == pytest.approx(float(row[name]), rel=1e-4, abs=1e-5)


def test_bootstrap_zero_writes_no_intervals(dataset, tmp_path):
    _, generated = dataset
    out = tmp_path / "r.csv"
    assert run("--generator", "folder", "--images", generated, "--metrics", "glcm_score", "--bootstrap", "0",
               "--out", out) == 0
    (row,) = read(out)
    assert row["glcm_score"] and row["glcm_score_low"] == row["glcm_score_high"] == ""
    assert json.loads(row["settings"])["bootstrap"] == {"resamples": 0}


def test_summary_and_json_show_the_intervals(dataset, tmp_path, capsys):
    _, generated = dataset
    assert run("--generator", "folder", "--images", generated, "--metrics", "glcm_score,compression_ratio",
               "--out", tmp_path / "r.csv", "--json") == 0
    captured = capsys.readouterr()
    reply = json.loads(captured.out)["row"]
    assert reply["glcm_score_low"] <= reply["glcm_score"] <= reply["glcm_score_high"]
    assert f"[{reply['compression_ratio_low']:.4g}, {reply['compression_ratio_high']:.4g}]" in captured.err
    assert "95% centred bootstrap over images, 1000 resamples, seed 0" in captured.err


def test_bad_bootstrap_flags_are_one_line(tmp_path, capsys):
    assert main(["--generator", "folder", "--images", str(tmp_path), "--bootstrap", "-1", "--out",
                 str(tmp_path / "r.csv")]) == 2
    assert "--bootstrap must be at least 0" in capsys.readouterr().err
    assert main(["--generator", "folder", "--images", str(tmp_path), "--bootstrap", "1000000", "--out",
                 str(tmp_path / "r.csv")]) == 2
    assert "--bootstrap must be at most 100000" in capsys.readouterr().err


def test_collected_data_does_not_depend_on_the_sharding():
    """Rank parts in any split and order give the same per-image data, in the order of the gathered rows."""
    class Item:
        def __init__(self, stem, features):
            self.stem, self.features = stem, features

    rng = np.random.default_rng(0)
    stems = [f"s{i}" for i in range(5)]
    features = {stem: rng.normal(size=(1, 8)).astype(np.float32) for stem in stems}
    real = {stem: rng.normal(size=(1, 8)).astype(np.float32) for stem in stems}

    def parts(shards):
        out = []
        for shard in shards:
            keeper = FeatureKeeper({"fid": "d" * 64})
            keeper.keep([Item(s, {"d" * 64: features[s]}) for s in shard], {"d" * 64: [real[s] for s in shard]})
            out.append(keeper.part())
        return out

    class Network:
        kept = FeatureKeeper({"fid": "d" * 64})

    rows = [{"stem": s} for s in stems]
    one = collect(rows, {"fid": None}, Network, parts([stems]), {})
    two = collect(rows, {"fid": None}, Network, parts([stems[1::2], stems[0::2]]), {})
    assert one.metrics == two.metrics and one.metrics["fid"]["paired"]
    for key in one.features:
        assert np.array_equal(one.features[key], two.features[key])
    kept = one.features[one.metrics["fid"]["generated"]][:, 0]
    assert np.array_equal(kept, np.concatenate([features[s] for s in stems]))


def test_interval_cells_round_outwards_at_four_digits():
    from decimal import ROUND_CEILING, ROUND_FLOOR

    assert rounded(5.18349, ROUND_FLOOR) == 5.183 and rounded(5.18341, ROUND_CEILING) == 5.184
    assert rounded(-0.00431234, ROUND_FLOOR) == -0.004313 and rounded(-0.00431234, ROUND_CEILING) == -0.004312
    assert rounded(152.44, ROUND_CEILING) == 152.5 and rounded(0.0, ROUND_FLOOR) == 0.0


def test_report_summary_cards_show_the_intervals():
    from aesthetic4k.report.single import summary_section

    html = summary_section({"generator": "g", "glcm_score": 0.5, "glcm_score_low": 0.4, "glcm_score_high": 0.61,
                            "fid": 3.0, "fid_low": "", "fid_high": ""}, 6)
    card = html.split('data-metric="glcm_score"')[1].split('data-metric="fid"')[0]
    assert "[0.4, 0.61]" in card
    assert "interval" not in html.split('data-metric="fid"')[1]       # no interval cells: no interval shown


def test_paired_differences_of_the_fid_family_tell_a_shift_from_nothing():
    from aesthetic4k.evaluation.intervals import BootstrapSettings, paired_differences

    rng = np.random.default_rng(1)
    stems = [f"s{i:02d}" for i in range(16)]
    reference = rng.normal(size=(16, 1, 12)).astype(np.float32)
    generated = (reference + rng.normal(scale=0.3, size=reference.shape)).astype(np.float32)
    how = {"kind": "frechet", "generated": "g", "reference": "r", "paired": True}

    def data(features, order):
        return PerImageData([stems[i] for i in order], {}, {"g": features[order], "r": reference[order]}, {"fid": how})

    order = np.arange(16)
    shuffled = rng.permutation(16)                     # matched by stem, whatever the file order
    same = paired_differences(data(generated, order), data(generated, shuffled), ["fid"], BootstrapSettings(200))
    assert same["fid"].defined and abs(same["fid"].low) < 1e-9 and abs(same["fid"].high) < 1e-9
    moved = paired_differences(data(generated + 1.5, order), data(generated, shuffled), ["fid"], BootstrapSettings(200))
    assert moved["fid"].excludes(0.0) and moved["fid"].low > 0
    other = PerImageData([f"x{i}" for i in range(16)], {}, {"g": generated, "r": reference}, {"fid": how})
    assert paired_differences(data(generated, order), other, ["fid"], BootstrapSettings(200)) is None


def test_report_comparison_cards_show_each_runs_interval():
    from aesthetic4k.report.compare import summary_section

    a = {"generator": "a", "dataset": "d", "size": 64, "glcm_score": 0.5, "glcm_score_low": 0.4,
         "glcm_score_high": 0.6}
    b = {"generator": "b", "dataset": "d", "size": 64, "glcm_score": 0.7}
    html = summary_section(a, b, ("A: a", "B: b"), 3)
    assert "A [0.4, 0.6]" in html and "B [" not in html


def test_old_results_files_take_rows_with_intervals_and_keep_their_own(tmp_path):
    from aesthetic4k.results import COLUMNS, upsert_row
    from aesthetic4k.results_schema import load_results

    old = tmp_path / "r.csv"
    old.write_text("generator,dataset,size,n_images,glcm_score,status,settings,toolkit_version,date\n"
                   "old,sample,64,3,0.5,ok,{},0.0.9,2025-01-01\n")
    upsert_row(old, {"generator": "new", "dataset": "sample", "size": 64, "n_images": 3, "glcm_score": 0.6,
                     "glcm_score_low": 0.55, "glcm_score_high": 0.65, "protocol": "0123456789ab", "settings": "{}"})
    first, second = load_results(old)
    assert not first.intervals and not first.protocol and first.values == {"glcm_score": 0.5}
    assert second.intervals == {"glcm_score": (0.55, 0.65)} and second.protocol == "0123456789ab"
    assert old.read_text().splitlines()[0].split(",")[:len(COLUMNS)] == COLUMNS
