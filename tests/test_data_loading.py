"""Loading datasets: local published layout, plain folders, the hub (offline), validation."""
from __future__ import annotations

import json
import types

import pytest
from PIL import Image

from aesthetic4k.data import Record, open_dataset, validate
from aesthetic4k.errors import UserError
from tests.test_data_images import gradient_image


def write_split(folder, entries, images=True, size=(80, 60)):
    """A metadata.jsonl with ``entries`` ((file_name, text) or raw str lines) and the images it names."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, entry in enumerate(entries):
        if isinstance(entry, str):
            lines.append(entry)
            continue
        file_name, text = entry
        lines.append(json.dumps({"file_name": file_name, "text": text}))
        if images:
            path = folder / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(gradient_image(*size, seed=number)).save(path)
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def published(tmp_path):
    root = tmp_path / "Aesthetic-4K"
    write_split(root / "eval" / "size_2048", [("images/a.jpg", "a red fox"), ("images/b.PNG", "a city")])
    write_split(root / "eval" / "size_4096", [("images/c.jpeg", "mountains")])
    write_split(root / "train", [(f"images/t{i}.jpg", f"caption {i}") for i in range(5)])
    return root


def test_published_layout_by_size_and_split(tmp_path):
    root = published(tmp_path)
    dataset = open_dataset(str(root), size=2048)
    assert (dataset.name, dataset.size, len(dataset), dataset.is_sample) == ("Aesthetic-4K", 2048, 2, False)
    records = list(dataset.records())
    assert records[0] == Record("a", "a red fox", root / "eval/size_2048/images/a.jpg", 1)
    assert [r.stem for r in records] == ["a", "b"]
    assert [r.stem for r in open_dataset(str(root), size=4096).records()] == ["c"]
    train = open_dataset(str(root), split="train")
    assert len(train) == 5 and train.name == "Aesthetic-4K"
    # pointing at the split folder or the jsonl itself keeps the dataset's name
    assert open_dataset(str(root / "eval" / "size_2048")).name == "Aesthetic-4K"
    assert len(open_dataset(str(root / "train" / "metadata.jsonl"))) == 5
    with pytest.raises(UserError, match="no eval set at size 1024.*size_2048, size_4096"):
        open_dataset(str(root), size=1024)
    with pytest.raises(UserError, match="unknown split"):
        open_dataset(str(root), split="test")


def test_records_are_lazy_and_stream(tmp_path):
    folder = tmp_path / "big"
    write_split(folder, [(f"images/{i:05d}.jpg", f"text {i}") for i in range(2000)], images=False)
    dataset = open_dataset(str(folder), split="train")
    stream = dataset.records()
    assert isinstance(stream, types.GeneratorType)
    first = next(stream)  # no image exists: nothing was opened
    assert first.stem == "00000" and not first.image_path.exists()
    assert len(dataset) == 2000


def test_plain_folder_and_bad_specs(tmp_path):
    folder = tmp_path / "mine"
    write_split(folder, [("x.png", "a caption")])
    dataset = open_dataset(str(folder))
    assert dataset.name == "mine" and list(dataset.records())[0].prompt == "a caption"
    with pytest.raises(UserError, match="no such folder"):
        open_dataset(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="published layout"):
        open_dataset(str(tmp_path / "empty"))


def test_malformed_lines_and_stem_collisions_stop_with_line_numbers(tmp_path):
    folder = tmp_path / "broken"
    write_split(folder, [("a.png", "ok"), "{not json", ("b.png", "fine")])
    with pytest.raises(UserError, match=r"line 2: not valid JSON"):
        list(open_dataset(str(folder)).records())
    write_split(folder, [("a.png", "one"), ("other/a.jpg", "two")])
    with pytest.raises(UserError, match=r"line 2: file stem 'a' already used on line 1"):
        list(open_dataset(str(folder)).records())


def test_validate_reports_each_problem_with_its_line(tmp_path):
    folder = tmp_path / "v"
    write_split(folder, [("ok.png", "fine caption"), ("ok.png", "again"), ("empty.png", "  "),
                         ("long.png", "word " * 400), '{"text": "no file name"}', "[1, 2]", "{oops",
                         ("missing.png", "gone"), ("cut.jpg", "truncated")], images=False)
    for name in ("ok.png", "empty.png", "long.png"):
        Image.fromarray(gradient_image(40, 40)).save(folder / name)
    Image.fromarray(gradient_image(200, 200)).save(folder / "cut.jpg", quality=95)
    data = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    problems = validate(open_dataset(str(folder), size=32))
    found = {(p.kind, p.line) for p in problems}
    assert found == {("duplicate", 2), ("empty-caption", 3), ("long-caption", 4), ("malformed", 5),
                     ("malformed", 6), ("malformed", 7), ("missing", 8), ("unreadable", 9)}
    assert all(str(p).startswith(("error: line", "warning: line")) for p in problems)
    # header-only checking misses the truncated file, as documented
    quick = {(p.kind, p.line) for p in validate(open_dataset(str(folder), size=32), decode=False)}
    assert ("unreadable", 9) not in quick and ("missing", 8) in quick
    # images smaller than the eval size are a warning
    small = [p for p in validate(open_dataset(str(folder), size=64)) if p.kind == "small"]
    assert small and all(p.severity == "warning" for p in small)


def test_hub_offline_without_cache_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from aesthetic4k.data.hub import hub_folder

    with pytest.raises(UserError) as info:
        hub_folder("eval", 2048, cache_dir=tmp_path / "hf")
    message = str(info.value)
    assert "hf download zhang0jhon/Aesthetic-4K" in message and "eval/size_2048/*" in message
    assert "--dataset" in message and "\n" not in message


def test_hub_uses_a_cached_snapshot_offline(tmp_path, monkeypatch):
    # the standard cache layout: datasets--owner--name/refs/main -> snapshots/<commit>/...
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "datasets--zhang0jhon--Aesthetic-4K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    write_split(snapshot / "eval" / "size_4096", [("images/p.jpg", "a harbour at dawn")])
    from aesthetic4k.data.hub import hub_folder

    assert hub_folder("eval", 4096, cache_dir=tmp_path / "hf") == snapshot
    monkeypatch.setattr("aesthetic4k.data.hub.hub_folder", lambda split, size: snapshot)
    dataset = open_dataset("aesthetic-4k", size=4096)
    assert dataset.name == "aesthetic-4k" and [r.prompt for r in dataset.records()] == ["a harbour at dawn"]
    with pytest.raises(UserError, match="no eval/size_2048/metadata.jsonl"):
        hub_folder("eval", 2048, cache_dir=tmp_path / "hf")


def test_cli_help_is_light_and_validate_exit_codes(tmp_path, capsys):
    import subprocess
    import sys

    code = ("import sys\nfrom aesthetic4k.cli.data import main\n"
            "try:\n    main(['build', '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'cv2', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    from aesthetic4k.cli.data import main

    folder = tmp_path / "broken"
    write_split(folder, [("a.png", "ok"), "{bad"])
    assert main(["validate", str(folder), "--size", "32"]) == 1
    out = capsys.readouterr().out
    assert "line 2: not valid JSON" in out and "1 error(s)" in out
    assert main(["validate", str(tmp_path / "absent")]) == 2
