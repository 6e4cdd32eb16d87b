"""a4k-train and a4k-train-vae streaming their data from the hub layout through a bounded cache:
a local folder and a stand-in hub on 127.0.0.1 (no network), tiny random models on the CPU."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.cli.common import byte_size
from aesthetic4k.data.images import open_rgb
from aesthetic4k.data.remote import FolderStore
from aesthetic4k.training.sources import StreamedImages, StreamSettings
from aesthetic4k.wavelet.train import train
from tests.hub_server import HubStandIn
from tests.test_train import _config, _save_pipeline

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sd3_folder(tmp_path_factory):
    from tests.tiny_pipelines import build_tiny_sd3

    return _save_pipeline(build_tiny_sd3, tmp_path_factory.mktemp("sd3") / "pipe")


def hub_layout(root: Path, count: int = 4, broken: bool = True) -> Path:
    """``train/metadata.jsonl`` and its images, as the published training sets lay them out, with a
    corrupt and a missing image when ``broken``."""
    images = root / "train" / "images"
    images.mkdir(parents=True)
    lines = []
    for i in range(count):
        y, x = np.mgrid[0:72 + 8 * i, 0:96]
        pixels = np.stack([np.sin(x / (3 + i)) * 120 + 128, np.cos(y / (5 + i)) * 120 + 128, (x + 3 * y) % 256], -1)
        name = f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels.astype(np.uint8)).save(images / name, quality=95)
        lines.append({"file_name": f"images/{name}", "text": f"a photo of a red cat {i}"})
    if broken:
        (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        lines += [{"file_name": "images/broken.jpg", "text": "a broken picture"},
                  {"file_name": "images/gone.png", "text": "a missing picture"}]
    (root / "train" / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


def largest_image(root: Path) -> int:
    return max(p.stat().st_size for p in (root / "train" / "images").iterdir())


def cached_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return hub_layout(tmp_path_factory.mktemp("hub-layout") / "remote")


@pytest.fixture(scope="module")
def runs(sd3_folder, data, tmp_path_factory):
    """The same 6 steps (batch 2, 4 usable images: three epochs) read locally and streamed from a folder
    through a cache with room for 2 images, which must drop and fetch images again."""
    tmp = tmp_path_factory.mktemp("runs")
    limit = 2 * largest_image(data)
    local = train(_config(sd3_folder, data, tmp / "local", max_steps=6, checkpoint_every=3))
    fetched = []
    real_fetch = FolderStore.fetch

    def counting_fetch(self, name, target):
        fetched.append(name)
        return real_fetch(self, name, target)

    FolderStore.fetch = counting_fetch
    try:
        streamed_config = _config(sd3_folder, data, tmp / "streamed", max_steps=6, checkpoint_every=3, stream=True,
                                  stream_cache=str(tmp / "cache"), stream_cache_limit=limit, stream_prefetch=2)
        streamed = train(streamed_config)
    finally:
        FolderStore.fetch = real_fetch
    return {"tmp": tmp, "data": data, "limit": limit, "local": local, "streamed": streamed,
            "config": streamed_config, "fetched": fetched}


def test_streaming_a_folder_gives_the_local_loss_curve(runs):
    local, streamed = runs["local"], runs["streamed"]
    assert [s for s, _ in streamed.losses] == list(range(1, 7))
    assert streamed.losses == local.losses  # the same images, order, crops and noise: the same numbers
    assert {Path(p).name: r for p, r in streamed.skipped} == {Path(p).name: r for p, r in local.skipped}
    assert {Path(p).name for p, _ in streamed.skipped} == {"broken.jpg", "gone.png"}
    assert all("train/images/" in path for path, _ in streamed.skipped)  # named by their place in the store


def test_the_stream_cache_stays_bounded_and_refetches(runs):
    cache = runs["tmp"] / "cache"
    (store,) = [p for p in cache.iterdir() if p.is_dir()]
    assert store.name.startswith("folder-")  # one sub-folder per source
    window = 2 + 2 + 1  # prefetched + the batch being decoded + one fetched past the limit
    assert cached_bytes(store) <= runs["limit"] + window * largest_image(runs["data"])
    images = [name for name in runs["fetched"] if not name.endswith(("broken.jpg", "gone.png"))]
    assert len(set(images)) == 4 and len(images) > 4  # dropped for lack of room, fetched again later


def test_a_resumed_streamed_run_continues_the_same_curve(runs, tmp_path):
    config, streamed = runs["config"], runs["streamed"]
    config.output_dir = str(tmp_path / "resumed")
    config.resume = str(runs["tmp"] / "streamed" / "checkpoint-000003")
    config.stream_cache = str(tmp_path / "empty-cache")  # nothing cached: everything streamed again
    resumed = train(config)
    assert [s for s, _ in resumed.losses] == [4, 5, 6]
    assert resumed.losses == streamed.losses[3:]


def test_with_every_encoding_cached_no_image_is_streamed_again(sd3_folder, data, tmp_path, monkeypatch):
    fetched = []
    real_fetch = FolderStore.fetch
    monkeypatch.setattr(FolderStore, "fetch", lambda self, name, target: fetched.append(name) or
                        real_fetch(self, name, target))
    options = dict(max_steps=4, checkpoint_every=4, stream=True, stream_cache=str(tmp_path / "stream"),
                   cache_dir=str(tmp_path / "encodings"))
    first = train(_config(sd3_folder, data, tmp_path / "first", **options))
    assert {Path(name).name for name in fetched} == {"img0.jpg", "img1.png", "img2.jpg", "img3.png", "broken.jpg",
                                                   "gone.png"}
    fetched.clear()
    again = train(_config(sd3_folder, data, tmp_path / "again", **options))
    assert {Path(name).name for name in fetched} <= {"broken.jpg", "gone.png"}  # never encoded: tried again
    assert again.losses == first.losses


def test_a4k_train_streams_a_hub_dataset(runs, sd3_folder, tmp_path, monkeypatch, capsys):
    from aesthetic4k.cli.train import main

    for name in ("HF_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "a4k"))  # the default stream cache lives here
    out = tmp_path / "run"
    with HubStandIn() as hub:
        hub.add_folder("zhang0jhon/Aesthetic-Train-V2", runs["data"], kind="dataset")
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        code = main(["--family", "sd3", "--base", str(sd3_folder), "--data", "aesthetic-train-v2", "--stream",
                     "--stream-cache-limit", "1M", "--output-dir", str(out), "--resolution", "64", "--batch-size",
                     "2", "--max-steps", "2", "--learning-rate", "1e-2", "--mixed-precision", "no", "--device",
                     "cpu", "--max-sequence-length", "16", "--no-tensorboard", "--quiet", "--num-workers", "1",
                     "--no-gradient-checkpointing"])
        images_served = hub.count("GET", "/train/images/")
    assert code == 0, capsys.readouterr().err
    assert "a4k-train: step 2; checkpoint" in capsys.readouterr().out
    with open(out / "train_log.csv", newline="") as handle:
        logged = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert logged == [loss for _, loss in runs["local"].losses[:2]]
    assert images_served >= 4
    cache = tmp_path / "a4k" / "stream" / "hub-zhang0jhon--Aesthetic-Train-V2-main"
    assert cache.is_dir() and any(cache.rglob("img*"))


def test_streamed_images_hold_only_the_prefetch_window(tmp_path):
    data = hub_layout(tmp_path / "remote", count=6, broken=False)
    images = StreamedImages(str(data), StreamSettings(str(tmp_path / "cache"), 10**9, prefetch=2))
    records = images.records
    assert [r.prompt for r in records] == [f"a photo of a red cat {i}" for i in range(6)]
    held = images.stream.cache.in_use
    images.prefetch(records[:3])                 # only the window's first 2 are fetched
    for future in list(images.pending.values()):
        future.result()
    assert sorted(images.pending) == ["img0", "img1"] and len(held) == 2
    first = images.open(records[0], draft_size=64)
    assert np.array_equal(np.asarray(first), np.asarray(open_rgb(data / "train/images/img0.jpg", draft_size=64)))
    images.prefetch(records[4:6])                # img1 was never opened: it is let go
    for future in list(images.pending.values()):
        future.result()
    assert sorted(images.pending) == ["img4", "img5"]
    assert sorted(Path(name).stem for name in held) == ["img4", "img5"]
    images.open(records[2], draft_size=64)       # not prefetched: fetched on the spot, then released
    images.close()
    assert not held and not images.pending


def test_a4k_train_vae_streams_the_same_crops(data, tmp_path):
    from aesthetic4k.scvae.config import VaeTrainConfig
    from aesthetic4k.scvae.train import CURVE_COLUMNS, train_vae
    from tests.tiny_pipelines import build_tiny_vae, save_tiny_lpips

    build_tiny_vae().save_pretrained(tmp_path / "vae")
    backbone, heads = save_tiny_lpips(tmp_path / "lpips")

    def run(out, **stream):
        config = VaeTrainConfig(base=str(tmp_path / "vae"), data=str(data), output_dir=str(out),
                                resolution=32, batch_size=2, gradient_accumulation=1, max_steps=2,
                                checkpoint_every=2, disc_channels=16, disc_depth=3, device="cpu",
                                tensorboard=False, progress=False, num_workers=1, gradient_checkpointing=False,
                                weights={"vgg16": str(backbone), "lpips-vgg": str(heads)}, **stream)
        return train_vae(config)

    local = run(tmp_path / "local")
    streamed = run(tmp_path / "streamed", stream=True, stream_cache=str(tmp_path / "cache"),
                   stream_cache_limit=2 * largest_image(data), stream_prefetch=2)
    assert [{k: row[k] for k in CURVE_COLUMNS} for row in streamed.losses] == \
        [{k: row[k] for k in CURVE_COLUMNS} for row in local.losses]
    assert {Path(p).name for p, _ in streamed.skipped} == {Path(p).name for p, _ in local.skipped}


def test_byte_sizes():
    assert byte_size("50G") == 50 * 2**30
    assert byte_size("1.5T") == 3 * 2**39
    assert byte_size("500m") == 500 * 2**20
    assert byte_size("64GiB") == byte_size("64GB") == 64 * 2**30
    assert byte_size("4096") == 4096
    import argparse

    for bad in ("", "G", "-1G", "0", "50X", "1.2.3G", "0.1"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a size like 50G"):
            byte_size(bad)


@pytest.mark.parametrize("args, expected", [
    (["--stream-cache-limit", "lots"], "a4k-train: error: argument --stream-cache-limit: expected a size like 50G"),
    (["--stream-prefetch", "-1"], "a4k-train: error: --stream-prefetch cannot be negative"),
    (["--data", "aesthetic-train-v2"], "error: --data aesthetic-train-v2: no such folder; to stream the hub dataset "
                                       "aesthetic-train-v2, add --stream"),
    (["--data", "owner/no-such-set"], "to stream the hub dataset owner/no-such-set, add --stream"),
    (["--data", "not a dataset", "--stream"], "streaming source 'not a dataset': not a folder"),
])
def test_bad_stream_options_are_one_line_errors(sd3_folder, tmp_path, capsys, args, expected):
    from aesthetic4k.cli.train import main

    base = ["--family", "sd3", "--base", str(sd3_folder), "--data", str(tmp_path), "--output-dir",
            str(tmp_path / "o"), "--device", "cpu", "--stream-cache", str(tmp_path / "cache")]
    try:
        code = main(base + args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and "\n" not in err, err
    assert not (tmp_path / "o").exists()


def test_help_names_the_stream_options_without_importing_torch():
    code = ("import sys; from aesthetic4k.cli import train, train_vae; "
            "texts = [m.build_parser().format_help() for m in (train, train_vae)]; "
            "print(all('--stream-cache-limit' in t for t in texts), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
