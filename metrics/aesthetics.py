"""Aesthetics (protocol s7): the LAION improved aesthetic predictor v2.

OpenAI CLIP ViT-L/14 image embedding (open_clip ``ViT-L-14``, QuickGELU, OpenAI preprocessing:
bicubic resize of the shorter side to 224, center crop), L2-normalised, into the published MLP
head ``sac+logos+ava1-l14-linearMSE.pth``: Linear(768, 1024), Dropout, Linear(1024, 128),
Dropout, Linear(128, 64), Dropout, Linear(64, 16), Linear(16, 1), without activations.

Precision: the upstream script loads the CLIP with ``clip.load(..., "cuda")``, which keeps
half-precision weights, and L2-normalises the half-precision embedding in numpy before the
float32 head. ``precision="fp16"`` reproduces that (the default on CUDA); ``"fp32"`` runs the
CLIP in float32 and normalises in float32 (the default on the CPU, where half precision is slow).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric

from aesthetic4k_metrics.clip_model import LoadedClip, encode_prepared, prepare_image, resolve_clip
from aesthetic4k_metrics.defaults import AESTHETICS_MODEL
from aesthetic4k_metrics.errors import MetricUnavailable, UserError
from aesthetic4k_metrics.pixel_input import DEFAULT_MAX_PIXELS, embed_all
from aesthetic4k_metrics.registry import METRICS

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


def default_precision(device) -> str:
    """fp16 on CUDA, as upstream; fp32 elsewhere."""
    return "fp16" if str(device).startswith("cuda") else "fp32"


def normalize_embeddings(embeddings: torch.Tensor, precision: str) -> torch.Tensor:
    """L2-normalised embeddings as float32, in the precision the embedding was computed in.

    fp16: the norm and the division in numpy float16, a zero norm left as 1, as upstream does.
    """
    if precision == "fp16":
        half = embeddings.detach().cpu().numpy().astype(np.float16)
        norms = np.atleast_1d(np.linalg.norm(half, 2, axis=-1))
        norms[norms == 0] = 1
        return torch.from_numpy((half / np.expand_dims(norms, -1)).astype(np.float32))
    return torch.nn.functional.normalize(embeddings.float().cpu(), dim=-1)


def resolve_head(settings=None, head=None, device="cpu") -> AestheticHead:
    """The head file resolved by ``aesthetic4k_metrics.weights`` (an explicit path wins), sha256-checked."""
    from aesthetic4k_metrics import weights

    explicit = str(head) if head else (settings.weights.get("aesthetic-head") if settings else None)
    try:
        resolved = weights.resolve("aesthetic-head", explicit,
                                   allow_download=settings.allow_download if settings else None)
    except UserError as exc:
        if settings is None:
            raise
        raise MetricUnavailable.of(exc) from None
    return load_aesthetic_head(resolved.path, device)


class Aesthetics(Metric):
    """Mean predicted aesthetic score (about 1-10); ``per_image()`` gives every image's score."""

    name = "aesthetics"
    is_differentiable = False
    higher_is_better = METRICS["aesthetics"].higher_is_better
    full_state_update = False

    def __init__(self, model_name: str = AESTHETICS_MODEL, checkpoint: Optional[Union[str, Path]] = None,
                 head: Optional[Union[str, Path, AestheticHead]] = None, clip: Optional[LoadedClip] = None,
                 batch_size: int = 16, device="cpu", precision: Optional[str] = None, normalize: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, workers: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        precision = precision or (clip.precision if clip is not None else default_precision(device))
        if clip is None:
            clip = resolve_clip(model_name, checkpoint=checkpoint, precision=precision)
        if clip.precision != precision:
            raise UserError(f"Aesthetics precision {precision} but the CLIP was loaded in {clip.precision}")
        if not isinstance(head, AestheticHead):
            head = resolve_head(head=head)
        self.clip = clip
        self.model = clip.model
        self.head = head
        self.precision = precision
        embed_dim = self.head.layers[0].in_features
        if getattr(self.model.visual, "output_dim", embed_dim) != embed_dim:
            raise UserError(f"aesthetic head expects {embed_dim}-d CLIP embeddings, "
                            f"{clip.model_name} gives {self.model.visual.output_dim}-d")
        self.batch_size = max(1, int(batch_size))
        self.normalize = bool(normalize)
        self.max_pixels = int(max_pixels)
        self.workers = workers          # threads that decode and prepare images (default: usable CPUs)
        self.add_state("scores", [], dist_reduce_fx="cat")
        if str(device) != "cpu":
            self.to(device)

    @classmethod
    def from_settings(cls, settings):
        precision = settings.aesthetics_precision or default_precision(settings.device)
        clip = resolve_clip(settings.aesthetics_model, settings, precision=precision)
        head = resolve_head(settings, device=settings.device)
        return cls(settings.aesthetics_model, clip=clip, head=head, batch_size=settings.batch_size,
                   device=settings.device, precision=precision, max_pixels=settings.max_pixels)

    def feature_recipe(self) -> dict:
        return {"network": "clip-aesthetics", "weights": self.clip.identity()}

    def prepare(self, image, key=None) -> torch.Tensor:
        """One H x W x 3 uint8 RGB image -> its model input."""
        return prepare_image(self.clip, image)

    def embed(self, inputs: list) -> list[torch.Tensor]:
        """Model inputs -> one (1, D) L2-normalised float32 embedding per image, normalised in the model's precision."""
        if not inputs:
            return []
        device = next(self.model.parameters()).device
        embeddings = encode_prepared(self.clip, inputs, self.batch_size, device)
        return list(normalize_embeddings(embeddings, self.precision).split(1))

    def extract(self, images, keys=None) -> list[torch.Tensor]:
        """One (1, D) L2-normalised float32 embedding per image."""
        return embed_all(images, self.prepare, self.embed, None, self.normalize, self.max_pixels, self.workers,
                         self.batch_size)

    @torch.inference_mode()
    def scores_of(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Head outputs (float64, CPU) of normalised embeddings."""
        head_device = next(self.head.parameters()).device
        return self.head(embeddings.float().to(head_device)).double().cpu()

    def update(self, images=None, features=None) -> None:
        """Add images (any form of metrics/pixel_input.py) or their ``extract`` features."""
        if features is None:
            if images is None:
                raise ValueError("update needs images or features")
            features = self.extract(images)
        features = torch.cat(list(features)) if isinstance(features, (list, tuple)) else torch.as_tensor(features)
        self.scores.append(self.scores_of(features).reshape(-1).to(self.device))

    def per_image(self) -> torch.Tensor:
        if isinstance(self.scores, torch.Tensor):
            return self.scores
        return torch.cat(self.scores) if self.scores else torch.zeros(0, dtype=torch.float64)

    def per_image_values(self) -> dict:
        return {"aesthetics": self.per_image().tolist()}

    def compute(self) -> torch.Tensor:
        values = self.per_image()
        if values.numel() == 0:
            raise ValueError("Aesthetics has no images")
        return values.mean()

    def summary(self) -> dict:
        with self.sync_context():     # the count over every process (a collective every process enters)
            count = self.per_image().numel()
        return {"aesthetics": float(self.compute()) if count else math.nan}

    def provenance(self) -> dict:
        return {"aesthetics_model": self.clip.model_name, "aesthetics_clip_weights": self.clip.checkpoint.name,
                "aesthetics_precision": self.precision, "aesthetic_head": "sac+logos+ava1-l14-linearMSE"}

    def __repr__(self) -> str:
        return f"Aesthetics(model_name={self.clip.model_name!r}, precision={self.precision!r})"
