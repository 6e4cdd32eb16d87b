"""The network paths end to end against a stand-in hub on 127.0.0.1 (tests/hub_server.py).

A served file downloads into the cache and loads (weights, the dataset, pipelines); a missing
repository or file is one line naming them; an unreachable endpoint (a refused port, or one
that accepts and never answers) fails after one short try, without retries. The time bounds
asserted here are hang guards, not speed tests.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aesthetic4k_metrics import network, weights
from aesthetic4k_metrics.errors import UserError, WeightUnavailable
from tests.hub_server import HubStandIn, SilentEndpoint, pointed_at, refused_endpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 20      # generous: only catches hangs and retry storms (the timeout here is 2 s)
TIMEOUT_S = "2"
DATASET = "zhang0jhon/Aesthetic-4K"


@pytest.fixture
def hermetic(tmp_path, monkeypatch):
    """Empty caches, downloads allowed, no weight variables, a 2 s network timeout."""
    from huggingface_hub import constants

    for spec in weights.SPECS.values():
        monkeypatch.delenv(spec.env, raising=False)
    for var in ("A4K_ALLOW_DOWNLOAD", "A4K_OFFLINE", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "a4k"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("A4K_NET_TIMEOUT", TIMEOUT_S)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # read once, at import
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    network.forget_unreachable()
    yield tmp_path
    network.forget_unreachable()


@pytest.fixture
def hub(hermetic):
    with HubStandIn() as stand_in, pointed_at(stand_in.endpoint):
        yield stand_in


def one_line(message: str) -> str:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    return message


def hub_spec(name: str, repo: str) -> weights.WeightSpec:
    """A hub weight like the CLIP ones, for a test repository."""
    return weights.WeightSpec(name, "test weight", "A4K_TEST_" + name.upper().replace("-", "_"),
                              hf_hub=(repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")))


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# -- weights from the hub -------------------------------------------------------------------------

def test_allow_download_fetches_a_hub_weight_that_the_metric_loads(hub, tiny_clips, monkeypatch, tmp_path):
    """a4k-eval --allow-download: the weight comes from the hub into its cache; the score equals --weights."""
    from aesthetic4k.cli.eval import main

    model, checkpoint = tiny_clips["clip_score"]
    name = weights.clip_weight_name(model)
    monkeypatch.setitem(weights.SPECS, name, hub_spec(name, "a4k-tests/tiny-clip"))
    # only the second file name exists: the first is asked for, then the second is downloaded
    hub.add("a4k-tests/tiny-clip", {"open_clip_pytorch_model.bin": checkpoint.read_bytes(), "README.md": "tiny"})
    common = ["--no-progress", "--workers", "1", "--generator", "tests.plugin_generators:Solid",
              "--dataset", "sample", "--size", "256", "--limit", "3", "--metrics", "clip_score",
              "--clip-model", model]
    assert main([*common, "--allow-download", "--out", str(tmp_path / "hub.csv")]) == 0
    cached = weights.resolve(name, allow_download=False)         # now in the Hugging Face cache
    assert cached.source.startswith("cache hf://a4k-tests/tiny-clip")
    assert cached.path.read_bytes() == checkpoint.read_bytes()
    assert str(cached.path).startswith(str(tmp_path / "hf"))
    assert hub.count("GET", "/cdn/") == 1                         # the bytes were fetched once
    asked = len(hub.requests)
    assert main([*common, "--weights", f"{name}={checkpoint}", "--out", str(tmp_path / "local.csv")]) == 0
    assert main([*common, "--allow-download", "--out", str(tmp_path / "again.csv")]) == 0
    assert len(hub.requests) == asked                             # the cached copy is used without asking
    (downloaded,), (local,), (again,) = (read_rows(tmp_path / f) for f in ("hub.csv", "local.csv", "again.csv"))
    assert downloaded["clip_score"] != "" and downloaded["clip_score"] == local["clip_score"] == again["clip_score"]


@pytest.mark.parametrize("case", ["missing file", "missing repository"])
def test_missing_hub_weight_names_the_repository_and_files(hub, monkeypatch, case, capsys, tmp_path):
    from aesthetic4k.cli.eval import main

    hub.add("a4k-tests/other-files", {"README.md": "no weights here"})
    repo = "a4k-tests/other-files" if case == "missing file" else "a4k-tests/no-such-repo"
    monkeypatch.setitem(weights.SPECS, "clip-vit-b-16", hub_spec("clip-vit-b-16", repo))
    with pytest.raises(WeightUnavailable) as caught:
        weights.resolve("clip-vit-b-16", allow_download=True)
    message = one_line(str(caught.value))
    assert repo in message and hub.endpoint in message
    if case == "missing file":
        assert "has none of open_clip_model.safetensors, open_clip_pytorch_model.bin" in message
    else:
        assert "does not exist" in message and "open_clip_model.safetensors" in message
    assert "weights={'clip-vit-b-16': PATH}" in message and "allow_download" not in message

    # the same through a4k-eval: the metric was asked for, so the run stops with exit 2 and one line
    status = main(["--no-progress", "--generator", "tests.plugin_generators:Solid", "--dataset", "sample",
                   "--size", "256", "--limit", "1", "--metrics", "clip_score", "--allow-download",
                   "--out", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and repo in one_line(err) and not (tmp_path / "r.csv").exists()


def test_without_allow_download_the_message_names_the_hub_repository(hermetic, monkeypatch):
    monkeypatch.setattr(network, "check_hub_file", lambda *a, **k: pytest.fail("the hub was asked"))
    with pytest.raises(WeightUnavailable) as caught:
        weights.resolve("clip-vit-b-16")
    message = one_line(str(caught.value))
    assert "allow_download=True" in message and "hub repository timm/vit_base_patch16_clip_224.openai" in message
    from aesthetic4k.cli.common import in_command_terms

    shown = in_command_terms(message)           # what a command prints: the flags
    assert "--allow-download" in shown and "--weights clip-vit-b-16=PATH" in shown and "allow_download=True" not in shown


def test_unreachable_hub_fails_after_one_short_try(hermetic, monkeypatch):
    for name in ("clip-vit-b-16", "clip-vit-l-14"):
        monkeypatch.setitem(weights.SPECS, name, hub_spec(name, f"a4k-tests/{name}"))
    with refused_endpoint() as url, pointed_at(url):
        started = time.monotonic()
        with pytest.raises(WeightUnavailable, match="cannot be reached") as caught:
            weights.resolve("clip-vit-b-16", allow_download=True)
        message = one_line(str(caught.value))
        assert url in message and "hub repository a4k-tests/clip-vit-b-16" in message
        assert time.monotonic() - started < HANG_GUARD_S
    network.forget_unreachable()
    with SilentEndpoint() as silent, pointed_at(silent.url):
        started = time.monotonic()
        for name in ("clip-vit-b-16", "clip-vit-l-14"):
            with pytest.raises(WeightUnavailable, match=f"did not answer within {TIMEOUT_S} s") as caught:
                weights.resolve(name, allow_download=True)
            assert f"a4k-tests/{name}" in one_line(str(caught.value))
        assert time.monotonic() - started < HANG_GUARD_S
        # one connection for both weights and both file names: no retries, and the address that
        # did not answer is not asked again
        assert silent.connections == 1


def test_a_hub_that_is_down_is_asked_once(hub, monkeypatch):
    """huggingface_hub alone retries 5xx answers five times with back-off; the toolkit asks once."""
    monkeypatch.setitem(weights.SPECS, "clip-vit-b-16", hub_spec("clip-vit-b-16", "a4k-tests/tiny-clip"))
    hub.fail_with = 503
    with pytest.raises(WeightUnavailable, match="answered HTTP 503") as caught:
        weights.resolve("clip-vit-b-16", allow_download=True)
    one_line(str(caught.value))
    assert len(hub.requests) == 1


# -- weights from a URL ---------------------------------------------------------------------------

@pytest.fixture
def head_bytes(tmp_path):
    """A random aesthetic head in the published file format."""
    import torch

    from aesthetic4k_metrics.aesthetics import AestheticHead

    torch.manual_seed(0)
    path = tmp_path / "head.pth"
    torch.save(AestheticHead(embed_dim=768).state_dict(), path)
    return path.read_bytes()


def test_url_weight_is_downloaded_verified_cached_and_loaded(hub, head_bytes, monkeypatch):
    import torch

    from aesthetic4k_metrics.aesthetics import resolve_head
    from aesthetic4k_metrics.settings import MetricSettings

    url = hub.serve_url("files/head.pth", head_bytes)
    spec = dataclasses.replace(weights.SPECS["aesthetic-head"], url=url,
                               sha256=hashlib.sha256(head_bytes).hexdigest())
    monkeypatch.setitem(weights.SPECS, "aesthetic-head", spec)
    head = resolve_head(MetricSettings(allow_download=True))
    target = weights.weights_cache() / spec.cache_files[0]
    assert target.read_bytes() == head_bytes
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]      # no partial files left
    expected = torch.load(target, map_location="cpu", weights_only=True)
    assert all(torch.equal(value, expected[key]) for key, value in head.state_dict().items())
    assert weights.resolve("aesthetic-head").source == f"cache {target}"         # later runs: no network
    assert hub.count(contains="/files/") == 1


def test_url_weight_with_wrong_bytes_is_refused_and_not_kept(hub, head_bytes, monkeypatch):
    url = hub.serve_url("files/head.pth", head_bytes[:-1] + b"!")
    spec = dataclasses.replace(weights.SPECS["aesthetic-head"], url=url,
                               sha256=hashlib.sha256(head_bytes).hexdigest())
    monkeypatch.setitem(weights.SPECS, "aesthetic-head", spec)
    with pytest.raises(WeightUnavailable, match=r"sent a file with sha256 .*not the published one") as caught:
        weights.resolve("aesthetic-head", allow_download=True)
    assert url in one_line(str(caught.value))
    assert not weights.weights_cache().exists() or list(weights.weights_cache().iterdir()) == []


def test_url_weight_missing_or_unreachable_is_one_line(hub, monkeypatch):
    spec = weights.SPECS["aesthetic-head"]
    missing = f"{hub.endpoint}/files/no-such-head.pth"
    monkeypatch.setitem(weights.SPECS, "aesthetic-head", dataclasses.replace(spec, url=missing))
    with pytest.raises(WeightUnavailable, match="answered HTTP 404") as caught:
        weights.resolve("aesthetic-head", allow_download=True)
    assert missing in one_line(str(caught.value))
    with refused_endpoint() as url, SilentEndpoint() as silent:
        for base, reason in ((url, "cannot be reached"), (silent.url, f"did not answer within {TIMEOUT_S} s")):
            monkeypatch.setitem(weights.SPECS, "aesthetic-head", dataclasses.replace(spec, url=f"{base}/head.pth"))
            started = time.monotonic()
            with pytest.raises(WeightUnavailable, match=reason) as caught:
                weights.resolve("aesthetic-head", allow_download=True)
            assert base in one_line(str(caught.value)) and time.monotonic() - started < HANG_GUARD_S
        assert silent.connections == 1


def test_url_body_shorter_than_announced_is_a_failure(hermetic):
    """A connection that ends early: http.client would return the short body without a word."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer_short():
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        connection.close()

    threading.Thread(target=answer_short, daemon=True).start()
    with open(hermetic / "out.bin", "wb") as out, pytest.raises(network.DownloadFailed, match="10 of 100 bytes"):
        network.fetch_url(f"http://127.0.0.1:{listener.getsockname()[1]}/file", out)
    listener.close()


