"""Prompt embeddings and VAE latent distributions of training images, computed once and cached on disk."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from aesthetic4k.atomic import atomic_path

ENTRY_KEYS = ("prompt_embeds", "pooled", "latent_mean", "latent_logvar")


def encode_images(vae, pixels) -> tuple:
    """(mean, logvar) of the VAE's latent distribution for a batch of [-1, 1] images."""
    import torch

    with torch.no_grad():
        dist = vae.encode(pixels.to(device=vae.device, dtype=vae.dtype)).latent_dist
    return dist.mean, dist.logvar


def sample_latents(mean, logvar, generator):
    """A posterior sample ``mean + std * eps``, ``eps`` drawn on the CPU from ``generator``."""
    import torch

    mean = mean.float()
    std = torch.exp(0.5 * logvar.float().clamp(-30.0, 20.0))
    eps = torch.randn(mean.shape, generator=generator).to(mean.device)
    return mean + std * eps


class EncodingCache:
    """Per-image prompt embeddings and latent distributions, one ``.pt`` file per record stem.

    The folder is keyed by everything that changes the tensors (family, base, resolution,
    VAE, sequence length), so one ``cache_dir`` can serve several settings.
    """

    def __init__(self, root, fingerprint: dict):
        key = hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / key
        self.folder.mkdir(parents=True, exist_ok=True)
        info = self.folder / "settings.json"
        if not info.exists():
            info.write_text(json.dumps(fingerprint, indent=2, sort_keys=True), encoding="utf-8")

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}.pt"

    def has(self, stem: str) -> bool:
        return self.path(stem).is_file()

    def load(self, stem: str) -> Optional[dict]:
        import torch

        try:
            return torch.load(self.path(stem), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None
        except Exception:  # a damaged entry is recomputed, never trusted
            return None

    def store(self, stem: str, entry: dict) -> None:
        import torch

        with atomic_path(self.path(stem)) as tmp:
            torch.save({k: v.detach().cpu().contiguous() for k, v in entry.items()}, tmp)
