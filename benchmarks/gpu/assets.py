"""The check's inputs, made once per work folder: random weights in the real architectures, pictures.

No weights can be downloaded on the lent machine, so every network is built from its config
with seeded random weights and saved where the toolkit's loaders read it, exactly as real
weights would be read: open_clip's own ViT-B-16 / ViT-L-14 configs, the aesthetic head's
layout, the published SD3 and Flux VAE configs (written below), and a Flux pipeline with the
published VAE and a small transformer. ``--quick`` uses the tests' tiny models instead.
"""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.gpu.common import Context

# vae/config.json of black-forest-labs/FLUX.1-dev and stabilityai/stable-diffusion-3-medium-diffusers:
# one architecture (16 latent channels, 4 levels, no quant convs), two latent scalings
_VAE_ARCHITECTURE = dict(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    act_fn="silu", sample_size=1024, mid_block_add_attention=True, force_upcast=True,
    use_quant_conv=False, use_post_quant_conv=False,
)
PUBLISHED_VAES = {
    "sd3": dict(_VAE_ARCHITECTURE, scaling_factor=1.5305, shift_factor=0.0609),
    "flux": dict(_VAE_ARCHITECTURE, scaling_factor=0.3611, shift_factor=0.1159),
}
# FLUX.1-dev's transformer layout (64 input channels, 128-wide heads, RoPE axes 16/56/56, guidance
# embedding) with 2 + 4 blocks of 8 heads instead of 19 + 38 of 24; the text widths are the tiny
# encoders' (tests/tiny_pipelines.py), since T5-XXL and CLIP-L cannot be built here at random in time
SMALL_FLUX_TRANSFORMER = dict(
    patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=128,
    num_attention_heads=8, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
CAPTIONS = ("a red cat on a stone wall", "a city street at night with light", "a lake in the mountain at sunset",
            "a white boat on the blue sea", "a green forest with old tree", "a portrait of a young woman")


def once(path: Path, make: Callable[[Path], None]) -> Path:
    """``path``, made by ``make(temporary path)`` on first use and renamed into place."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.partial")      # left by a run stopped while making it
    if scratch.is_dir():
        shutil.rmtree(scratch)
    scratch.unlink(missing_ok=True)
    make(scratch)
    scratch.rename(path)
    return path


# -- pictures

def picture(seed: int, side: int, detailed: bool) -> np.ndarray:
    """A deterministic side x side RGB picture: smooth colour fields, with fine stripes when ``detailed``
    (so the two sides of a folder pair differ as real and generated pictures do)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.random((6, 6, 3), dtype=np.float32) * 255
    image = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)
    if detailed:
        period = 3 + seed % 5
        stripes = (np.arange(side, dtype=np.float32) % period < period / 2) * 40 - 20
        image += stripes[None, :, None]
    return np.clip(image, 0, 255).astype(np.uint8)


def pictures(count: int, side: int, seed: int = 0) -> list[np.ndarray]:
    return [picture(seed + i, side, detailed=bool(i % 2)) for i in range(count)]


def _write_jpegs(folder: Path, arrays, names) -> None:
    import cv2

    folder.mkdir(parents=True)

    def write(item):
        name, array = item
        ok, encoded = cv2.imencode(".jpg", array[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise RuntimeError(f"cannot encode {name}")
        (folder / name).write_bytes(encoded.tobytes())

    with ThreadPoolExecutor() as pool:
        list(pool.map(write, zip(names, arrays)))


def folder_pair(ctx: Context, side: int, count: int) -> tuple[Path, Path]:
    """Two folders of ``count`` JPEG q95 pictures each: "real" smooth ones and "generated" striped ones."""
    def make(detailed: bool):
        def fill(folder: Path):
            arrays = (picture(1000 * detailed + i, side, detailed) for i in range(count))
            _write_jpegs(folder, arrays, [f"{i:03d}.jpg" for i in range(count)])
        return fill

    base = ctx.work / f"pair-{side}-{count}"
    return once(base / "real", make(False)), once(base / "generated", make(True))


def train_data(ctx: Context, resolution: int, count: int) -> Path:
    """A dataset in the published layout (train/metadata.jsonl + images) for a4k-train."""
    def make(folder: Path):
        images = folder / "train" / "images"
        names = [f"images/{i:03d}.jpg" for i in range(count)]
        _write_jpegs(images, pictures(count, resolution), [Path(n).name for n in names])
        lines = [json.dumps({"file_name": n, "text": CAPTIONS[i % len(CAPTIONS)]}) for i, n in enumerate(names)]
        (folder / "train" / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    return once(ctx.work / f"train-data-{resolution}-{count}", make)


# -- random weights in the real architectures

def clip_checkpoint(ctx: Context, model_name: str) -> Path:
    """Seeded random weights of open_clip ``model_name`` (its own config), saved as a state dict in
    half precision as OpenAI's checkpoints are."""
    def make(path: Path):
        import open_clip
        import torch

        torch.manual_seed(1)
        model = open_clip.create_model(model_name, pretrained=None)
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)

    return once(ctx.work / f"clip-{model_name}.pt", make)


def aesthetic_head(ctx: Context, embed_dim: int = 768) -> Path:
    """Seeded random weights in the LAION aesthetic head's layout (the keys the loader checks)."""
    def make(path: Path):
        import torch

        from aesthetic4k_metrics.aesthetics import AestheticHead

        torch.manual_seed(2)
        torch.save(AestheticHead(embed_dim).state_dict(), path)

    return once(ctx.work / f"aesthetic-head-{embed_dim}.pth", make)


def vae(family: str, published: bool, seed: int = 0):
    """The SD3 or Flux VAE with seeded random weights: the published architecture, or the tests' tiny one."""
    import torch

    if not published:
        from tests.tiny_pipelines import build_tiny_vae

        return build_tiny_vae(seed=seed)
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(**PUBLISHED_VAES[family])


def flux_pipeline(ctx: Context) -> Path:
    """A saved FluxPipeline with random weights: the published VAE and a small transformer (full
    profile) or the tests' tiny pipeline (quick); the tiny text encoders and tokenizers in both."""
    published = ctx.profile.published_models

    def make(folder: Path):
        import torch

        from tests.tiny_pipelines import build_tiny_flux

        pipe = build_tiny_flux(seed=0)
        if published:
            from diffusers import FluxTransformer2DModel

            torch.manual_seed(3)
            pipe.register_modules(vae=vae("flux", True, seed=4),
                                  transformer=FluxTransformer2DModel(**SMALL_FLUX_TRANSFORMER))
        with torch.no_grad():
            # a trained VAE's posterior is nearly deterministic; a random one's std ~ 1 would make
            # every training target mostly noise (as in tests/test_train.py)
            bias = pipe.vae.encoder.conv_out.bias
            bias[bias.shape[0] // 2:] = -20.0
        pipe.save_pretrained(folder)

    return once(ctx.work / ("flux-small" if published else "flux-tiny"), make)
