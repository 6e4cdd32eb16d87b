"""Loading an open_clip model from a weight file: the one path used by CLIPScore and Aesthetics.

Real weights and the tiny test models go through ``load_clip`` alike. Accepted files: open_clip
checkpoints (``open_clip_model.safetensors`` / ``open_clip_pytorch_model.bin`` from the hub
cache, any ``.pt/.pth/.bin`` state dict) and OpenAI's original TorchScript archives
(``~/.cache/clip/ViT-L-14.pt``). OpenAI weights need QuickGELU; open_clip's ``ViT-B-16`` and
``ViT-L-14`` configs use nn.GELU, so QuickGELU is forced for models that have an ``openai`` tag.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from metrics.errors import UserError

_LOADED: dict = {}


@dataclass
class LoadedClip:
    model: Any            # open_clip CLIP, eval mode, no gradients
    preprocess: Any       # PIL image -> (3, S, S) tensor (resize shorter side, center crop, normalise)
    tokenizer: Any
    model_name: str
    checkpoint: Path

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", None) or self.model.context_length)


def has_openai_tag(model_name: str) -> bool:
    import open_clip

    return "openai" in open_clip.list_pretrained_tags_by_model(model_name)


def _load_openai_archive(model_name: str, checkpoint: Path, device):
    import open_clip
    from open_clip.transform import image_transform

    model = open_clip.load_openai_model(str(checkpoint), precision="fp32", device=device)
    size = model.visual.image_size
    preprocess = image_transform(size, is_train=False)   # OpenAI mean/std, bicubic, shorter side, center crop
    return model, preprocess


def load_clip(model_name: str, checkpoint, device="cpu", quick_gelu: Optional[bool] = None) -> LoadedClip:
    """Build open_clip ``model_name`` and load ``checkpoint`` into it (cached per process)."""
    import open_clip

    from metrics.inception import is_torchscript

    checkpoint = Path(checkpoint)
    if model_name not in open_clip.list_models():
        raise UserError(f"unknown open_clip model {model_name!r}; see open_clip.list_models()")
    if quick_gelu is None:
        quick_gelu = has_openai_tag(model_name)
    key = (model_name, str(checkpoint.resolve()), str(device), bool(quick_gelu))
    if key in _LOADED:
        return _LOADED[key]
    try:
        if is_torchscript(checkpoint):
            model, preprocess = _load_openai_archive(model_name, checkpoint, device)
        else:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=str(checkpoint), device=device, precision="fp32",
                force_quick_gelu=bool(quick_gelu))
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{checkpoint}: cannot load as open_clip {model_name} weights ({first_line[:300]})") from None
    model.eval().requires_grad_(False)
    loaded = LoadedClip(model, preprocess, open_clip.get_tokenizer(model_name), model_name, checkpoint)
    _LOADED[key] = loaded
    return loaded


def default_clip(model_name: str = "ViT-B-16", checkpoint=None, device="cpu") -> LoadedClip:
    """open_clip ``model_name`` with weights resolved by ``metrics.weights`` (or ``checkpoint``)."""
    from metrics import weights

    resolved = weights.resolve(weights.clip_weight_name(model_name), str(checkpoint) if checkpoint else None)
    return load_clip(model_name, resolved.path, device=device)


def to_pil(image):
    """An H x W x 3 uint8 RGB array, a (3, H, W) uint8 tensor or a PIL image -> PIL RGB image."""
    import numpy as np
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.permute(1, 2, 0).cpu().numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise UserError(f"expected an H x W x 3 uint8 RGB image, got {array.dtype} {array.shape}")
    return Image.fromarray(array, "RGB")


@torch.inference_mode()
def image_embeddings(clip: LoadedClip, images, device) -> torch.Tensor:
    """L2-normalised image embeddings (N, D) float32."""
    batch = torch.stack([clip.preprocess(to_pil(image)) for image in images]).to(device)
    features = clip.model.encode_image(batch).float()
    return torch.nn.functional.normalize(features, dim=-1)
