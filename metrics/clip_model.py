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

from aesthetic4k_metrics.errors import MetricUnavailable, UserError, first_line

_LOADED: dict = {}


PRECISIONS = ("fp32", "fp16")


@dataclass
class LoadedClip:
    model: Any            # open_clip CLIP, eval mode, no gradients
    preprocess: Any       # PIL image -> (3, S, S) tensor (resize shorter side, center crop, normalise)
    tokenizer: Any
    model_name: str
    checkpoint: Path
    precision: str = "fp32"

    @property
    def dtype(self):
        return torch.float16 if self.precision == "fp16" else torch.float32

    def identity(self) -> str:
        """Which weights these are, cheaply (name, size, modification time): a key for feature caches."""
        stat = self.checkpoint.stat()
        return f"{self.model_name}:{self.checkpoint.name}:{stat.st_size}:{stat.st_mtime_ns}:{self.precision}"

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", None) or self.model.context_length)


def has_openai_tag(model_name: str) -> bool:
    import open_clip

    return "openai" in open_clip.list_pretrained_tags_by_model(model_name)


def _load_openai_archive(model_name: str, checkpoint: Path, device, precision: str):
    import open_clip
    from open_clip.transform import image_transform

    model = open_clip.load_openai_model(str(checkpoint), precision=precision, device=device)
    size = model.visual.image_size
    preprocess = image_transform(size, is_train=False)   # OpenAI mean/std, bicubic, shorter side, center crop
    return model, preprocess


def load_clip(model_name: str, checkpoint, device="cpu", quick_gelu: Optional[bool] = None,
              precision: str = "fp32") -> LoadedClip:
    """Build open_clip ``model_name`` and load ``checkpoint`` into it (cached per process).

    ``precision="fp16"`` casts the weights to half precision, as the OpenAI ``clip.load`` on CUDA
    that the upstream Aesthetics used.
    """
    if precision not in PRECISIONS:
        raise UserError(f"unknown CLIP precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    import open_clip

    from aesthetic4k_metrics.inception import is_torchscript

    checkpoint = Path(checkpoint)
    if model_name not in open_clip.list_models():
        raise UserError(f"unknown open_clip model {model_name!r}; see open_clip.list_models()")
    if quick_gelu is None:
        quick_gelu = has_openai_tag(model_name)
    key = (model_name, str(checkpoint.resolve()), str(device), bool(quick_gelu), precision)
    if key in _LOADED:
        return _LOADED[key]
    try:
        if is_torchscript(checkpoint):
            model, preprocess = _load_openai_archive(model_name, checkpoint, device, precision)
        else:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=str(checkpoint), device=device, precision=precision,
                force_quick_gelu=bool(quick_gelu))
    except UserError:
        raise
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise UserError(f"{checkpoint}: cannot load as open_clip {model_name} weights ({first_line(exc)[:300]})"
                        ) from None
    model.eval().requires_grad_(False)
    loaded = LoadedClip(model, preprocess, open_clip.get_tokenizer(model_name), model_name, checkpoint, precision)
    _LOADED[key] = loaded
    return loaded


def resolve_clip(model_name: str, settings=None, checkpoint=None, precision: str = "fp32") -> LoadedClip:
    """open_clip ``model_name`` with weights from ``checkpoint`` or resolved by ``aesthetic4k_metrics.weights``.

    With ``settings`` (aesthetic4k_metrics.settings.MetricSettings) a missing weight or package is a
    ``MetricUnavailable``: a run reports it and goes on.
    """
    from aesthetic4k_metrics import weights

    name = weights.clip_weight_name(model_name)
    explicit = str(checkpoint) if checkpoint else (settings.weights.get(name) if settings else None)
    try:
        resolved = weights.resolve(name, explicit, allow_download=settings.allow_download if settings else None)
        return load_clip(model_name, resolved.path, device=settings.device if settings else "cpu",
                         precision=precision)
    except (ImportError, UserError) as exc:
        if settings is None:
            raise
        raise MetricUnavailable.of(exc) from None


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


def prepare_image(clip: LoadedClip, image) -> torch.Tensor:
    """One image -> the (3, S, S) float32 model input (shorter side to S, centre crop, CLIP normalisation)."""
    return clip.preprocess(to_pil(image))


@torch.inference_mode()
def encode_prepared(clip: LoadedClip, inputs: list, batch_size: int, device) -> torch.Tensor:
    """Model inputs -> image embeddings (N, D) in the model's precision, not normalised, on the CPU."""
    out = [clip.model.encode_image(torch.stack(inputs[start:start + batch_size]).to(device, clip.dtype)).cpu()
           for start in range(0, len(inputs), batch_size)]
    return torch.cat(out)
