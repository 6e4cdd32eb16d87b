"""`a4k-data build` at scale: worker processes give the same dataset byte for byte, the eval
split only takes images that fit, every kept image is written, worker deaths and Ctrl-C stop
cleanly, interrupted work resumes from the stage shards."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from aesthetic4k.cli.data import main
from aesthetic4k.data import open_dataset
from aesthetic4k.data.build import build
from aesthetic4k.data.build_state import ShardStore
from aesthetic4k.data.distribute import ProcessPool, batches_of, create
from aesthetic4k.errors import UserError
from tests.test_data_build import manifest, options, photo


def dataset_files(out: Path) -> dict:
    """Every file a build wrote (its state folder and build.json's settings aside), by path."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and not rel.startswith(".a4k-build") and rel != "build.json":
            files[rel] = path.read_bytes()
    return files


@pytest.fixture
def varied_source(tmp_path):
    """Sixteen pictures of different sizes, formats and modes, a near-duplicate and a broken file."""
    from PIL import Image

    src = tmp_path / "photos"
    for index in range(12):
        size = (300 + 8 * index, 280 + 4 * (index % 3)) if index % 2 else (256 + 4 * index, 330)
        photo(src / f"p{index:02d}.{'png' if index % 3 == 0 else 'jpg'}", index, size=size)
    photo(src / "sub" / "p01.png", 1, size=(308, 284))            # near-duplicate of p01.jpg (a PNG of it)
    photo(src / "rgba.png", 12, size=(320, 320))
    Image.open(src / "rgba.png").convert("RGBA").save(src / "rgba.png")   # re-encoded in train
    photo(src / "small.jpg", 13, size=(200, 150))
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return src


def test_workers_give_the_same_dataset_byte_for_byte(tmp_path, varied_source):
    results = {}
    for workers in (1, 2, 3):
        out = tmp_path / f"out{workers}"
        summary = build(options(varied_source, out, workers=workers, eval_count=4, eval_sizes=(256, 320)))
        assert summary["settings"]["workers"] == workers
        results[workers] = dataset_files(out)
    assert results[1] == results[2] == results[3]
    lines = manifest(tmp_path / "out2")
    # same pixels, so the larger file (the PNG) is kept
    assert lines["p01.jpg"]["decision"] == "skipped" and "near-duplicate of sub/p01.png" in lines["p01.jpg"]["reason"]
    assert "cannot" in lines["broken.jpg"]["reason"] or "not an image" in lines["broken.jpg"]["reason"]
    # every kept image ends in at least one output (issue 17)
    for line in lines.values():
        if line["decision"] in ("train", "eval"):
            assert line["outputs"], line


def test_resume_after_interruption_in_worker_processes(tmp_path, varied_source, monkeypatch):
    out = tmp_path / "out"
    import aesthetic4k.data.build as build_module

    real = build_module.run_stage

    def stop_after_two_batches(pool, desc, *args, **kwargs):
        for count, results in enumerate(real(pool, desc, *args, **kwargs)):
            yield results
            if desc == "write" and count == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "run_stage", stop_after_two_batches)
    monkeypatch.setattr("aesthetic4k.data.build_outputs.run_stage", stop_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        build(options(varied_source, out, workers=2, eval_count=4))
    assert not (out / "manifest.jsonl").exists()
    written = ShardStore(out / ".a4k-build" / "outputs", ("output",)).items
    assert written  # the finished batches were recorded by the workers themselves
    monkeypatch.undo()
    summary = build(options(varied_source, out, workers=2, eval_count=4))
    assert summary["work"]["scan"] == {"reused": 16, "done": 0}  # every file, the broken one too
    total_outputs = sum(len(line.get("outputs", [])) for line in manifest(out).values())
    jobs_done = summary["work"]["write"]["done"]
    assert 0 < jobs_done < total_outputs
    fresh = tmp_path / "fresh"
    build(options(varied_source, fresh, workers=1, eval_count=4))
    assert dataset_files(out) == dataset_files(fresh)


def test_eval_split_draws_only_images_that_fit(tmp_path):
    src = tmp_path / "src"
    for index in range(6):
        photo(src / f"big{index}.jpg", index, size=(340, 330))
    for index in range(6):
        photo(src / f"mid{index}.jpg", 8 + index, size=(300, 290))
    out = tmp_path / "out"
    summary = build(options(src, out, eval_sizes=(320, 512), eval_count=5, min_short_side=256))
    lines = manifest(out)
    chosen = [name for name, line in lines.items() if line["decision"] == "eval"]
    assert len(chosen) == 5 and all(name.startswith("big") for name in chosen)
    assert all(line["outputs"] for line in lines.values() if line["decision"] in ("train", "eval"))
    assert summary["splits"] == {"train": 7, "eval": 5}
    assert summary["written"] == {"train": 7, "eval@320": 5, "eval@512": 0}
    # asking for more than fit: lowered to what fits, with a note saying why
    summary = build(options(src, tmp_path / "out2", eval_sizes=(320,), eval_count=10, min_short_side=256))
    assert summary["splits"]["eval"] == 6 and summary["written"]["eval@320"] == 6
    assert any("lowered to 6" in note and ">= 320" in note for note in summary["notes"])


def test_no_image_fits_an_eval_size_stops_with_a_suggestion(tmp_path, capsys):
    src = tmp_path / "src"
    for index in range(4):
        photo(src / f"p{index}.jpg", index, size=(300, 300))
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"--eval-sizes 256 \(or --eval-count 0"):
        build(options(src, out, eval_sizes=(2048, 4096), eval_count=2))
    assert not (out / "manifest.jsonl").exists()
    code = main(["build", "--source", str(src), "--out", str(out), "--min-short-side", "256", "--eval-sizes", "256",
                 "--eval-count", "2", "--captioner", "sidecar", "--quiet", "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "train split: 2 image(s), written to train/: 2" in printed
    assert "eval split: 2 image(s), written to eval@256: 2" in printed
    with pytest.raises(SystemExit) as info:
        main(["build", "--source", str(src), "--out", str(out), "--workers", "0"])
    assert info.value.code == 2 and "--workers: must be at least 1" in capsys.readouterr().err


def test_batches_balance_the_workers():
    assert [len(b) for b in batches_of(list(range(10)), 2)] == [1] * 10
    sizes = [len(b) for b in batches_of(list(range(10_000)), 4)]
    assert sum(sizes) == 10_000 and max(sizes) == 64
    with pytest.raises(UserError, match="--ray-address needs --distributor ray"):
        create("local", 2, "auto")
    with pytest.raises(UserError, match="--distributor must be one of"):
        create("spark", 2)


def _die(_):
    os.kill(os.getpid(), signal.SIGKILL)


def _slow(seconds):
    time.sleep(seconds)
    return os.getpid()


def test_a_dead_worker_stops_the_build_with_one_line():
    pool = ProcessPool(2)
    try:
        with pytest.raises(UserError) as info:
            list(pool.map(_die, [(1,), (2,)], ["first.jpg", "second.jpg"]))
    finally:
        pool.close()
    message = str(info.value)
    assert "worker process died" in message and "first.jpg" in message and "re-run" in message
    assert "\n" not in message


def test_interrupting_the_driver_stops_the_workers():
    pool = ProcessPool(2)
    stream = pool.map(_slow, [(0.01,)] + [(30,)] * 3, ["a", "b", "c", "d"])
    next(stream)
    processes = list(pool.executor._processes.values())
    assert processes
    with pytest.raises(KeyboardInterrupt):
        stream.throw(KeyboardInterrupt)
    for process in processes:
        process.join(10)
        assert not process.is_alive()
    assert pool.executor is None


def test_manifest_and_output_shards_are_atomic_and_compacted(tmp_path, varied_source):
    out = tmp_path / "out"
    build(options(varied_source, out, workers=2, eval_count=4))
    state = out / ".a4k-build"
    for stage in ("scan", "outputs"):
        shards = list((state / stage).glob("*.jsonl"))
        assert len(shards) == 1  # merged at the end of the build
        for line in shards[0].read_text().splitlines():
            json.loads(line)
    assert not list(out.rglob(".*.tmp"))
    assert len(open_dataset(str(out), split="train")) == json.loads((out / "build.json").read_text())["train"]
