"""CLIPScore (PROTOCOL.md s6): per image ``100 * max(cos(image, text), 0)``, averaged over images.

Default model: open_clip ``ViT-B-16`` with OpenAI weights, the network torchmetrics used through
``openai/clip-vit-base-patch16``. Captions longer than the context (77 tokens) are truncated by
open_clip's tokenizer, which keeps the end-of-text token (torchmetrics drops it and the score
collapses); truncated captions are counted and reported. Longer-context open_clip models can be
chosen by name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torchmetrics import Metric

from metrics.errors import UserError
from metrics.clip_model import LoadedClip, default_clip, image_embeddings


def clip_score_from_embeddings(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
    """Per-pair ``100 * max(cos, 0)`` of (N, D) image and text embeddings (any scale)."""
    image_embeddings = torch.nn.functional.normalize(image_embeddings.double(), dim=-1)
    text_embeddings = torch.nn.functional.normalize(text_embeddings.double(), dim=-1)
    return 100.0 * (image_embeddings * text_embeddings).sum(dim=-1).clamp(min=0)


def caption_token_count(tokenizer, text: str) -> Optional[int]:
    """Tokens a caption needs including start/end tokens, or None when the tokenizer cannot say."""
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "sot_token_id"):
        return len(tokenizer.encode(text)) + 2
    inner = getattr(tokenizer, "tokenizer", None)       # open_clip's HFTokenizer wraps a HF tokenizer
    if inner is not None and callable(inner):
        return len(inner(text)["input_ids"])
    return None


def is_truncated(tokenizer, text: str, context_length: int) -> bool:
    count = caption_token_count(tokenizer, text)
    return count is not None and count > context_length


class CLIPScore(Metric):
    """Mean CLIPScore over images; ``last_scores`` / ``last_truncated`` hold the latest batch's values."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 100.0

    def __init__(self, model_name: str = "ViT-B-16", checkpoint: Optional[Union[str, Path]] = None,
                 clip: Optional[LoadedClip] = None, batch_size: int = 16, device="cpu", **kwargs):
        super().__init__(**kwargs)
        self.clip = clip or default_clip(model_name, checkpoint, device=device)
        self.model = self.clip.model          # registered as a submodule: follows .to(device)
        self.batch_size = max(1, int(batch_size))
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("truncated", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.last_scores = torch.zeros(0, dtype=torch.float64)
        self.last_truncated: list[bool] = []

    @property
    def context_length(self) -> int:
        return self.clip.context_length

    @torch.inference_mode()
    def _text_embeddings(self, texts: Sequence[str], device) -> torch.Tensor:
        tokens = self.clip.tokenizer(list(texts)).to(device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def update(self, images, texts: Union[str, Sequence[str]]) -> None:
        """Add images (H x W x 3 uint8 RGB arrays, (3, H, W) uint8 tensors or PIL images) and their captions."""
        if isinstance(texts, str):
            texts = [texts]
        if len(images) != len(texts):
            raise UserError(f"CLIPScore got {len(images)} images but {len(texts)} captions")
        if any(not isinstance(t, str) for t in texts):
            raise UserError("CLIPScore needs a caption (str) for every image")
        device = next(self.model.parameters()).device
        scores = []
        for start in range(0, len(texts), self.batch_size):
            chunk_images = images[start:start + self.batch_size]
            chunk_texts = texts[start:start + self.batch_size]
            scores.append(clip_score_from_embeddings(image_embeddings(self.clip, chunk_images, device),
                                                     self._text_embeddings(chunk_texts, device)).cpu())
        scores = torch.cat(scores) if scores else torch.zeros(0, dtype=torch.float64)
        truncated = [is_truncated(self.clip.tokenizer, t, self.context_length) for t in texts]
        self.score_sum += scores.sum().to(self.score_sum.device)
        self.count += len(texts)
        self.truncated += sum(truncated)
        self.last_scores, self.last_truncated = scores, truncated

    def compute(self) -> torch.Tensor:
        if int(self.count) == 0:
            raise ValueError("CLIPScore has no images")
        return self.score_sum / self.count
