"""Hostile runs (issue 24), by class: a generated-images folder inside what the run reads, images
already there that the run did not make, a full disk, one caption rule for validate and eval, a
metric that vanished, and ``--no-progress`` meaning no bar at all."""
import errno
import json
import os
from contextlib import contextmanager

import pytest
from PIL import Image

from aesthetic4k.cli.data import main as data_main
from aesthetic4k.cli.eval import main as eval_main
from tests.images import natural, save
from tests.plugin_generators import Solid
from tests.test_hostile_inputs import one_error, within

SIZE = 128


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    Solid.made = []
    Solid.fail_after = None


def evaluate(*args):
    with within(60):
        return eval_main(["--no-progress", "--workers", "1", "--size", str(SIZE), *map(str, args)])


def make_dataset(folder, captions=("a red fox in snow", "a lighthouse at dusk"), lines=None):
    """A dataset folder: images/a.png, images/b.png and a metadata.jsonl (``lines`` replaces its entries)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for seed, stem in enumerate("ab"):
        save(natural(96, 96, seed=seed), folder / "images" / f"{stem}.png")
    if lines is None:
        lines = [json.dumps({"file_name": f"images/{stem}.png", "text": text}) for stem, text in zip("ab", captions)]
    (folder / "metadata.jsonl").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return folder


def listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


# ---------------------------------------------------------------- 4. no wrong row with exit 0


@pytest.mark.parametrize("generator", ["reference", "upscale", "tests.plugin_generators:Solid"])
@pytest.mark.parametrize("where", ["dataset", "dataset/images", "dataset/new/deeper", "top", "top/eval"])
def test_images_out_inside_the_dataset_is_refused_and_nothing_is_written(tmp_path, capsys, generator, where):
    top = tmp_path / "top"
    make_dataset(top / "eval" / f"size_{SIZE}")
    dataset = top if where.startswith("top") else make_dataset(tmp_path / "dataset")
    before = listing(tmp_path)
    out = tmp_path / "r.csv"
    assert evaluate("--generator", generator, "--dataset", dataset, "--images-out", tmp_path / where,
                    "--base-size", "64", "--metrics", "glcm_score,compression_ratio", "--out", out) == 2
    line = one_error(capsys)
    assert "--images-out" in line and "inside the dataset folder" in line
    assert listing(tmp_path) == before and Solid.made == []


@pytest.mark.parametrize("flag", ["--reference", "--images"])
def test_images_out_inside_a_folder_the_run_reads_is_refused(tmp_path, capsys, flag):
    dataset = make_dataset(tmp_path / "dataset")
    read = tmp_path / "read"
    read.mkdir()
    save(natural(96, 96), read / "x.png")
    assert evaluate("--generator", "tests.plugin_generators:Solid", "--dataset", dataset, flag, read,
                    "--images-out", read, "--metrics", "glcm_score", "--out", tmp_path / "r.csv") == 2
    assert f"inside {flag} folder" in one_error(capsys) and Solid.made == []


@pytest.mark.parametrize("stale", ["smaller jpeg", "larger jpeg", "png named jpg", "folder", "not an image"])
def test_an_image_already_there_that_this_run_did_not_make_is_neither_scored_nor_overwritten(tmp_path, capsys,
                                                                                              stale):
    dataset = make_dataset(tmp_path / "dataset")
    images = tmp_path / "gen"
    images.mkdir()
    path = images / "a.jpg"
    if stale == "folder":
        path.mkdir()
    elif stale == "not an image":
        path.write_text("hello")
    else:
        side = {"smaller jpeg": SIZE // 2, "larger jpeg": SIZE * 2}.get(stale, SIZE)
        Image.fromarray(natural(side, side)).save(path, format="PNG" if stale == "png named jpg" else "JPEG")
    before = listing(images)
    out = tmp_path / "r.csv"
    assert evaluate("--generator", "tests.plugin_generators:Solid", "--dataset", dataset, "--images-out", images,
                    "--metrics", "glcm_score,compression_ratio", "--out", out) == 2
    line = one_error(capsys)
    assert "a.jpg" in line and f"not the {SIZE}x{SIZE} JPEG this run saves" in line
    assert listing(images) == before and not out.exists()


def test_an_image_of_the_runs_own_size_is_reused(tmp_path):
    dataset = make_dataset(tmp_path / "dataset")
    images = tmp_path / "gen"
    args = ["--generator", "tests.plugin_generators:Solid", "--dataset", dataset, "--images-out", images,
            "--metrics", "glcm_score", "--out", tmp_path / "r.csv"]
    assert evaluate(*args) == 0 and len(Solid.made) == 2
    assert evaluate(*args) == 0 and len(Solid.made) == 2           # nothing generated again


# ---------------------------------------------------------------- 5. a full disk, a quota, a read-only folder


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_a_full_disk_under_images_out_is_one_line(tmp_path, capsys, monkeypatch, code):
    import aesthetic4k.atomic

    dataset = make_dataset(tmp_path / "dataset")

    @contextmanager
    def refusing(path):
        raise OSError(code, os.strerror(code))
        yield  # pragma: no cover

    monkeypatch.setattr(aesthetic4k.atomic, "atomic_path", refusing)
    out = tmp_path / "r.csv"
    assert evaluate("--generator", "tests.plugin_generators:Solid", "--dataset", dataset, "--images-out",
                    tmp_path / "gen", "--metrics", "glcm_score", "--out", out) == 2
    line = one_error(capsys)
    assert "a.jpg: cannot write" in line and os.strerror(code) in line and not out.exists()


def test_features_that_cannot_be_kept_stop_the_run_before_the_jpeg(tmp_path, capsys, monkeypatch, tiny_inception):
    import aesthetic4k.evaluation.features as features

    dataset = make_dataset(tmp_path / "dataset")

    def full(path, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(features, "_save", full)
    images = tmp_path / "gen"
    assert evaluate("--generator", "tests.plugin_generators:Solid", "--dataset", dataset, "--images-out", images,
                    "--metrics", "fid", "--weights", f"inception={tiny_inception}", "--device", "cpu",
                    "--out", tmp_path / "r.csv") == 2
    assert "cannot write (No space left on device)" in one_error(capsys)
    assert not list(images.glob("*.jpg"))                # no JPEG without its in-memory features


@pytest.mark.parametrize("code, expected", [(errno.ENOSPC, "cannot write /data/x.bin: No space left"),
                                            (errno.EDQUOT, "cannot write /data/x.bin: Disk quota"),
                                            (errno.EROFS, "cannot write /data/x.bin: Read-only"),
                                            (errno.EACCES, "permission denied: /data/x.bin")])
def test_any_write_the_storage_refuses_is_one_line_and_exit_2(capsys, code, expected):
    """The net under every command: a refused write nobody named is still one line, not an internal error."""
    from aesthetic4k.cli.common import run_main

    def body():
        raise OSError(code, os.strerror(code), "/data/x.bin")

    assert run_main("a4k-x", body) == 2
    assert expected in one_error(capsys, "a4k-x")

    def other():
        raise OSError(errno.EIO, "Input/output error")

    assert run_main("a4k-x", other) == 1                  # not a storage refusal: an internal error
    assert "internal error" in capsys.readouterr().err


# ---------------------------------------------------------------- 9. one caption rule for validate and eval

CAPTION_CASES = {
    "null": ['{"file_name": "images/a.png", "text": "fine"}', '{"file_name": "images/b.png", "text": null}'],
    "null first": ['{"file_name": "images/a.png", "text": null}', '{"file_name": "images/b.png", "text": "fine"}',
                   '{"file_name": "images/c.png", "text": "also fine"}'],
    "missing": ['{"file_name": "images/a.png", "text": "fine"}', '{"file_name": "images/b.png"}'],
    "empty": ['{"file_name": "images/a.png", "text": "fine"}', '{"file_name": "images/b.png", "text": ""}'],
    "blank": ['{"file_name": "images/a.png", "text": "fine"}', '{"file_name": "images/b.png", "text": " \\t "}'],
    "number": ['{"file_name": "images/a.png", "text": "fine"}', '{"file_name": "images/b.png", "text": 5}'],
    "list": ['{"file_name": "images/a.png", "text": "fine"}', '{"file_name": "images/b.png", "text": ["x"]}'],
    "empty file": [],
    "blank lines only": ["", "   "],
}


@pytest.mark.parametrize("case", list(CAPTION_CASES))
def test_validate_and_eval_apply_one_caption_rule_to_the_same_files(tmp_path, capsys, case):
    dataset = make_dataset(tmp_path / "dataset", lines=CAPTION_CASES[case])
    with within():
        assert data_main(["validate", str(dataset), "--no-progress"]) == 1
    out = capsys.readouterr().out
    if CAPTION_CASES[case] and case != "blank lines only":
        line = 1 if case == "null first" else 2
        problem = next(text for text in out.splitlines() if f"error: line {line}: " in text)
        reason = problem.split("error: ", 1)[1]                      # "line N: ..." in both
    else:
        reason = "no entries"
        assert "error: no entries" in out
    for generator in ("folder", "tests.plugin_generators:Solid"):
        assert evaluate("--generator", generator, "--images", dataset / "images", "--dataset", dataset,
                        "--metrics", "glcm_score", "--out", tmp_path / "r.csv") == 2
        line = one_error(capsys)
        assert reason in line and not (tmp_path / "r.csv").exists(), (generator, line)
    assert Solid.made == []


@pytest.mark.parametrize("captions", [("a red fox", "a lighthouse"), ("", None)])
def test_a_dataset_whose_captions_all_follow_the_rule_passes_both(tmp_path, capsys, captions):
    """All entries captioned, or none (a prompt-free dataset, as --captioner none builds): both accept it."""
    lines = [json.dumps({"file_name": f"images/{stem}.png", "text": text}) for stem, text in zip("ab", captions)]
    dataset = make_dataset(tmp_path / "dataset", lines=lines)
    assert data_main(["validate", str(dataset), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert ("warning: no entry has a caption" in out) == (captions[0] == "")
    assert evaluate("--generator", "folder", "--images", dataset / "images", "--dataset", dataset,
                    "--metrics", "glcm_score", "--out", tmp_path / "r.csv") == 0


# ---------------------------------------------------------------- 10. --no-progress silences every bar


class ProgressProbe(Solid):
    """A plugin that records what it was told about progress bars."""

    seen = []

    def __init__(self, argument=None, options=None):
        super().__init__(argument, options)
        ProgressProbe.seen.append(options.progress)


def test_no_progress_silences_the_run_the_report_and_the_libraries(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    dataset = make_dataset(tmp_path / "dataset")
    ProgressProbe.seen = []
    args = ["--workers", "1", "--size", str(SIZE), "--generator", "tests.test_hostile_runs:ProgressProbe",
            "--dataset", dataset, "--metrics", "glcm_score,compression_ratio", "--images-out", tmp_path / "gen"]
    with within(60):
        assert eval_main([*map(str, args), "--out", str(tmp_path / "r.csv"), "--report", str(tmp_path / "rep"),
                          "--no-progress"]) == 0
    captured = capfd.readouterr()
    assert captured.err == "" and ProgressProbe.seen == [False]
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"          # downloads and model loading too
    with within(60):                                                   # the same run with bars shows them
        assert eval_main([*map(str, args), "--out", str(tmp_path / "r2.csv"), "--report",
                          str(tmp_path / "rep2")]) == 0
    err = capfd.readouterr().err
    assert "report:" in err and "a4k-eval:" in err and ProgressProbe.seen == [False, True]


@pytest.mark.parametrize("argv", [["validate", "{dataset}", "--no-progress"], ["validate", "{dataset}", "--quiet"],
                                  ["stats", "{dataset}", "--no-plots", "--no-progress"]])
def test_no_progress_silences_a4k_data(tmp_path, capfd, argv):
    dataset = make_dataset(tmp_path / "dataset")
    with within():
        assert data_main([a.format(dataset=dataset) for a in argv]) == 0
    assert capfd.readouterr().err == ""
    with within():
        assert data_main([a.format(dataset=dataset) for a in argv if a not in ("--no-progress", "--quiet")]) == 0
    assert capfd.readouterr().err.strip()                             # the bar it silenced


def test_a_vanished_metric_fails_the_gate_end_to_end(tmp_path, capsys):
    """A run that lost a metric (its weights gone) against a baseline that has it: a4k-check exits 1."""
    from aesthetic4k.cli.check import main as check_main

    dataset = make_dataset(tmp_path / "dataset")
    base, current = tmp_path / "base.csv", tmp_path / "current.csv"
    common = ["--generator", "folder", "--images", dataset / "images", "--dataset", dataset]
    assert evaluate(*common, "--metrics", "glcm_score,compression_ratio", "--out", base) == 0
    assert evaluate(*common, "--metrics", "glcm_score", "--out", current) == 0
    capsys.readouterr()
    assert check_main([str(current), "--baseline", str(base)]) == 1
    assert "MISSING: compression_ratio" in capsys.readouterr().out
    assert check_main([str(current), "--baseline", str(base), "--allow-missing"]) == 0