# -- the dataset: a4k-data download ---------------------------------------------------------------

def publish_dataset(hub: HubStandIn, sizes=(2048,)) -> dict:
    """A tiny Aesthetic-4K in the published layout: two eval images per size and a train split."""
    import io

    from PIL import Image

    def jpeg(colour):
        buffer = io.BytesIO()
        Image.new("RGB", (32, 24), colour).save(buffer, "JPEG", quality=95)
        return buffer.getvalue()

    captions = {"images/0001.jpg": "a harbour at dawn", "images/0002.jpg": "a red door in the snow"}
    files = {"README.md": "tiny stand-in", "train/metadata.jsonl": '{"file_name": "images/t.jpg", "text": "t"}\n',
             "train/images/t.jpg": jpeg((0, 0, 0))}
    for size in sizes:
        lines = "".join(json.dumps({"file_name": f, "text": t}) + "\n" for f, t in captions.items())
        files[f"eval/size_{size}/metadata.jsonl"] = lines
        for index, name in enumerate(captions):
            files[f"eval/size_{size}/{name}"] = jpeg((index * 90, 40, 200))
    hub.add(DATASET, files, kind="dataset")
    return captions


def run_cli(module: str, args, endpoint: str, home: Path, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "A4K_"))}
    environment.update(HF_ENDPOINT=endpoint, HF_HOME=str(home / "hf_home"), A4K_CACHE=str(home / "a4k"),
                       A4K_NET_TIMEOUT=TIMEOUT_S, PYTHONPATH=str(REPO_ROOT), **env)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)
    return done, time.monotonic() - started


