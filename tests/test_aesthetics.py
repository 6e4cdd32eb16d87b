"""Aesthetics: the real LAION head file, the head against a direct computation, a tiny CLIP end to end."""

import numpy as np
import pytest
import torch

from aesthetic4k.errors import UserError
from tests.tiny_clip import TINY_CLIP_768, register_tiny_models, save_random_checkpoint

open_clip = pytest.importorskip("open_clip")

from tests.conftest import AESTHETIC_HEAD as HEAD_FILE  # noqa: E402
needs_head = pytest.mark.skipif(not HEAD_FILE.is_file(), reason=f"real aesthetic head not found at {HEAD_FILE}")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_clip_768")
    register_tiny_models(folder)
    return save_random_checkpoint(TINY_CLIP_768, folder / "tiny768.pt", seed=2)


def direct_head(state, embeddings):
    """The MLP written out: five affine maps, no activations (dropout is off at inference)."""
    x = embeddings.double()
    for index in (0, 2, 4, 6, 7):
        x = x @ state[f"layers.{index}.weight"].double().T + state[f"layers.{index}.bias"].double()
    return x.squeeze(-1)


@needs_head
def test_real_head_has_expected_keys_digest_and_gives_finite_scores():
    from aesthetic4k_metrics.weights import resolve
    from aesthetic4k_metrics.aesthetics import HEAD_KEYS, load_aesthetic_head

    resolved = resolve("aesthetic-head", str(HEAD_FILE))       # explicit path: sha256 checked
    assert resolved.path == HEAD_FILE and resolved.source.startswith("path ")
    state = torch.load(HEAD_FILE, map_location="cpu", weights_only=True)
    assert set(state) == HEAD_KEYS
    head = load_aesthetic_head(HEAD_FILE)
    embeddings = torch.nn.functional.normalize(torch.randn(3, 768, generator=torch.Generator().manual_seed(0)), dim=-1)
    with torch.no_grad():
        scores = head(embeddings)
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    assert torch.allclose(scores.double(), direct_head(state, embeddings), atol=1e-5)


@needs_head
def test_tiny_clip_with_real_head_end_to_end(checkpoint):
    from aesthetic4k_metrics.aesthetics import Aesthetics

    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8) for i in range(3)]
    metric = Aesthetics(TINY_CLIP_768, checkpoint=checkpoint, head=HEAD_FILE, batch_size=2)
    metric.update(pictures[:2])
    metric.update(pictures[2:])
    ours = float(metric.compute())
    assert np.isfinite(ours)

    # reference: open_clip directly, L2-normalised embedding, head written out
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP_768, pretrained=str(checkpoint))
    model.eval()
    from PIL import Image

    with torch.no_grad():
        embeddings = model.encode_image(torch.stack([preprocess(Image.fromarray(p)) for p in pictures]))
    embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True)
    state = torch.load(HEAD_FILE, map_location="cpu", weights_only=True)
    assert ours == pytest.approx(direct_head(state, embeddings).mean().item(), abs=1e-4)


@needs_head
def test_from_settings_resolves_weights_and_reports(checkpoint, tmp_path, monkeypatch):
    from aesthetic4k_metrics.aesthetics import Aesthetics
    from aesthetic4k_metrics.errors import MetricUnavailable
    from aesthetic4k_metrics.settings import MetricSettings

    settings = MetricSettings(weights={"clip-" + TINY_CLIP_768.lower(): str(checkpoint),
                                       "aesthetic-head": str(HEAD_FILE)}, aesthetics_model=TINY_CLIP_768)
    metric = Aesthetics.from_settings(settings)
    assert metric.precision == "fp32"                      # the CPU default
    image = np.full((64, 64, 3), 128, np.uint8)
    metric.update(features=metric.extract([image]))
    (value,) = metric.per_image_values()["aesthetics"]
    assert np.isfinite(value) and metric.summary()["aesthetics"] == pytest.approx(value)
    assert metric.provenance()["aesthetics_precision"] == "fp32"

    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("A4K_AESTHETIC_HEAD", raising=False)
    monkeypatch.delenv("A4K_ALLOW_DOWNLOAD", raising=False)
    del settings.weights["aesthetic-head"]
    with pytest.raises(MetricUnavailable, match=r"aesthetic-head weights not found.*A4K_AESTHETIC_HEAD"):
        Aesthetics.from_settings(settings)


@needs_head
def test_fp16_precision_is_the_upstream_computation(checkpoint):
    """fp16: half-precision CLIP, embedding normalised in numpy float16, then the float32 head (upstream)."""
    from PIL import Image

    from aesthetic4k_metrics.aesthetics import Aesthetics

    pictures = [np.random.default_rng(i).integers(0, 256, (56, 72, 3), dtype=np.uint8) for i in range(3)]
    half = Aesthetics(TINY_CLIP_768, checkpoint=checkpoint, head=HEAD_FILE, precision="fp16")
    half.update(pictures)
    full = Aesthetics(TINY_CLIP_768, checkpoint=checkpoint, head=HEAD_FILE, precision="fp32")
    full.update(pictures)

    # reference: the upstream steps written out with open_clip in half precision
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP_768, pretrained=str(checkpoint),
                                                                 precision="fp16")
    model.eval()
    with torch.no_grad():
        batch = torch.stack([preprocess(Image.fromarray(p)) for p in pictures]).half()
        embedding = model.encode_image(batch).numpy()                  # float16
    norm = np.linalg.norm(embedding, 2, axis=-1)
    normalised = torch.from_numpy(embedding / norm[:, None]).float()
    state = torch.load(HEAD_FILE, map_location="cpu", weights_only=True)
    expected = direct_head(state, normalised)
    assert torch.allclose(half.per_image(), expected, atol=1e-6)
    # the two precisions differ, by little (measured on this tiny model: about 1e-3)
    difference = (half.per_image() - full.per_image()).abs().max().item()
    assert 0 < difference < 0.05


def test_wrong_head_files_are_rejected(tmp_path):
    from aesthetic4k_metrics.weights import WeightUnavailable, resolve
    from aesthetic4k_metrics.aesthetics import load_aesthetic_head

    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(1, 768)}, other)
    with pytest.raises(UserError, match="not the LAION aesthetic head"):
        load_aesthetic_head(other)
    with pytest.raises(WeightUnavailable, match="sha256"):
        resolve("aesthetic-head", str(other))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="cannot read the aesthetic head"):
        load_aesthetic_head(garbage)


def test_head_width_must_match_clip_embedding(tmp_path):
    from aesthetic4k_metrics.aesthetics import AestheticHead, Aesthetics
    from tests.tiny_clip import TINY_CLIP

    register_tiny_models(tmp_path)
    small = save_random_checkpoint(TINY_CLIP, tmp_path / "tiny64.pt")     # 64-d embeddings
    with pytest.raises(UserError, match="768-d CLIP embeddings"):
        Aesthetics(TINY_CLIP, checkpoint=small, head=AestheticHead(768))
