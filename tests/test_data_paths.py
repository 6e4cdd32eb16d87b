"""Dataset paths stay inside their dataset (never opened otherwise); odd file names never crash."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from aesthetic4k.cli.data import main
from aesthetic4k.data import open_dataset, validate
from aesthetic4k.data.paths import OutsidePath, inside, json_line
from aesthetic4k_metrics.files import display_path
from aesthetic4k.data.stats import split_stats
from aesthetic4k.errors import UserError
from tests.test_data_images import gradient_image
from tests.test_data_loading import write_split


@pytest.fixture
def escaping(tmp_path):
    """A dataset whose metadata names files outside it in every way a hostile file could."""
    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    Image.fromarray(gradient_image(40, 40)).save(secret)
    folder = tmp_path / "data"
    write_split(folder, [("images/ok.png", "fine")])
    (folder / "images" / "link.jpg").symlink_to(secret)                 # a link pointing out
    (folder / "images" / "sub").symlink_to(secret.parent, target_is_directory=True)
    lines = [json.dumps({"file_name": "images/ok.png", "text": "fine"}),
             json.dumps({"file_name": "../outside/secret.jpg", "text": "dot-dot"}),
             json.dumps({"file_name": str(secret), "text": "absolute"}),
             json.dumps({"file_name": "images/link.jpg", "text": "link"}),
             json.dumps({"file_name": "images/sub/secret.jpg", "text": "folder link"}),
             json.dumps({"file_name": "images\\..\\..\\outside\\secret.jpg", "text": "backslashes"})]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder, secret


def test_validate_refuses_paths_outside_without_opening_them(escaping, monkeypatch, capsys):
    folder, secret = escaping
    opened = []
    import aesthetic4k.data.images as images

    real_open = images._open
    monkeypatch.setattr(images, "_open", lambda path, limit: opened.append(Path(path)) or real_open(path, limit))
    problems = validate(open_dataset(str(folder), size=32))
    outside = {p.line: p.message for p in problems if p.kind == "outside"}
    assert sorted(outside) == [2, 3, 4, 5, 6]
    assert "leaves the dataset folder" in outside[2] and "absolute path" in outside[3]
    assert "outside the dataset folder (symlinks are followed)" in outside[4]
    assert all(path.resolve() != secret.resolve() for path in opened)
    assert opened  # the good image was read
    assert main(["validate", str(folder), "--size", "32"]) == 1
    printed = capsys.readouterr().out
    assert "line 4: error" not in printed and "error: line 4: images/link.jpg resolves to" in printed


def test_records_and_stats_refuse_paths_outside(escaping):
    folder, secret = escaping
    with pytest.raises(UserError, match=r"line 2: \.\./outside/secret\.jpg leaves the dataset folder .*refused"):
        list(open_dataset(str(folder)).records())
    only_link = folder.parent / "linked"
    write_split(only_link, [("images/ok.png", "fine")])
    (only_link / "images" / "link.jpg").symlink_to(secret)
    with open(only_link / "metadata.jsonl", "a") as handle:
        handle.write(json.dumps({"file_name": "images/link.jpg", "text": "x"}) + "\n")
    with pytest.raises(UserError, match="line 2: images/link.jpg resolves to .*outside the dataset folder"):
        list(open_dataset(str(only_link)).records())
    stats = split_stats("x", folder / "metadata.jsonl")
    assert stats.outside == 5 and len(stats.heights) == 1


def test_links_inside_the_folder_and_hub_cache_blobs_are_accepted(tmp_path):
    # the Hugging Face cache: snapshot files are links into the repository's blobs/ folder
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "datasets--zhang0jhon--Aesthetic-4K"
    blob = repo / "blobs" / "0a1b2c"
    blob.parent.mkdir(parents=True)
    Image.fromarray(gradient_image(40, 40)).save(blob, format="PNG")
    split = repo / "snapshots" / commit / "eval" / "size_2048"
    (split / "images").mkdir(parents=True)
    (split / "images" / "p.png").symlink_to(os.path.relpath(blob, split / "images"))
    (split / "metadata.jsonl").write_text(json.dumps({"file_name": "images/p.png", "text": "a harbour"}) + "\n")
    dataset = open_dataset(str(split), size=32)
    assert [r.image_path for r in dataset.records()] == [split / "images" / "p.png"]
    assert validate(dataset) == []
    # a link from the snapshot to anywhere else is still refused
    (split / "images" / "q.png").symlink_to(tmp_path)
    with open(split / "metadata.jsonl", "a") as handle:
        handle.write(json.dumps({"file_name": "images/q.png", "text": "x"}) + "\n")
    assert [p.kind for p in validate(open_dataset(str(split), size=32))] == ["outside"]


def test_inside_checks_text_before_touching_the_disk(tmp_path):
    for name in ("../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "..\\x.jpg"):
        with pytest.raises(OutsidePath):
            inside(tmp_path, name)
    assert inside(tmp_path, "a/./b/../c.jpg") == tmp_path / "a/./b/../c.jpg"
    with pytest.raises(OutsidePath, match="NUL"):
        inside(tmp_path, "a\x00b.jpg")


def test_validate_survives_a_5000_character_file_name(tmp_path, capsys):
    folder = tmp_path / "long"
    write_split(folder, [("images/ok.png", "fine")])
    with open(folder / "metadata.jsonl", "a") as handle:
        handle.write(json.dumps({"file_name": "images/" + "x" * 5000 + ".jpg", "text": "long"}) + "\n")
        handle.write(json.dumps({"file_name": "images/" + "y/" * 2500 + "z.jpg", "text": "deep"}) + "\n")
    problems = validate(open_dataset(str(folder), size=32))
    assert [(p.kind, p.line) for p in problems] == [("unreadable", 2), ("unreadable", 3)]
    assert "too long" in problems[0].message and len(problems[0].message) < 400
    assert main(["validate", str(folder), "--size", "32"]) == 1
    printed = capsys.readouterr().out
    assert "line 2: unusable path" in printed and "characters)" in printed


def test_non_utf8_file_names_in_build_validate_and_stats(tmp_path):
    from tests.test_data_build import options, photo

    src = tmp_path / "src"
    photo(src / "plain.jpg", 0)
    raw = os.fsdecode(b"caf\xe9-\xff.jpg")          # Latin-1 bytes: not UTF-8
    photo(src / raw, 1)
    from aesthetic4k.data.build import build

    out = tmp_path / "out"
    build(options(src, out, eval_count=0))
    text = (out / "manifest.jsonl").read_text(encoding="utf-8")  # valid UTF-8 throughout
    sources = [json.loads(line)["source"] for line in text.splitlines()]
    assert raw in sources and "plain.jpg" in sources
    assert display_path(raw) == "caf\\xe9-\\xff.jpg"
    # a metadata.jsonl naming such a file (as JSON escapes) loads, validates and gets statistics
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(gradient_image(40, 40)).save(folder / raw, format="PNG")
    (folder / "metadata.jsonl").write_text(json_line({"file_name": raw, "text": "odd name"}) + "\n")
    dataset = open_dataset(str(folder), size=32)
    assert [r.image_path.name for r in dataset.records()] == [raw]
    assert validate(dataset) == []
    assert split_stats("x", folder / "metadata.jsonl").heights == [40]
    # the commands print such names with a strict UTF-8 stdout
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict")
    for command in (["build", "--source", str(src), "--out", str(tmp_path / "cli"), "--min-short-side", "256",
                     "--eval-count", "0", "--quiet", "--workers", "2", "--dup-threshold", "63"],
                    ["validate", str(folder), "--size", "32"], ["stats", str(folder), "--no-plots"]):
        done = subprocess.run([sys.executable, "-m", "aesthetic4k.cli.data", *command], capture_output=True,
                              text=True, env=env, errors="replace")
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
