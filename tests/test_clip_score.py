"""CLIPScore: direct formula with a tiny open_clip model, properties, truncation, the a4k-eval scorer."""
from pathlib import Path

import numpy as np
import pytest
import torch

from aesthetic4k.errors import UserError
from tests.tiny_clip import TINY_CLIP, register_tiny_models, save_random_checkpoint

open_clip = pytest.importorskip("open_clip")

WEIGHT = "clip-" + TINY_CLIP.lower()
CAPTIONS = ["a red fox in the snow", "a city street at night with neon signs",
            "a bowl of fruit on a wooden table", "mountains under a clear blue sky", "a small boat on a lake"]
LONG_CAPTION = " ".join(["a very detailed photograph of a crowded harbour with many colourful boats"] * 12)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_clip")
    register_tiny_models(folder)
    return save_random_checkpoint(TINY_CLIP, folder / "tiny.pt", seed=1)


def images(count, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(48, 64), (40, 40), (90, 50)]
    return [rng.integers(0, 256, (*shapes[i % 3], 3), dtype=np.uint8) for i in range(count)]


def test_embedding_properties():
    from aesthetic4k_metrics.clip_score import clip_score_from_embeddings

    e = torch.randn(4, 16)
    assert torch.allclose(clip_score_from_embeddings(e, e), torch.full((4,), 100.0, dtype=torch.float64))
    assert torch.allclose(clip_score_from_embeddings(e, 3.5 * e), torch.full((4,), 100.0, dtype=torch.float64))
    x, y = torch.eye(16)[:4], torch.eye(16)[4:8]
    assert torch.equal(clip_score_from_embeddings(x, y), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(clip_score_from_embeddings(e, -e), torch.zeros(4, dtype=torch.float64))   # clipped at 0


def test_matches_direct_formula(checkpoint):
    from aesthetic4k_metrics.clip_score import CLIPScore

    pictures = images(5)
    metric = CLIPScore(TINY_CLIP, checkpoint=checkpoint, batch_size=2)
    metric.update(pictures, CAPTIONS)
    ours = float(metric.compute())

    # reference: open_clip used directly, the formula written out
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP, pretrained=str(checkpoint))
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_CLIP)
    from PIL import Image

    with torch.no_grad():
        image_features = model.encode_image(torch.stack([preprocess(Image.fromarray(p)) for p in pictures]))
        text_features = model.encode_text(tokenizer(CAPTIONS))
    cosine = torch.nn.functional.cosine_similarity(image_features.double(), text_features.double(), dim=-1)
    expected = (100 * cosine.clamp(min=0)).mean().item()
    assert ours == pytest.approx(expected, abs=1e-4)
    assert metric.per_image().shape == (5,)
    assert metric.summary()["clip_truncated"] == 0


def test_batch_size_and_update_split_do_not_change_the_result(checkpoint):
    from aesthetic4k_metrics.clip_score import CLIPScore

    pictures = images(5, seed=3)
    one = CLIPScore(TINY_CLIP, checkpoint=checkpoint, batch_size=1)
    one.update(pictures, CAPTIONS)
    many = CLIPScore(TINY_CLIP, checkpoint=checkpoint, batch_size=8)
    many.update(pictures[:2], CAPTIONS[:2])
    many.update(pictures[2:], CAPTIONS[2:])
    assert float(one.compute()) == pytest.approx(float(many.compute()), abs=1e-5)


def test_long_captions_are_truncated_keeping_eot_and_counted(checkpoint):
    from aesthetic4k_metrics.clip_score import CLIPScore

    metric = CLIPScore(TINY_CLIP, checkpoint=checkpoint)
    tokenizer = metric.clip.tokenizer
    tokens = tokenizer([LONG_CAPTION, CAPTIONS[0]])
    assert tokens.shape[1] == 77
    assert int(tokens[0, -1]) == tokenizer.eot_token_id          # end-of-text kept on the cut caption
    assert tokenizer.eot_token_id in tokens[1].tolist()
    metric.update(images(2), [LONG_CAPTION, CAPTIONS[0]])
    assert metric.summary()["clip_truncated"] == 1
    assert metric.per_image_values()["clip_truncated"] == [1, 0]


