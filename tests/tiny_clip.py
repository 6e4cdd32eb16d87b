"""Tiny open_clip models for tests: a registered config plus random weights saved to a file.

The file is then loaded through exactly the code real weights use (``aesthetic4k_metrics.weights`` ->
``aesthetic4k_metrics.clip_model.load_clip``), only the architecture is small.
"""
from __future__ import annotations

import json
from pathlib import Path

TINY_CLIP = "A4K-Tiny-CLIP"            # 64-d embeddings, for CLIPScore
TINY_CLIP_768 = "A4K-Tiny-CLIP-768"    # 768-d embeddings, the input size of the aesthetic head


def _config(embed_dim: int, context_length: int = 77) -> dict:
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": context_length, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }


def register_tiny_models(folder: Path) -> None:
    """Write the configs as JSON and register them with open_clip (idempotent)."""
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, dim in ((TINY_CLIP, 64), (TINY_CLIP_768, 768)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(_config(dim)))
        open_clip.add_model_config(path)


def save_random_checkpoint(model_name: str, path: Path, seed: int = 0) -> Path:
    """Random weights of a registered model, saved as an open_clip state dict."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None)
    torch.save(model.state_dict(), path)
    return Path(path)
