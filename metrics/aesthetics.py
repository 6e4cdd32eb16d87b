"""Aesthetics (PROTOCOL.md s7): the LAION improved aesthetic predictor v2.

OpenAI CLIP ViT-L/14 image embedding (open_clip ``ViT-L-14``, QuickGELU, OpenAI preprocessing:
bicubic resize of the shorter side to 224, center crop), L2-normalised, into the published MLP
head ``sac+logos+ava1-l14-linearMSE.pth``: Linear(768, 1024), Dropout, Linear(1024, 128),
Dropout, Linear(128, 64), Dropout, Linear(64, 16), Linear(16, 1), without activations.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn
from torchmetrics import Metric

from metrics.errors import UserError
from metrics.clip_model import LoadedClip, default_clip, image_embeddings

HEAD_KEYS = frozenset(f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))


class AestheticHead(nn.Module):
    """The MLP of the improved aesthetic predictor; its parameter names match the published file."""

    def __init__(self, embed_dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings).squeeze(-1)


def load_aesthetic_head(path: Union[str, Path], device="cpu") -> AestheticHead:
    """Load the head weights, checking the key set and shapes; eval mode, no gradients."""
    path = Path(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors all mean "not a usable file"
        raise UserError(f"{path}: cannot read the aesthetic head ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or set(state) != HEAD_KEYS:
        found = sorted(state)[:6] if isinstance(state, dict) else type(state).__name__
        raise UserError(f"{path}: not the LAION aesthetic head (expected keys layers.{{0,2,4,6,7}}.{{weight,bias}}, "
                        f"found {found})")
    head = AestheticHead(embed_dim=state["layers.0.weight"].shape[1])
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{path}: aesthetic head has unexpected shapes ({str(exc).splitlines()[-1].strip()})") from None
    return head.eval().requires_grad_(False).to(device)


def default_head(head=None, device="cpu") -> AestheticHead:
    """The head file resolved by ``metrics.weights`` (an explicit path wins), sha256-checked."""
    from metrics import weights

    return load_aesthetic_head(weights.resolve("aesthetic-head", str(head) if head else None).path, device)


class Aesthetics(Metric):
    """Mean predicted aesthetic score (about 1-10); ``last_scores`` holds the latest batch's values."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, model_name: str = "ViT-L-14", checkpoint: Optional[Union[str, Path]] = None,
                 head: Optional[Union[str, Path, AestheticHead]] = None, clip: Optional[LoadedClip] = None,
                 batch_size: int = 16, device="cpu", **kwargs):
        super().__init__(**kwargs)
        if clip is None:
            clip = default_clip(model_name, checkpoint, device=device)
        if not isinstance(head, AestheticHead):
            head = default_head(head, device=device)
        self.clip = clip
        self.model = clip.model
        self.head = head
        embed_dim = self.head.layers[0].in_features
        if getattr(self.model.visual, "output_dim", embed_dim) != embed_dim:
            raise UserError(f"aesthetic head expects {embed_dim}-d CLIP embeddings, "
                            f"{clip.model_name} gives {self.model.visual.output_dim}-d")
        self.batch_size = max(1, int(batch_size))
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.last_scores = torch.zeros(0, dtype=torch.float64)

    @torch.inference_mode()
    def scores(self, images) -> torch.Tensor:
        """Per-image aesthetic scores (float64, CPU)."""
        device = next(self.model.parameters()).device
        out = []
        for start in range(0, len(images), self.batch_size):
            embeddings = image_embeddings(self.clip, images[start:start + self.batch_size], device)
            out.append(self.head(embeddings.to(next(self.head.parameters()).device)).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def update(self, images) -> None:
        """Add images (H x W x 3 uint8 RGB arrays, (3, H, W) uint8 tensors or PIL images)."""
        scores = self.scores(images)
        self.score_sum += scores.sum().to(self.score_sum.device)
        self.count += scores.shape[0]
        self.last_scores = scores

    def compute(self) -> torch.Tensor:
        if int(self.count) == 0:
            raise ValueError("Aesthetics has no images")
        return self.score_sum / self.count