def test_a4k_data_download_fetches_one_split_that_open_dataset_loads(hub, tmp_path):
    from aesthetic4k.data import open_dataset

    captions = publish_dataset(hub, sizes=(2048, 4096))
    done, _ = run_cli("aesthetic4k.cli.data", ["download", "--split", "eval", "--size", "2048"], hub.endpoint, tmp_path)
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.is_dir() and str(folder).startswith(str(tmp_path / "hf_home" / "hub"))
    assert folder.parts[-2:] == ("eval", "size_2048")
    dataset = open_dataset(str(folder), size=2048)
    assert {r.prompt for r in dataset.records()} == set(captions.values())
    from PIL import Image

    for record in dataset.records():
        with Image.open(record.image_path) as image:
            assert image.size == (32, 24)
    fetched = [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]
    assert fetched and all("/eval/size_2048/" in path for path in fetched)      # only the requested split

    # offline afterwards: the cached split, without asking the hub
    asked = len(hub.requests)
    done, _ = run_cli("aesthetic4k.cli.data", ["download", "--split", "eval", "--size", "2048"], hub.endpoint,
                      tmp_path, HF_HUB_OFFLINE="1")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip().splitlines()[-1]) == folder and len(hub.requests) == asked


@pytest.mark.parametrize("case", ["missing split", "missing repository", "refused", "silent"])
def test_a4k_data_download_failures_are_one_line_naming_repository_and_file(hub, tmp_path, case):
    if case != "missing repository":
        publish_dataset(hub, sizes=(2048,))
    with refused_endpoint() as refused, SilentEndpoint() as silent:
        endpoint = {"refused": refused, "silent": silent.url}.get(case, hub.endpoint)
        done, elapsed = run_cli("aesthetic4k.cli.data", ["download", "--split", "eval", "--size", "4096"],
                                endpoint, tmp_path)
        # the toolkit's one try, and huggingface_hub's own once-a-day request for its agent list
        # (3 s timeout, skipped with HF_HUB_DISABLE_TELEMETRY=1)
        assert silent.connections <= 2
    assert done.returncode == 2 and elapsed < HANG_GUARD_S
    err = one_line(done.stderr)
    assert err.startswith("a4k-data: error: ") and DATASET in err and "eval/size_4096" in err
    expected = {"missing split": "has no file eval/size_4096/metadata.jsonl", "missing repository": "does not exist",
                "refused": "cannot be reached", "silent": f"did not answer within {TIMEOUT_S} s"}[case]
    assert expected in err and endpoint in err


