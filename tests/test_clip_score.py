"""CLIPScore: direct formula with a tiny open_clip model, properties, truncation, the a4k-eval scorer."""
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
    from metrics.clip_score import clip_score_from_embeddings

    e = torch.randn(4, 16)
    assert torch.allclose(clip_score_from_embeddings(e, e), torch.full((4,), 100.0, dtype=torch.float64))
    assert torch.allclose(clip_score_from_embeddings(e, 3.5 * e), torch.full((4,), 100.0, dtype=torch.float64))
    x, y = torch.eye(16)[:4], torch.eye(16)[4:8]
    assert torch.equal(clip_score_from_embeddings(x, y), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(clip_score_from_embeddings(e, -e), torch.zeros(4, dtype=torch.float64))   # clipped at 0


def test_matches_direct_formula(checkpoint):
    from metrics.clip_score import CLIPScore

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
    assert metric.last_scores.shape == (5,)
    assert int(metric.truncated) == 0


def test_batch_size_and_update_split_do_not_change_the_result(checkpoint):
    from metrics.clip_score import CLIPScore

    pictures = images(5, seed=3)
    one = CLIPScore(TINY_CLIP, checkpoint=checkpoint, batch_size=1)
    one.update(pictures, CAPTIONS)
    many = CLIPScore(TINY_CLIP, checkpoint=checkpoint, batch_size=8)
    many.update(pictures[:2], CAPTIONS[:2])
    many.update(pictures[2:], CAPTIONS[2:])
    assert float(one.compute()) == pytest.approx(float(many.compute()), abs=1e-5)


def test_long_captions_are_truncated_keeping_eot_and_counted(checkpoint):
    from metrics.clip_score import CLIPScore

    metric = CLIPScore(TINY_CLIP, checkpoint=checkpoint)
    tokenizer = metric.clip.tokenizer
    tokens = tokenizer([LONG_CAPTION, CAPTIONS[0]])
    assert tokens.shape[1] == 77
    assert int(tokens[0, -1]) == tokenizer.eot_token_id          # end-of-text kept on the cut caption
    assert tokenizer.eot_token_id in tokens[1].tolist()
    metric.update(images(2), [LONG_CAPTION, CAPTIONS[0]])
    assert int(metric.truncated) == 1
    assert metric.last_truncated == [True, False]


def test_bad_input_is_a_user_error(checkpoint):
    from metrics.clip_score import CLIPScore

    metric = CLIPScore(TINY_CLIP, checkpoint=checkpoint)
    with pytest.raises(UserError, match="2 images but 1 captions"):
        metric.update(images(2), ["only one"])
    with pytest.raises(UserError, match="uint8"):
        metric.update([np.zeros((8, 8, 3), np.float32)], ["x"])


def test_scorer_end_to_end_and_unavailable(checkpoint, tmp_path, monkeypatch):
    from aesthetic4k.scorers.clip import CLIPScoreScorer
    from aesthetic4k.scoring import Item, MetricUnavailable, ScoringOptions

    monkeypatch.setenv("A4K_" + WEIGHT.upper().replace("-", "_"), str(checkpoint))   # env source
    scorer = CLIPScoreScorer(ScoringOptions(clip_model=TINY_CLIP, batch_size=2))
    items = [Item(stem=f"s{i}", prompt=p, reference_path=None, image=im)
             for i, (p, im) in enumerate(zip(CAPTIONS[:2] + [LONG_CAPTION], images(3)))]
    rows = scorer.add(items)
    assert [r["clip_truncated"] for r in rows] == [0, 0, 1]
    result = scorer.result()
    assert result["clip_truncated"] == 1
    assert result["clip_score"] == pytest.approx(np.mean([r["clip_score"] for r in rows]))
    settings = scorer.settings()
    assert settings["clip_model"] == TINY_CLIP and settings["clip_weights"].startswith("env ")
    with pytest.raises(UserError, match="needs a prompt"):
        scorer.add([Item(stem="x", prompt=None, reference_path=None, image=images(1)[0])])

    # the real model without its weights: a clear "unavailable", no download attempt
    for var in ("A4K_CLIP_B16", "A4K_ALLOW_DOWNLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MetricUnavailable, match=r"^unavailable: clip-vit-b-16 weights not found.*A4K_CLIP_B16"):
        CLIPScoreScorer(ScoringOptions())
