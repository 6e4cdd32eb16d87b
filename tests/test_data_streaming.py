"""Streaming training data from the hub layout through a bounded cache: a local folder and a
stand-in for the hub on 127.0.0.1 (no network)."""
from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.data.images import open_rgb
from aesthetic4k.data.remote import FileCache, HubStore
from aesthetic4k.data.streaming import StreamingDataset
from aesthetic4k.errors import UserError
from tests.test_data_images import gradient_image

COUNT = 12


def hub_layout(root: Path, count: int = COUNT) -> Path:
    """``train/metadata.jsonl`` and its images, as in zhang0jhon/Aesthetic-4K and Aesthetic-Train-V2."""
    images = root / "train" / "images"
    images.mkdir(parents=True)
    lines = []
    for index in range(count):
        name = f"img{index:03d}.{'png' if index % 2 else 'jpg'}"
        Image.fromarray(gradient_image(96 + index, 64, seed=index)).save(images / name, quality=95)
        lines.append(json.dumps({"file_name": f"images/{name}", "text": f"caption {index}"}))
    (root / "train" / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def same_pixels(a, b) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def test_an_epoch_streams_every_sample_once_across_ranks(tmp_path):
    root = hub_layout(tmp_path / "remote")
    originals = {f"caption {i}": open_rgb(p) for i, p in enumerate(sorted((root / "train/images").iterdir()))}
    seen = []
    for rank in range(2):
        stream = StreamingDataset(str(root), cache_dir=tmp_path / "cache", cache_limit=10**9, rank=rank,
                                  world_size=2, seed=3, prefetch=3)
        assert len(stream) == COUNT // 2
        samples = list(stream.epoch(0))
        assert len(samples) == COUNT // 2
        for image, caption in samples:
            assert same_pixels(image, originals[caption])  # decoded exactly as the toolkit decodes files
        seen += [caption for _, caption in samples]
    assert sorted(seen) == sorted(originals)
    # the order is seeded per epoch and identical in every process; resuming skips what was read
    stream = StreamingDataset(str(root), cache_dir=tmp_path / "cache", cache_limit=10**9, seed=3)
    first = [c for _, c in stream.epoch(0)]
    assert first == [c for _, c in StreamingDataset(str(root), cache_dir=tmp_path / "c2", seed=3).epoch(0)]
    assert first != [c for _, c in stream.epoch(1)] and sorted(first) == sorted([c for _, c in stream.epoch(1)])
    assert [c for _, c in stream.epoch(0, start=5)] == first[5:]
    stream.set_epoch(1)
    assert [c for _, c in stream] == [c for _, c in stream.epoch(1)]
    cropped = StreamingDataset(str(root), cache_dir=tmp_path / "cache", size=32, shuffle=False, prefetch=0)
    assert all(image.size == (32, 32) for image, _ in cropped)
    import pickle  # DataLoader workers started by spawn get a pickled copy

    copy = pickle.loads(pickle.dumps(cropped))
    assert [c for _, c in copy] == [c for _, c in cropped]


def test_the_cache_stays_within_its_limit(tmp_path):
    root = hub_layout(tmp_path / "remote")
    sizes = sorted(p.stat().st_size for p in (root / "train/images").iterdir())
    limit = sum(sizes[-4:])           # room for about a third of the dataset
    stream = StreamingDataset(str(root), cache_dir=tmp_path / "cache", cache_limit=limit, prefetch=2)
    folder = stream.cache.folder

    def cached_bytes() -> int:
        total = 0
        for path in folder.rglob("*"):
            try:                          # the prefetch threads rename temporary files meanwhile
                total += path.stat().st_size if path.is_file() else 0
            except FileNotFoundError:
                pass
        return total

    peak = 0
    for epoch in range(2):
        for _ in stream.epoch(epoch):
            peak = max(peak, cached_bytes())
    assert peak <= limit + 3 * sizes[-1]  # the limit plus the files held by the prefetch window
    final = cached_bytes()
    assert final <= limit
    assert not stream.skipped


def test_bad_samples_are_skipped_and_bad_metadata_stops(tmp_path):
    root = hub_layout(tmp_path / "remote", count=4)
    (root / "train/images/img001.png").write_bytes(b"not a png")
    (root / "train/images/img002.jpg").unlink()
    outside = tmp_path / "secret.jpg"
    Image.fromarray(gradient_image(64, 64)).save(outside)
    (root / "train/images/img003.png").unlink()
    (root / "train/images/img003.png").symlink_to(outside)
    stream = StreamingDataset(str(root), cache_dir=tmp_path / "cache", shuffle=False)
    assert [caption for _, caption in stream] == ["caption 0"]
    reasons = dict(stream.skipped)
    assert "not found" in reasons["train/images/img002.jpg"]
    assert "outside the dataset folder" in reasons["train/images/img003.png"]
    assert "not an image" in reasons["train/images/img001.png"] or "cannot" in reasons["train/images/img001.png"]
    strict = StreamingDataset(str(root), cache_dir=tmp_path / "cache", shuffle=False, strict=True)
    with pytest.raises(UserError, match="img001.png .metadata line 2."):
        list(strict)
    with open(root / "train/metadata.jsonl", "a") as handle:
        handle.write(json.dumps({"file_name": "../../secret.jpg", "text": "escape"}) + "\n")
    with pytest.raises(UserError, match=r"line 5: \.\./\.\./secret\.jpg leaves the dataset folder; refused"):
        StreamingDataset(str(root), cache_dir=tmp_path / "cache")
    with pytest.raises(UserError, match="rank 2 of world size 2"):
        StreamingDataset(str(root), cache_dir=tmp_path / "cache", rank=2, world_size=2)
    with pytest.raises(UserError, match="not a folder"):
        StreamingDataset("no such thing", cache_dir=tmp_path / "cache")


class FakeHub:
    """``/datasets/<repo>/resolve/<revision>/<path>`` as the hub answers it: images redirect to a CDN host."""

    def __init__(self, root: Path):
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.requests.append((self.headers.get("Host"), self.path, self.headers.get("Authorization")))
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                prefix = "/datasets/owner/set/resolve/main/"
                if path.startswith("/cdn/"):
                    target = root / path[len("/cdn/"):]
                elif path.startswith(prefix):
                    name = path[len(prefix):]
                    if name.startswith("train/images/"):  # large files live on another host
                        self.send_response(302)
                        self.send_header("Location", f"http://localhost:{hub.port}/cdn/{name}")
                        self.end_headers()
                        return
                    target = root / name
                else:
                    target = None
                if self.headers.get("Authorization") == "Bearer wrong":
                    self.send_response(401)
                    self.end_headers()
                    return
                if target is None or not target.is_file():
                    self.send_response(404)
                    self.end_headers()
                    return
                data = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_streaming_from_a_hub_stand_in(tmp_path, monkeypatch):
    root = hub_layout(tmp_path / "repo", count=4)
    (root / "train/images/img002.jpg").unlink()       # listed but absent: HTTP 404
    hub = FakeHub(root)
    monkeypatch.setenv("HF_TOKEN", "secret-token")
    try:
        stream = StreamingDataset("owner/set", cache_dir=tmp_path / "cache", endpoint=hub.url, shuffle=False)
        captions = [caption for _, caption in stream]
        assert captions == ["caption 0", "caption 1", "caption 3"]
        assert "HTTP 404" in dict(stream.skipped)["train/images/img002.jpg"]
        assert stream.cache.folder.name == "hub-owner--set-main"
        # the token goes to the hub, never to the host the hub redirects to
        to_hub = [auth for host, path, auth in hub.requests if path.startswith("/datasets/")]
        to_cdn = [auth for host, path, auth in hub.requests if path.startswith("/cdn/")]
        assert to_hub and all(auth == "Bearer secret-token" for auth in to_hub)
        assert to_cdn and all(auth is None for auth in to_cdn)
        # a second epoch reads the cache: no image is requested again
        before = len(hub.requests)
        assert [caption for _, caption in stream.epoch(1)] == ["caption 0", "caption 1", "caption 3"]
        assert all("/cdn/" not in path for _, path, _ in hub.requests[before:] if "img002" not in path)
        with pytest.raises(UserError, match="HTTP 401.*gated or private"):
            HubStore("owner/set", endpoint=hub.url, token="wrong").read_text("train/metadata.jsonl")
    finally:
        hub.close()
    unreachable = HubStore("owner/set", endpoint=hub.url, token="", retries=1, timeout=2)
    with pytest.raises(UserError, match="cannot reach .* after 2 tries; files already cached stay usable"):
        unreachable.read_text("train/metadata.jsonl")


def test_file_cache_drops_least_recently_used(tmp_path):
    cache = FileCache(tmp_path / "c", limit=250)

    def fetch(name, target):
        Path(target).write_bytes(b"x" * 100)

    for name in ("a", "b"):
        cache.get(name, fetch)
        cache.release(name)
    cache.get("a", fetch)       # a is used again: b is now the oldest
    cache.release("a")
    held = cache.get("c", fetch)  # over the limit: b goes, a stays
    assert held.is_file() and (tmp_path / "c" / "a").is_file() and not (tmp_path / "c" / "b").exists()
    with pytest.raises(UserError):
        FileCache(tmp_path / "d", limit=0)