# -- pipelines: diffusers:<hub id> and flux-4k:<hub id> -------------------------------------------

@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory):
    from tests.tiny_pipelines import save_tiny_flux

    return save_tiny_flux(tmp_path_factory.mktemp("tiny-flux") / "flux")


@pytest.mark.parametrize("generator", ["diffusers", "flux-4k"])
def test_hub_pipeline_is_downloaded_and_generates(hub, tiny_flux, tmp_path, generator, monkeypatch):
    from aesthetic4k.cli.eval import main

    hub.add_folder("a4k-tests/tiny-flux", tiny_flux)
    args = ["--no-progress", "--workers", "1", "--generator", f"{generator}:a4k-tests/tiny-flux",
            "--dataset", "sample", "--size", "256", "--limit", "1", "--steps", "2", "--vae", "f8",
            "--metrics", "glcm_score,compression_ratio"]
    assert main([*args, "--images-out", str(tmp_path / "gen"), "--out", str(tmp_path / "r.csv")]) == 0
    (row,) = read_rows(tmp_path / "r.csv")
    assert row["n_images"] == "1" and len(list((tmp_path / "gen").glob("*.jpg"))) == 1
    assert hub.count("GET", "/model_index.json") >= 1 and hub.count("GET", "/cdn/") >= 1
    # the second time the cached copy loads, offline, without asking the hub
    asked = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main([*args, "--images-out", str(tmp_path / "gen2"), "--out", str(tmp_path / "r2.csv")]) == 0
    assert len(hub.requests) == asked


@pytest.mark.parametrize("case", ["missing repository", "missing model_index.json", "refused", "silent"])
def test_hub_pipeline_failures_are_one_line(hub, tiny_flux, case, capsys, tmp_path):
    from aesthetic4k.cli.eval import main
    from aesthetic4k.families.loading import load_base_vae, load_pipeline

    files = {p.relative_to(tiny_flux).as_posix(): p.read_bytes() for p in tiny_flux.rglob("*") if p.is_file()}
    files.pop("model_index.json")
    hub.add("a4k-tests/no-index", files)
    repo = "a4k-tests/no-index" if case == "missing model_index.json" else "a4k-tests/nothing-here"
    with refused_endpoint() as refused, SilentEndpoint() as silent:
        endpoint = {"refused": refused, "silent": silent.url}.get(case, hub.endpoint)
        with pointed_at(endpoint):
            started = time.monotonic()
            with pytest.raises(UserError) as caught:
                load_pipeline(repo)
            message = one_line(str(caught.value))
            assert repo in message and endpoint in message and f"hf download {repo}" in message
            expected = {"missing repository": "does not exist",
                        "missing model_index.json": "has no file model_index.json",
                        "refused": "cannot be reached", "silent": f"did not answer within {TIMEOUT_S} s"}[case]
            assert expected in message
            if case != "missing model_index.json":
                with pytest.raises(UserError, match=expected):
                    load_base_vae(repo)
            status = main(["--no-progress", "--generator", f"flux-4k:{repo}", "--dataset", "sample", "--size", "256",
                           "--limit", "1", "--metrics", "glcm_score", "--out", str(tmp_path / "r.csv")])
            assert time.monotonic() - started < HANG_GUARD_S
        assert silent.connections <= 1
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and repo in err[-1] and expected in err[-1] and not (tmp_path / "r.csv").exists()
