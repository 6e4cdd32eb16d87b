"""Hostile inputs (issue 24), by class: encoder and decoder limits, pathological JSON, special files
where files are read or written, outputs through symbolic links, BOMs, and links out of a folder.

Every case must end in one line on stderr and a defined exit status (or a named bad file), never
a traceback, a hang or a write through to the wrong place. Hangs are caught by an alarm.
"""
import json
import os
import signal
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from aesthetic4k.cli.check import main as check_main
from aesthetic4k.cli.data import main as data_main
from aesthetic4k.cli.eval import main as eval_main
from aesthetic4k.cli.report import main as report_main
from aesthetic4k.errors import ImageError, UserError
from aesthetic4k.results import COLUMNS
from tests.csv_files import write_csv
from tests.images import natural, save
from tests.odd_files import png_chunk


@contextmanager
def within(seconds=20):
    """Fail instead of hanging: a FIFO or /dev/zero that is opened would block or never end."""
    def ring(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: something was opened that should not be")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_error(capsys, prog="a4k-eval") -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


def evaluate(*args):
    with within():
        return eval_main(["--no-progress", "--workers", "1", *map(str, args)])


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        save(natural(96, 96, seed=i), folder / f"good{i}.png")
    return folder


def results_file(path, generator="mygen", values=None, settings=None):
    row = {"generator": generator, "dataset": "sample", "size": "2048", "n_images": "2", "glcm_score": "0.75",
           "settings": json.dumps(settings or {"seed": 0}), **(values or {})}
    return write_csv(path, [row], COLUMNS)


# ---------------------------------------------------------------- 1. encoder and decoder limits


def png_header_only(width, height) -> bytes:
    """A PNG whose header declares width x height (its pixel data is never reached)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def jpeg_header_only(width, height) -> bytes:
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + frame + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 16 + b"\xff\xd9"


def webp_header_only(width, height) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


@pytest.mark.parametrize("name, data, reason", [
    ("wide-1000001.png", png_header_only(1_000_001, 64), "libpng decodes PNG images of at most 1,000,000"),
    ("tall-1000001.png", png_header_only(64, 1_000_001), "libpng decodes PNG images of at most 1,000,000"),
    ("wide-65535.jpg", jpeg_header_only(65535, 64), "libjpeg decodes JPEG images of at most 65,500"),
    ("wide-20000.webp", webp_header_only(20000, 64), "libwebp decodes WebP images of at most 16,383"),
])
def test_a_side_over_a_decoders_limit_is_a_named_bad_file(tmp_path, images, capsys, name, data, reason):
    (images / name).write_bytes(data)
    out = tmp_path / "r.csv"
    assert evaluate("--generator", "folder", "--images", images, "--metrics", "glcm_score", "--out", out) == 2
    line = one_error(capsys)
    assert name in line and reason in line and "--skip-bad" in line and not out.exists()
    assert evaluate("--generator", "folder", "--images", images, "--metrics", "glcm_score", "--skip-bad",
                    "--out", out) == 0
    assert name in out.read_text() and "skipped 1 bad file(s)" in out.read_text()


@pytest.mark.parametrize("shape", [(64, 65501), (65501, 64), (70000, 70)])
def test_a_side_over_the_jpeg_encoders_limit_fails_compression_ratio_as_a_bad_file(tmp_path, images, capsys, shape):
    """The default Compression Ratio re-encodes at q95: Pillow's JPEG encoder stops at 65,500 a side."""
    height, width = shape
    save(np.full((height, width, 3), 90, np.uint8), images / "long.png")
    out = tmp_path / "r.csv"
    assert evaluate("--generator", "folder", "--images", images, "--out", out,
                    "--metrics", "glcm_score,compression_ratio") == 2
    line = one_error(capsys)
    assert "long.png" in line and "more than a JPEG can hold" in line
    assert evaluate("--generator", "folder", "--images", images, "--out", out, "--skip-bad",
                    "--metrics", "glcm_score,compression_ratio") == 0
    assert "long.png" in out.read_text()
    # the file sizes need no encoder: the image is scored
    assert evaluate("--generator", "folder", "--images", images, "--out", tmp_path / "f.csv", "--cr-mode", "file",
                    "--metrics", "glcm_score,compression_ratio") == 0


def test_the_jpeg_encoders_limit_in_the_library_and_the_dataset_writer(tmp_path):
    import aesthetic4k_metrics as a4km
    from PIL import Image

    from aesthetic4k.data.images import save_atomic

    with pytest.raises(ImageError, match="65,500"):
        a4km.jpeg_size(np.zeros((2, 65501, 3), np.uint8))
    save(np.zeros((2, 65501, 3), np.uint8), tmp_path / "wide.png")
    with pytest.raises(ImageError, match=r"wide.png: 65501x2 has a side over 65,500"):
        a4km.jpeg_size(tmp_path / "wide.png")
    image = Image.new("RGB", (65501, 2))
    with pytest.raises(ImageError, match="write it as PNG"):       # a4k-data build skips such an image
        save_atomic(image, tmp_path / "out.jpg")
    assert not (tmp_path / "out.jpg").exists()
    save_atomic(image, tmp_path / "out.png")                        # PNG has no such limit
    assert Image.open(tmp_path / "out.png").size == (65501, 2)


def test_a_generated_size_no_jpeg_can_hold_is_refused_before_any_work(tmp_path, capsys):
    with within():
        assert eval_main(["--generator", "upscale", "--size", "65501", "--out", str(tmp_path / "r.csv")]) == 2
    assert "--size must be at most 65500" in one_error(capsys)
    with within():
        assert eval_main(["--generator", "upscale", "--guidance", "nan", "--out", str(tmp_path / "r.csv")]) == 2
    assert "expected a finite number" in one_error(capsys)


# ---------------------------------------------------------------- 2. pathological JSON

DEEP = "[" * 100_000 + "]" * 100_000
PATHOLOGICAL = {
    "deep arrays": DEEP,
    "deep objects": '{"a":' * 5000 + "1" + "}" * 5000,
    "deep but parseable": "[" * 200 + "]" * 200,
    "NaN": '{"a": NaN}',
    "Infinity": '{"a": -Infinity}',
    "huge float": '{"a": 1e999}',
    "huge integer": '{"a": ' + "9" * 5000 + "}",
    "long integer": '{"a": ' + "9" * 50 + "}",
}


@pytest.mark.parametrize("case", list(PATHOLOGICAL))
def test_the_json_parser_refuses_what_python_would_let_through(case):
    from aesthetic4k_metrics.json_text import JSONProblem, parse

    with within():
        with pytest.raises(JSONProblem):
            parse(PATHOLOGICAL[case])
    assert parse('{"a": [1, 2.5, "x", null, {"b": true}]}') == {"a": [1, 2.5, "x", None, {"b": True}]}


def test_pathological_metadata_lines_are_problems_of_their_line_in_validate_and_eval(tmp_path, capsys):
    folder = tmp_path / "ds"
    (folder / "images").mkdir(parents=True)
    lines = [json.dumps({"file_name": "images/a.png", "text": "a red fox"})]
    lines += [text.replace('{"a"', '{"file_name": "images/x.png", "a"', 1) if text.startswith('{"a"') else text
              for text in PATHOLOGICAL.values()]
    lines += ['{"file_name": 5, "text": "x"}', '{"file_name": "images/b.png", "text": {"nested": 1}}', "[1, 2]"]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    save(natural(96, 96), folder / "images" / "a.png")
    with within():
        assert data_main(["validate", str(folder), "--no-progress"]) == 1
    out = capsys.readouterr().out
    for line in range(2, len(lines) + 1):
        assert f"error: line {line}: " in out, (line, out)
    assert "nested too deeply" in out and "NaN is not a JSON value" in out and "out of range" in out
    assert evaluate("--generator", "folder", "--images", folder / "images", "--dataset", folder,
                    "--metrics", "glcm_score", "--out", tmp_path / "r.csv") == 2
    assert "line 2: nested too deeply" in one_error(capsys)


@pytest.mark.parametrize("settings", ["[" * 10_000 + "]" * 10_000, '{"seed": NaN}', '{"seed": 1e999}', "[1, 2]", "not json"])
def test_a_pathological_settings_cell_is_one_line_in_a4k_check(tmp_path, capsys, settings):
    good = results_file(tmp_path / "good.csv")
    bad = write_csv(tmp_path / "bad.csv", [{"generator": "mygen", "dataset": "sample", "size": "2048",
                                            "glcm_score": "0.7", "settings": settings}], COLUMNS)
    with within():
        assert check_main([str(bad), "--baseline", str(good)]) == 2
    assert "bad.csv:2: settings" in one_error(capsys, "a4k-check")


def report_folder(tmp_path, document):
    folder = tmp_path / "rep"
    folder.mkdir(exist_ok=True)
    (folder / "run.json").write_text(document if isinstance(document, str) else json.dumps(document))
    return folder


@pytest.mark.parametrize("document", [
    DEEP, '{"format": "aesthetic4k run report", "version": NaN}',
    {"format": "aesthetic4k run report", "version": 1, "per_image": 5},
    {"format": "aesthetic4k run report", "version": 1, "row": [1, 2]},
    {"format": "aesthetic4k run report", "version": 1, "settings": "x"},
    {"format": "aesthetic4k run report", "version": 1, "per_image": [{"stem": "a", "file": 5, "patches_key": [1]}]},
    [1, 2, 3],
])
def test_a_pathological_run_report_is_one_line_in_a4k_report(tmp_path, capsys, document):
    folder = report_folder(tmp_path, document)
    with within():
        status = report_main([str(folder), "--out", str(tmp_path / "out"), "--no-progress"])
    if isinstance(document, dict) and document.get("per_image") and isinstance(document["per_image"], list):
        assert status == 0          # odd values inside an entry: that image's card says what is wrong
        assert "internal error" not in capsys.readouterr().err
        return
    assert status == 2
    assert "run.json" in one_error(capsys, "a4k-report")


def test_pathological_markers_statistics_and_build_state(tmp_path):
    from aesthetic4k.data.build_state import read_jsonl
    from aesthetic4k.json_files import read_json_object
    from aesthetic4k_metrics.reference_stats import ReferenceStats

    marker = tmp_path / "marker.json"
    for text in (DEEP, '{"vae": NaN}', "\ufeff{\"vae\": \"f16\"}"):
        marker.write_text(text, encoding="utf-8")
        if text.startswith("\ufeff"):
            assert read_json_object(marker, "VAE marker") == {"vae": "f16"}     # a BOM is accepted
        else:
            with pytest.raises(UserError, match="unreadable VAE marker"):
                read_json_object(marker, "VAE marker")
    for meta in (DEEP, '{"format": "aesthetic4k-reference-stats", "version": 1, "count": "many"}'):
        np.savez(tmp_path / "stats.npz", meta=np.array(meta), full=np.zeros((2, 4), np.float32))
        with pytest.raises(UserError, match="stats.npz"):
            ReferenceStats.load(tmp_path / "stats.npz")
    shard = tmp_path / "shard.jsonl"
    shard.write_text(json.dumps({"rel": "a"}) + "\n" + DEEP + "\n" + '{"rel": NaN}\n' + json.dumps({"rel": "b"}) + "\n")
    assert [item["rel"] for item in read_jsonl(shard)] == ["a", "b"]       # damaged lines: their work is redone


# ---------------------------------------------------------------- 3. special files where files are read or written


@pytest.fixture
def specials(tmp_path):
    """Paths that are not regular files: a FIFO, a device, a folder, a link to a device, a link loop."""
    made = {"fifo": tmp_path / "fifo.csv", "device": Path("/dev/zero"), "folder": tmp_path / "dir.csv",
            "link to device": tmp_path / "zero.csv", "link loop": tmp_path / "loop.csv"}
    os.mkfifo(made["fifo"])
    made["folder"].mkdir()
    made["link to device"].symlink_to("/dev/zero")
    made["link loop"].symlink_to(made["link loop"])
    return made


@pytest.mark.parametrize("flag", ["--out", "--per-image", "--save-reference-stats"])
def test_an_eval_output_that_is_not_a_regular_file_is_refused_unopened(images, tmp_path, specials, capsys, flag):
    for kind, path in specials.items():
        args = {"--out": tmp_path / "r.csv", flag: path}
        assert evaluate("--generator", "folder", "--images", images, "--metrics", "glcm_score",
                        *[str(x) for pair in args.items() for x in pair]) == 2, kind
        line = one_error(capsys)
        assert str(path) in line and ("not a regular file" in line or "link loop" in line), (kind, line)


def test_a4k_check_and_a4k_report_refuse_special_files_unopened(tmp_path, specials, capsys):
    good = results_file(tmp_path / "good.csv")
    for kind, path in specials.items():
        for argv in ([str(path), "--baseline", str(good)], [str(good), "--baseline", str(path)],
                     [str(good), "--baseline", str(good), "--markdown", str(path)]):
            with within():
                assert check_main(argv) == 2, (kind, argv)
            assert str(path) in one_error(capsys, "a4k-check"), (kind, argv)
    folder = tmp_path / "rep"
    folder.mkdir()
    os.mkfifo(folder / "run.json")
    with within():
        assert report_main([str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "FIFO" in one_error(capsys, "a4k-report")


def test_dataset_files_that_are_not_regular_files_are_refused_unopened(tmp_path, capsys):
    from aesthetic4k.data.images import read_header

    os.mkfifo(tmp_path / "metadata.jsonl")
    with within():
        assert data_main(["validate", str(tmp_path / "metadata.jsonl"), "--no-progress"]) == 2
    assert "FIFO" in one_error(capsys, "a4k-data")
    os.mkfifo(tmp_path / "photo.jpg")                   # what a4k-data build, validate and stats open
    with within(), pytest.raises(ImageError, match="FIFO"):
        read_header(tmp_path / "photo.jpg")
    with within():
        assert data_main(["stats", "sample", "--json", "/dev/zero", "--no-plots", "--quiet"]) == 2
    assert "not a regular file" in one_error(capsys, "a4k-data")


def test_the_leaderboard_skips_a_fifo_in_the_results_folder(tmp_path, capsys):
    from aesthetic4k.cli.leaderboard import main as leaderboard_main

    results = tmp_path / "results"
    results.mkdir()
    results_file(results / "good.csv")
    os.mkfifo(results / "pipe.csv")
    with within():
        assert leaderboard_main(["--results", str(results), "--reported", str(tmp_path / "none.csv"),
                                 "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "pipe.csv" in err and "FIFO" in err and (tmp_path / "out" / "README.md").is_file()


# ---------------------------------------------------------------- 6. outputs through a symbolic link


@pytest.mark.parametrize("layout", ["absolute", "relative", "to a missing file", "in another folder"])
def test_an_output_named_through_a_link_replaces_the_target_and_keeps_the_link(images, tmp_path, monkeypatch,
                                                                               layout):
    from aesthetic4k import results

    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "real.csv"
    if layout != "to a missing file":
        results.upsert_row(target, {"generator": "other", "dataset": "sample", "size": 2048, "n_images": 1})
    link = (elsewhere if layout == "in another folder" else tmp_path) / "link.csv"
    link.symlink_to(os.path.relpath(target, link.parent) if layout == "relative" else target)
    per_link = tmp_path / "per-link.csv"
    per_link.symlink_to(elsewhere / "per.csv")
    report_link = tmp_path / "report-link"
    (elsewhere / "report").mkdir()
    report_link.symlink_to(elsewhere / "report")
    assert evaluate("--generator", "folder", "--images", images, "--metrics", "glcm_score", "--out", link,
                    "--per-image", per_link, "--report", report_link) == 0
    assert link.is_symlink() and per_link.is_symlink() and report_link.is_symlink()
    assert (elsewhere / "report" / "index.html").is_file()
    text = target.read_text()
    assert "folder:" in text and (layout == "to a missing file") != ("other" in text)
    assert (elsewhere / "per.csv").is_file() and "good0" in (elsewhere / "per.csv").read_text()
    assert (elsewhere / ".real.csv.lock").exists() and not (link.parent / ".link.csv.lock").exists()


def test_writers_through_the_link_and_through_the_target_share_one_lock(tmp_path):
    import fcntl

    from aesthetic4k import results

    target = tmp_path / "real.csv"
    (tmp_path / "link.csv").symlink_to(target)
    with results.locked(tmp_path / "link.csv"):
        with open(tmp_path / ".real.csv.lock", "a+") as other:      # what a writer using the target takes
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a4k_report_and_stats_json_through_links(tmp_path, capsys):
    from aesthetic4k.report import write_report
    from aesthetic4k.report.run_data import StoredRun

    real = tmp_path / "real-report"
    real.mkdir()
    (tmp_path / "report").symlink_to(real)
    save(natural(96, 96), tmp_path / "a.png")
    run = StoredRun(row={"generator": "g", "dataset": "d", "size": 96},
                    per_image=[{"stem": "a", "file": str(tmp_path / "a.png")}])
    write_report(run, tmp_path / "first", progress=False)
    assert report_main([str(tmp_path / "first"), "--out", str(tmp_path / "report"), "--no-progress"]) == 0
    assert (tmp_path / "report").is_symlink() and (real / "index.html").is_file()
    assert capsys.readouterr().err == ""                                  # --no-progress: no bar
    stats = tmp_path / "stats.json"
    (tmp_path / "stats-link.json").symlink_to(stats)
    folder = tmp_path / "ds"
    (folder / "images").mkdir(parents=True)
    save(natural(96, 96), folder / "images" / "a.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "images/a.png", "text": "a fox"}) + "\n")
    assert data_main(["stats", str(folder), "--no-plots", "--json", str(tmp_path / "stats-link.json"),
                      "--quiet"]) == 0
    assert (tmp_path / "stats-link.json").is_symlink() and json.loads(stats.read_text())


# ---------------------------------------------------------------- 8. a UTF-8 byte-order mark in a CSV


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_results_baselines_and_reported_files_may_start_with_a_bom(images, tmp_path, capsys, line_end):
    from aesthetic4k.leaderboard import collect

    plain = results_file(tmp_path / "plain.csv")
    with_bom = tmp_path / "bom.csv"
    with_bom.write_bytes(b"\xef\xbb\xbf" + plain.read_text().replace("\n", line_end).encode())
    assert check_main([str(with_bom), "--baseline", str(with_bom)]) == 0
    assert check_main([str(plain), "--baseline", str(with_bom)]) == 0
    capsys.readouterr()
    assert evaluate("--generator", "folder", "--images", images, "--metrics", "glcm_score", "--out", with_bom) == 0
    text = with_bom.read_text(encoding="utf-8")
    assert "mygen" in text and "folder:" in text and not text.startswith("\ufeff")  # merged, the row kept
    results = tmp_path / "results"
    results.mkdir()
    (results / "bom.csv").write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    reported = tmp_path / "reported.csv"
    reported.write_bytes(b"\xef\xbb\xbf" + (Path(__file__).resolve().parents[1] / "leaderboards" / "reported.csv").read_bytes())
    collection = collect(results, reported)
    assert [row.generator for row in collection.measured] == ["mygen"] and not collection.problems
    assert collection.reported and collection.reported[0].generator == "SD3-F16"


# ---------------------------------------------------------------- also decided: links out of the folder a user named


def test_a_metadata_file_linked_from_outside_the_dataset_is_refused(tmp_path, capsys):
    outside = tmp_path / "outside"
    (outside / "images").mkdir(parents=True)
    save(natural(96, 96), outside / "images" / "a.png")
    (outside / "metadata.jsonl").write_text(json.dumps({"file_name": "images/a.png", "text": "a fox"}) + "\n")
    dataset = tmp_path / "ds"
    (dataset / "images").mkdir(parents=True)
    save(natural(96, 96), dataset / "images" / "a.png")
    (dataset / "metadata.jsonl").symlink_to(outside / "metadata.jsonl")
    for argv in (["validate", str(dataset), "--no-progress"], ["stats", str(dataset), "--no-plots", "--quiet"]):
        assert data_main(argv) == 2
        assert "outside the dataset folder" in one_error(capsys, "a4k-data")
    assert evaluate("--generator", "folder", "--images", dataset / "images", "--dataset", dataset,
                    "--metrics", "glcm_score", "--out", tmp_path / "r.csv") == 2
    assert "metadata.jsonl" in one_error(capsys) and not (tmp_path / "r.csv").exists()
    (dataset / "metadata.jsonl").unlink()                  # a link that stays inside the dataset is fine
    (dataset / "real.jsonl").write_text((outside / "metadata.jsonl").read_text())
    (dataset / "metadata.jsonl").symlink_to("real.jsonl")
    assert data_main(["validate", str(dataset), "--no-progress"]) == 0


def test_folder_images_linked_from_outside_the_folder_are_refused(images, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    save(natural(96, 96, seed=5), elsewhere / "secret.png")
    (images / "escape.png").symlink_to(elsewhere / "secret.png")
    (images / "inside.png").symlink_to(images / "good0.png")         # a link inside the folder is fine
    out = tmp_path / "r.csv"
    assert evaluate("--generator", "folder", "--images", images, "--metrics", "glcm_score", "--out", out) == 2
    assert "escape.png: symbolic link to a file outside the folder" in one_error(capsys)
    assert evaluate("--generator", "folder", "--images", images, "--metrics", "glcm_score", "--skip-bad",
                    "--out", out) == 0
    assert "n_images" in out.read_text() and ",3," in out.read_text() and "escape.png" in out.read_text()
    reference = tmp_path / "real"
    reference.mkdir()
    save(natural(96, 96, seed=6), reference / "r.png")
    (reference / "escape.png").symlink_to(elsewhere / "secret.png")
    from aesthetic4k_metrics.folders import image_files

    with pytest.raises(UserError, match="escape.png: symbolic link to a file outside the folder"):
        image_files(reference)
