"""CLIPScore (protocol s6): per image ``100 * max(cos(image, text), 0)``, averaged over images.

Default model: open_clip ``ViT-B-16`` with OpenAI weights, the network torchmetrics used through
``openai/clip-vit-base-patch16``. Captions longer than the context (77 tokens) are truncated by
open_clip's tokenizer, which keeps the end-of-text token (torchmetrics drops it and the score
collapses); truncated captions are counted and reported. Longer-context open_clip models can be
chosen by name.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torchmetrics import Metric

from aesthetic4k_metrics.clip_model import LoadedClip, encode_prepared, prepare_image, resolve_clip
from aesthetic4k_metrics.defaults import CLIP_SCORE_MODEL
from aesthetic4k_metrics.errors import UserError
from aesthetic4k_metrics.pixel_input import DEFAULT_MAX_PIXELS, embed_all
from aesthetic4k_metrics.registry import METRICS


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
    """Mean CLIPScore over images; ``per_image()`` gives every image's score in the order added."""

    name = "clip_score"
    is_differentiable = False
    higher_is_better = METRICS["clip_score"].higher_is_better
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 100.0

    def __init__(self, model_name: str = CLIP_SCORE_MODEL, checkpoint: Optional[Union[str, Path]] = None,
                 clip: Optional[LoadedClip] = None, batch_size: int = 16, device="cpu", normalize: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, workers: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.clip = clip or resolve_clip(model_name, checkpoint=checkpoint)
        self.model = self.clip.model          # registered as a submodule: follows .to(device)
        self.batch_size = max(1, int(batch_size))
        self.normalize = bool(normalize)
        self.max_pixels = int(max_pixels)
        self.workers = workers          # threads that decode and prepare images (default: usable CPUs)
        self.add_state("scores", [], dist_reduce_fx="cat")
        self.add_state("truncated", [], dist_reduce_fx="cat")     # per image: 1 if its caption was cut
        if str(device) != "cpu":
            self.to(device)

    @classmethod
    def from_settings(cls, settings):
        clip = resolve_clip(settings.clip_model, settings)
        return cls(settings.clip_model, clip=clip, batch_size=settings.batch_size, device=settings.device,
                   max_pixels=settings.max_pixels)

    @property
    def context_length(self) -> int:
        return self.clip.context_length

    def feature_recipe(self) -> dict:
        return {"network": "clip", "weights": self.clip.identity()}

    def _model_device(self):
        return next(self.model.parameters()).device

    def prepare(self, image, key=None) -> torch.Tensor:
        """One H x W x 3 uint8 RGB image -> its model input."""
        return prepare_image(self.clip, image)

    def embed(self, inputs: list) -> list[torch.Tensor]:
        """Model inputs -> one (1, D) float32 image embedding (not normalised) per image."""
        if not inputs:
            return []
        return list(encode_prepared(self.clip, inputs, self.batch_size, self._model_device()).float().split(1))

    def extract(self, images, keys=None) -> list[torch.Tensor]:
        """One (1, D) image embedding per image (float32, not normalised)."""
        return embed_all(images, self.prepare, self.embed, None, self.normalize, self.max_pixels, self.workers,
                         self.batch_size)

    @torch.inference_mode()
    def _text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.clip.tokenizer(list(texts[start:start + self.batch_size])).to(self._model_device())
            out.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(out)

    def update(self, images=None, texts: Union[str, Sequence[str], None] = None, features=None) -> None:
        """Add images (any form of metrics/pixel_input.py) or their ``extract`` features, with their captions."""
        if isinstance(texts, str):
            texts = [texts]
        if texts is None or any(not isinstance(t, str) for t in texts):
            raise UserError("CLIPScore needs a caption (str) for every image")
        if features is None:
            if images is None:
                raise ValueError("update needs images or features")
            features = self.extract(images)
        features = torch.cat(list(features)) if isinstance(features, (list, tuple)) else torch.as_tensor(features)
        if features.shape[0] != len(texts):
            raise UserError(f"CLIPScore got {features.shape[0]} images but {len(texts)} captions")
        scores = clip_score_from_embeddings(features, self._text_embeddings(texts)) if len(texts) else \
            torch.zeros(0, dtype=torch.float64)
        self.scores.append(scores.to(self.device))
        self.truncated.append(torch.tensor([is_truncated(self.clip.tokenizer, t, self.context_length) for t in texts],
                                           dtype=torch.long, device=self.device))

    @staticmethod
    def _joined(state, dtype) -> torch.Tensor:
        if isinstance(state, torch.Tensor):
            return state
        return torch.cat(state) if state else torch.zeros(0, dtype=dtype)

    def per_image(self) -> torch.Tensor:
        return self._joined(self.scores, torch.float64)

    def per_image_values(self) -> dict:
        """Per-image columns in the order added: the score and whether the caption was truncated."""
        return {"clip_score": self.per_image().tolist(),
                "clip_truncated": self._joined(self.truncated, torch.long).tolist()}

    def compute(self) -> torch.Tensor:
        values = self.per_image()
        if values.numel() == 0:
            raise ValueError("CLIPScore has no images")
        return values.mean()

    def summary(self) -> dict:
        with self.sync_context():     # counts over every process (a collective every process enters)
            count = self.per_image().numel()
            truncated = int(self._joined(self.truncated, torch.long).sum())
        return {"clip_score": float(self.compute()) if count else math.nan, "clip_truncated": truncated}

    def provenance(self) -> dict:
        from importlib.metadata import version

        return {"clip_model": self.clip.model_name, "clip_weights": self.clip.checkpoint.name,
                "clip_context_length": self.context_length, "clip_score_formula": "100*max(cos,0), mean over images",
                "open_clip_torch": version("open_clip_torch")}

    def __repr__(self) -> str:
        return f"CLIPScore(model_name={self.clip.model_name!r})"