def test_bad_input_is_a_user_error(checkpoint):
    from aesthetic4k_metrics.clip_score import CLIPScore

    metric = CLIPScore(TINY_CLIP, checkpoint=checkpoint)
    with pytest.raises(UserError, match="2 images but 1 captions"):
        metric.update(images(2), ["only one"])
    with pytest.raises(UserError, match="uint8"):
        metric.update([np.zeros((8, 8, 3), np.float32)], ["x"])


def test_from_settings_features_and_unavailable(checkpoint, tmp_path, monkeypatch):
    from aesthetic4k_metrics.clip_score import CLIPScore
    from aesthetic4k_metrics.errors import MetricUnavailable
    from aesthetic4k_metrics.settings import MetricSettings

    monkeypatch.setenv("A4K_" + WEIGHT.upper().replace("-", "_"), str(checkpoint))   # env source
    metric = CLIPScore.from_settings(MetricSettings(clip_model=TINY_CLIP, batch_size=2))
    pictures, captions = images(3), CAPTIONS[:2] + [LONG_CAPTION]
    features = metric.extract(pictures)                       # what a run caches per image
    assert len(features) == 3 and features[0].shape[0] == 1
    metric.update(features=features, texts=captions)
    direct = CLIPScore(TINY_CLIP, checkpoint=checkpoint)
    direct.update(pictures, captions)
    assert torch.allclose(metric.per_image(), direct.per_image(), atol=1e-6)
    assert metric.per_image_values()["clip_truncated"] == [0, 0, 1]
    summary = metric.summary()
    assert summary["clip_truncated"] == 1 and summary["clip_score"] == pytest.approx(float(direct.compute()))
    assert metric.provenance()["clip_model"] == TINY_CLIP and repr(metric) == f"CLIPScore(model_name='{TINY_CLIP}')"
    with pytest.raises(UserError, match="caption"):
        metric.update(features=features[:1], texts=[None])

    # the real model without its weights: a short reason for the row, the how-to in the message
    for var in ("A4K_CLIP_B16", "A4K_ALLOW_DOWNLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MetricUnavailable, match=r"clip-vit-b-16 weights not found.*A4K_CLIP_B16") as caught:
        CLIPScore.from_settings(MetricSettings())
    assert caught.value.short == "no weights"


def test_input_conventions_match_torchmetrics(checkpoint):
    """uint8 arrays, (3, H, W) / (N, 3, H, W) tensors, floats in [0, 1] with normalize=True, files: one score."""
    from PIL import Image

    from aesthetic4k_metrics.clip_score import CLIPScore

    pictures = [p[:40, :40] for p in images(2, seed=5)]
    reference = CLIPScore(TINY_CLIP, checkpoint=checkpoint)
    reference.update(pictures, CAPTIONS[:2])
    tensors = [torch.from_numpy(p).permute(2, 0, 1) for p in pictures]
    as_floats = CLIPScore(TINY_CLIP, checkpoint=checkpoint, normalize=True)
    # x / 255 then (x * 255) truncated to uint8 gives x back exactly for every x in 0..255
    as_floats.update(torch.stack(tensors).double() / 255, CAPTIONS[:2])
    as_list = CLIPScore(TINY_CLIP, checkpoint=checkpoint)
    as_list.update(tensors, CAPTIONS[:2])
    files = []
    for i, p in enumerate(pictures):
        files.append(str(Path(checkpoint).parent / f"p{i}.png"))
        Image.fromarray(p).save(files[-1])
    as_files = CLIPScore(TINY_CLIP, checkpoint=checkpoint)
    as_files.update(files, CAPTIONS[:2])
    for other in (as_floats, as_list, as_files):
        assert torch.equal(other.per_image(), reference.per_image())
    with pytest.raises(UserError, match="normalize=True"):
        CLIPScore(TINY_CLIP, checkpoint=checkpoint).update(torch.stack(tensors).float() / 255, CAPTIONS[:2])
