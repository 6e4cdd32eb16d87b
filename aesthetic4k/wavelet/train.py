"""The WLF fine-tuning loop: SD3 or Flux, F16 VAE, wavelet loss, on accelerate.

One optimizer step, per process:

1. take the next ``batch_size`` records of this process's share of a shuffled,
   endless record order (a bad image is skipped and logged, or stops the run);
2. prompt embeddings and VAE latents (``(mean + std * eps - shift) * scale``), from the
   cache when ``cache_dir`` is set;
3. logit-normal timesteps, ``noisy = sigma * noise + (1 - sigma) * x0``, a transformer
   forward, ``x0_hat = output * (-sigma) + noisy`` and the WLF loss against ``x0``.

Every random draw (latent sampling, timesteps, noise) comes from one generator per
process whose state is checkpointed with the optimizer, the model and the data
position, so ``resume`` continues the very same loss curve.

A checkpoint folder ``checkpoint-<step>`` is a complete diffusers pipeline folder
(``save_pretrained``; LoRA merged) with ``a4k_wlf.json`` and, for resuming,
``training_state/``. It is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from aesthetic4k.atomic import atomic_path, write_text
from aesthetic4k.errors import ImageError, UserError

MARKER_NAME = "a4k_wlf.json"
STATE_DIR = "training_state"
LATEST_NAME = "latest"
LOG_NAME = "train_log.csv"
LOG_COLUMNS = ["step", "loss", "x0_mse", "lr", "images_per_s", "elapsed_s"]
PIPELINE_CLASSES = {"sd3": "StableDiffusion3Pipeline", "flux": "FluxPipeline"}
DEFAULT_MAX_SEQUENCE_LENGTH = {"sd3": 77, "flux": 512}
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
# settings a resumed run must share with the run it continues
RESUME_KEYS = ("model", "resolution", "vae", "batch_size", "gradient_accumulation", "seed", "lora_rank")


class TrainingInterrupted(UserError):
    """Ctrl-C or a termination signal: the message says which checkpoint to resume from."""


@dataclass
class TrainConfig:
    """Everything a run needs; the defaults are the paper's settings where it gives them."""

    model: str                                  # "sd3" or "flux"
    base: str                                   # hub id or local diffusers pipeline folder
    data: str                                   # dataset in the published layout (train/metadata.jsonl)
    output_dir: str
    resolution: tuple = (4096, 4096)            # (height, width) of the training crops
    vae: str = "f16"                            # "f16" (WLF) or "f8" (the model's own VAE)
    partitions: int = 2                         # k x k partitions of the F16 decoder's last stage
    loss: str = "wlf"                           # "wlf" (wavelet) or "mse" (plain x0 MSE baseline)
    wavelet_levels: int = 1
    band_weights: tuple = (1.0, 1.0, 1.0, 1.0)  # LL, LH, HL, HH
    level_weights: Optional[tuple] = None       # finest level first; None = all 1
    weighting: str = "none"                     # SD3 sigma weighting: none, sigma_sqrt, cosmap
    logit_mean: float = 0.0
    logit_std: float = 1.0
    learning_rate: float = 1e-6
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    batch_size: int = 1                         # per process
    gradient_accumulation: int = 1
    max_steps: int = 20000
    checkpoint_every: int = 1000
    keep_checkpoints: Optional[int] = None      # keep only the newest N checkpoint folders
    seed: int = 0
    mixed_precision: str = "bf16"               # bf16, fp16 or no
    gradient_checkpointing: bool = True
    optimizer: str = "adamw"                    # adamw or adamw8bit (bitsandbytes)
    lora_rank: int = 0                          # 0: full fine-tuning
    lora_alpha: Optional[float] = None          # None: equal to the rank
    guidance: float = 3.5                       # Flux guidance embedding value during training
    max_sequence_length: Optional[int] = None   # None: 77 (SD3) / 512 (Flux)
    cache_dir: Optional[str] = None             # text embeddings + latent distributions per image
    on_bad_image: str = "skip"                  # skip (logged) or stop
    num_workers: int = 4                        # image decoding threads
    resume: Optional[str] = None                # "latest" or a checkpoint folder
    tensorboard: Optional[bool] = None          # None: when tensorboard is installed
    device: Optional[str] = None                # None: accelerate's choice; "cpu" forces the CPU
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.resolution, int):
            self.resolution = (self.resolution, self.resolution)
        self.resolution = tuple(int(v) for v in self.resolution)
        self.band_weights = tuple(float(w) for w in self.band_weights)
        if self.level_weights is not None:
            self.level_weights = tuple(float(w) for w in self.level_weights)


@dataclass
class TrainResult:
    step: int
    checkpoint: Optional[Path]
    losses: list = field(default_factory=list)   # (step, loss) of this invocation
    skipped: list = field(default_factory=list)  # (path, reason) of skipped images


# ---------------------------------------------------------------------------- validation


def validate(config: TrainConfig) -> None:
    """Check the settings that need no model; a UserError names the option and what to do."""
    from aesthetic4k.wavelet.loss import WEIGHTING_SCHEMES

    if config.model not in PIPELINE_CLASSES:
        raise UserError(f"--model must be sd3 or flux, not {config.model!r}")
    choices = {"vae": ("f16", "f8"), "loss": ("wlf", "mse"), "weighting": WEIGHTING_SCHEMES,
               "mixed_precision": ("bf16", "fp16", "no"), "optimizer": ("adamw", "adamw8bit"),
               "on_bad_image": ("skip", "stop")}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise UserError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                            f"not {getattr(config, name)!r}")
    positive = ["partitions", "wavelet_levels", "batch_size", "gradient_accumulation", "checkpoint_every"]
    for name in positive:
        if int(getattr(config, name)) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.max_steps < 0 or config.lora_rank < 0 or config.num_workers < 0:
        raise UserError("--max-steps, --lora-rank and --num-workers cannot be negative")
    if config.learning_rate <= 0 or config.logit_std <= 0:
        raise UserError("--learning-rate and --logit-std must be positive")
    if len(config.band_weights) != 4 or min(config.band_weights) < 0:
        raise UserError(f"--band-weights needs 4 non-negative values (LL,LH,HL,HH), got {config.band_weights}")
    if config.level_weights is not None and len(config.level_weights) != config.wavelet_levels:
        raise UserError(f"--level-weights needs {config.wavelet_levels} value(s), one per level")
    if min(config.resolution) < 16:
        raise UserError(f"--resolution {config.resolution} is too small")


def check_resolution(resolution: tuple, vae_factor: int, patch: int) -> None:
    """Both sides must be divisible by VAE factor x patch size (a whole number of tokens)."""
    step = vae_factor * patch
    for side in resolution:
        if side % step:
            lower, upper = side - side % step, side - side % step + step
            raise UserError(f"--resolution {side} is not divisible by {step} (VAE factor {vae_factor} x "
                            f"patch size {patch}): use {lower or upper} or {upper}")


def _read_model_index(base: str) -> Optional[dict]:
    folder = Path(base).expanduser()
    if not folder.exists():
        return None
    index = folder / "model_index.json"
    if not index.is_file():
        raise UserError(f"--base {base}: not a diffusers pipeline folder (no model_index.json); "
                        "give a folder written by save_pretrained or a hub id")
    try:
        return json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{index}: cannot read ({exc})") from None


def check_model_folder(kind: str, base: str) -> None:
    """A local folder must hold the pipeline class that ``--model`` names."""
    index = _read_model_index(base)
    if index is None:
        return
    found = index.get("_class_name", "?")
    expected = PIPELINE_CLASSES[kind]
    if found != expected:
        other = [k for k, v in PIPELINE_CLASSES.items() if v == found]
        hint = f"use --model {other[0]}" if other else f"--model {kind} needs a {expected} folder"
        raise UserError(f"--base {base}: holds a {found}, not a {expected}; {hint}")


# ---------------------------------------------------------------------------- data


def fit_crop(image, height: int, width: int):
    """Resize (keeping the aspect ratio) until the image covers height x width, then center-crop."""
    from PIL import Image

    w, h = image.size
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.LANCZOS)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    if (new_w, new_h) != (width, height):
        image = image.crop((left, top, left + width, top + height))
    return image


def load_pixels(path, height: int, width: int):
    """An image file as a 3 x height x width float tensor in [-1, 1] (ImageError when unusable)."""
    import numpy as np
    import torch

    from aesthetic4k.data.images import open_rgb

    if path is None:
        raise ImageError("(no image)", "the record has no image file")
    if not Path(path).is_file():
        raise ImageError(path, "missing file")
    image = fit_crop(open_rgb(path, draft_size=max(height, width)), height, width)
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def read_records(data: str) -> list:
    """The training records (lazy: prompt + image path; no image decoded)."""
    from aesthetic4k.data.datasets import open_dataset

    records = list(open_dataset(data, split="train").records())
    if not records:
        raise UserError(f"dataset {data}: no training records")
    return records


class RecordStream:
    """This process's endless share of a shuffled record order, resumable by position.

    Global position ``g`` is epoch ``g // n``, entry ``permutation(seed, epoch)[g % n]``;
    process ``rank`` of ``world`` reads positions ``rank, rank + world, ...``. ``position``
    counts the entries this process has consumed, bad images included.
    """

    def __init__(self, records: list, seed: int, rank: int = 0, world: int = 1, position: int = 0):
        self.records, self.seed, self.rank, self.world = records, seed, rank, world
        self.position = position
        self._orders: dict[int, list] = {}

    def record_at(self, position: int):
        import torch

        index = position * self.world + self.rank
        epoch, offset = divmod(index, len(self.records))
        if epoch not in self._orders:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._orders = {epoch: torch.randperm(len(self.records), generator=generator).tolist()}
        return self.records[self._orders[epoch][offset]]


# ---------------------------------------------------------------------------- cache


class EncodingCache:
    """Per-image prompt embeddings and latent distributions, one ``.pt`` file per record stem.

    The folder is keyed by everything that changes the tensors (model, base, resolution,
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

        target = self.path(stem)
        with atomic_path(target) as tmp:
            torch.save({k: v.detach().cpu().contiguous() for k, v in entry.items()}, tmp)


# ---------------------------------------------------------------------------- model


def load_pipeline(kind: str, base: str):
    """Load the base pipeline (float32) and check it is the kind ``--model`` names."""
    from aesthetic4k.wavelet.pipeline import pipeline_kind

    check_model_folder(kind, base)
    try:
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(base)
    except UserError:
        raise
    except Exception as exc:  # hub errors, missing files, bad configs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--base {base}: cannot load the pipeline ({first})") from None
    try:
        found = pipeline_kind(pipe)
    except UserError:
        found = None
    if found != kind:
        raise UserError(f"--base {base}: holds a {type(pipe).__name__}, not a {PIPELINE_CLASSES[kind]}"
                        + (f"; use --model {found}" if found else ""))
    return pipe


def patch_size(kind: str, transformer) -> int:
    """Image pixels per token side, divided by the VAE factor (Flux packs 2 x 2 latents per token)."""
    patch = int(getattr(transformer.config, "patch_size", 1) or 1)
    return patch * 2 if kind == "flux" else patch


def pack_latents(latents):
    """Flux's token layout: N x C x H x W -> N x (H/2 * W/2) x (C * 4), 2 x 2 patches row by row."""
    n, c, h, w = latents.shape
    x = latents.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens, height: int, width: int):
    """Inverse of :func:`pack_latents` for a latent of height x width."""
    n, _, d = tokens.shape
    c = d // 4
    x = tokens.reshape(n, height // 2, width // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n, c, height, width)


def latent_image_ids(height: int, width: int, device, dtype):
    """Flux position ids of the packed latent tokens: (0, row, column)."""
    import torch

    ids = torch.zeros(height // 2, width // 2, 3)
    ids[..., 1] = torch.arange(height // 2)[:, None]
    ids[..., 2] = torch.arange(width // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


def predict(kind: str, transformer, noisy, timesteps, cond: dict, guidance: Optional[float] = None):
    """The transformer's velocity prediction for ``noisy`` (N x C x H x W) at ``timesteps`` (0..1000).

    ``guidance`` is the value of Flux-dev's guidance embedding (None for models without one).
    """
    import torch

    if kind == "sd3":
        return transformer(hidden_states=noisy, timestep=timesteps, encoder_hidden_states=cond["prompt_embeds"],
                           pooled_projections=cond["pooled"], return_dict=False)[0]
    n, _, h, w = noisy.shape
    guidance_vector = None
    if guidance is not None:
        guidance_vector = torch.full((n,), float(guidance), device=noisy.device, dtype=torch.float32)
    text_ids = torch.zeros(cond["prompt_embeds"].shape[1], 3, device=noisy.device, dtype=noisy.dtype)
    out = transformer(hidden_states=pack_latents(noisy), timestep=timesteps / 1000.0, guidance=guidance_vector,
                      pooled_projections=cond["pooled"], encoder_hidden_states=cond["prompt_embeds"],
                      txt_ids=text_ids, img_ids=latent_image_ids(h, w, noisy.device, noisy.dtype),
                      return_dict=False)[0]
    return unpack_latents(out, h, w)


def encode_prompts(kind: str, pipe, prompts: list, device, max_sequence_length: int) -> tuple:
    """(prompt_embeds N x S x D, pooled N x P) from the pipeline's frozen text encoders."""
    import torch

    with torch.no_grad():
        if kind == "sd3":
            embeds, _, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=None, prompt_3=None, device=device,
                                                      num_images_per_prompt=1, do_classifier_free_guidance=False,
                                                      max_sequence_length=max_sequence_length)
        else:
            embeds, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=None, device=device,
                                                   num_images_per_prompt=1, max_sequence_length=max_sequence_length)
    return embeds, pooled


def encode_images(vae, pixels) -> tuple:
    """(mean, logvar) of the VAE's latent distribution for a batch of [-1, 1] images."""
    import torch

    with torch.no_grad():
        dist = vae.encode(pixels.to(device=vae.device, dtype=vae.dtype)).latent_dist
    return dist.mean, dist.logvar


def merged_state_dict(state: dict, lora_scale: float, dtype=None) -> dict:
    """A plain model state dict from one with peft LoRA layers: ``W + scale * B @ A``, LoRA keys dropped."""
    out = {}
    for key, tensor in state.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key:
            prefix, _, leaf = key.partition(".base_layer.")
            if leaf == "weight":
                downs = [k for k in state if k.startswith(prefix + ".lora_A.") and k.endswith(".weight")]
                for down_key in downs:
                    up_key = down_key.replace(".lora_A.", ".lora_B.")
                    down, up = state[down_key].float(), state[up_key].float()
                    tensor = (tensor.float() + lora_scale * (up.flatten(1) @ down.flatten(1)).reshape(tensor.shape))
            key = f"{prefix}.{leaf}"
        # on the CPU: a cast copy of a 12B model must not land on the accelerator
        tensor = tensor.detach().to("cpu")
        out[key] = tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
    return {k: v.contiguous() for k, v in out.items()}


def validation_loss(pipe, kind: str, images: list, prompts: list, sigmas=(0.25, 0.5, 0.75), seed: int = 0,
                    guidance: float = 3.5, max_sequence_length: Optional[int] = None, **loss_options) -> float:
    """The WLF loss of ``pipe`` on fixed images, prompts, noise and sigmas (no randomness left).

    ``images`` are 3 x H x W tensors in [-1, 1] (see :func:`load_pixels`); latents use the
    distribution means. Comparing two pipelines (e.g. a base and its checkpoint) on the
    same inputs shows what training changed, free of the timestep noise of the training loss.
    """
    import torch

    from aesthetic4k.wavelet.loss import add_noise, wavelet_loss, x0_from_prediction

    vae = pipe.vae
    device = pipe.transformer.device
    max_sequence_length = max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH[kind]
    embeds, pooled = encode_prompts(kind, pipe, list(prompts), device, max_sequence_length)
    mean, _ = encode_images(vae, torch.stack(list(images)))
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    x0 = ((mean.float() - shift) * float(vae.config.scaling_factor)).to(device)
    generator = torch.Generator().manual_seed(seed)
    guided = bool(getattr(pipe.transformer.config, "guidance_embeds", False))
    total = 0.0
    with torch.no_grad():
        for sigma in sigmas:
            noise = torch.randn(x0.shape, generator=generator).to(device)
            s = torch.full((x0.shape[0],), float(sigma), device=device)
            noisy = add_noise(x0, noise, s)
            dtype = pipe.transformer.dtype
            output = predict(kind, pipe.transformer, noisy.to(dtype), (s * 1000).to(dtype),
                             {"prompt_embeds": embeds.to(dtype), "pooled": pooled.to(dtype)},
                             guidance if guided else None)
            total += float(wavelet_loss(x0_from_prediction(output.float(), noisy, s), x0, **loss_options))
    return total / len(sigmas)


def _bitsandbytes_adam():
    try:
        import bitsandbytes
    except Exception as exc:
        raise UserError(f"--optimizer adamw8bit needs bitsandbytes ({type(exc).__name__}: {exc}); "
                        "install it with `pip install 'aesthetic4k[train]'` or use --optimizer adamw") from None
    return bitsandbytes.optim.AdamW8bit


def _add_lora(transformer, rank: int, alpha: float) -> None:
    try:
        from peft import LoraConfig
    except ImportError:
        raise UserError("--lora-rank needs peft; install it with `pip install 'aesthetic4k[train]'` "
                        "or train all weights with --lora-rank 0") from None
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                       target_modules=LORA_TARGETS))


# ---------------------------------------------------------------------------- checkpoints


def find_checkpoint(output_dir, resume: str) -> Path:
    """``resume`` is a checkpoint folder, or ``latest`` (the newest in ``output_dir``)."""
    if resume != "latest":
        folder = Path(resume).expanduser()
        if not (folder / STATE_DIR).is_dir():
            raise UserError(f"--resume {resume}: not a training checkpoint (no {STATE_DIR}/ inside)")
        return folder
    out = Path(output_dir)
    pointer = out / LATEST_NAME
    if pointer.is_file():
        folder = out / pointer.read_text(encoding="utf-8").strip()
        if (folder / STATE_DIR).is_dir():
            return folder
    found = sorted(p for p in out.glob("checkpoint-*") if (p / STATE_DIR).is_dir())
    if not found:
        raise UserError(f"--resume: no checkpoint in {out}; start without --resume")
    return found[-1]


def _memory_advice(config: TrainConfig) -> str:
    tips = []
    if not config.gradient_checkpointing:
        tips.append("--gradient-checkpointing")
    if config.batch_size > 1:
        tips.append("a smaller --batch-size (with --gradient-accumulation)")
    if config.lora_rank == 0:
        tips.append("--lora-rank 64")
    if config.optimizer == "adamw":
        tips.append("--optimizer adamw8bit")
    if config.cache_dir is None:
        tips.append("--cache-dir (text encoders and VAE stay on the CPU once the cache is full)")
    if config.vae == "f8":
        tips.append("--vae f16")
    tips.append("DeepSpeed ZeRO with CPU offload (`accelerate config`)")
    return "try " + ", ".join(tips)


# ---------------------------------------------------------------------------- the trainer


class Trainer:
    """One training run; :func:`train` is the entry point."""

    def __init__(self, config: TrainConfig):
        validate(config)
        self.config = config
        self.kind = config.model
        self.out = Path(config.output_dir).expanduser()
        self.height, self.width = config.resolution
        self.max_sequence_length = config.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH[self.kind]
        self.skipped: list = []

    # -- setup

    def setup(self) -> None:
        import torch
        from accelerate import Accelerator
        from diffusers import FlowMatchEulerDiscreteScheduler

        from aesthetic4k.wavelet.pipeline import use_f16_vae
        from aesthetic4k.wavelet.vae_f16 import spatial_factor

        config = self.config
        self.resume_from = find_checkpoint(self.out, config.resume) if config.resume else None
        check_model_folder(self.kind, config.base)
        self.records = read_records(config.data)
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision,
                                       gradient_accumulation_steps=config.gradient_accumulation,
                                       cpu=config.device == "cpu")
        accelerator = self.accelerator
        self.weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.mixed_precision, torch.float32)
        self.pipe = pipe = load_pipeline(self.kind, config.base)
        if config.vae == "f16":
            use_f16_vae(pipe, config.partitions)
        check_resolution(config.resolution, spatial_factor(pipe.vae), patch_size(self.kind, pipe.transformer))
        self.latent_scale = float(pipe.vae.config.scaling_factor)
        self.latent_shift = float(getattr(pipe.vae.config, "shift_factor", None) or 0.0)
        # the scheduler's training tables, from a fresh copy (inference changes the pipeline's own)
        fresh = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
        count = min(len(fresh.sigmas), len(fresh.timesteps))
        self.train_sigmas, self.train_timesteps = fresh.sigmas[:count].clone(), fresh.timesteps[:count].clone()
        guided = bool(getattr(pipe.transformer.config, "guidance_embeds", False))
        self.guidance = config.guidance if guided else None

        self.cache = None
        if config.cache_dir:
            self.cache = EncodingCache(config.cache_dir, {
                "model": self.kind, "base": str(config.base), "resolution": list(config.resolution),
                "vae": config.vae, "max_sequence_length": self.max_sequence_length})
        # frozen parts: inference dtype; they leave the accelerator when the cache already holds everything
        encoders_needed = self.cache is None or not all(self.cache.has(r.stem) for r in self.records)
        self.encoder_device = accelerator.device if encoders_needed else torch.device("cpu")
        for name in ("vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.requires_grad_(False)
                module.eval()
                module.to(self.encoder_device, dtype=self.weight_dtype if encoders_needed else module.dtype)

        transformer = pipe.transformer
        transformer.to(accelerator.device, dtype=torch.float32)  # master weights; autocast computes in bf16
        if config.lora_rank:
            transformer.requires_grad_(False)
            _add_lora(transformer, config.lora_rank, config.lora_alpha or config.lora_rank)
        else:
            transformer.requires_grad_(True)
        if config.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        transformer.train()
        params = [p for p in transformer.parameters() if p.requires_grad]
        adam = _bitsandbytes_adam() if config.optimizer == "adamw8bit" else torch.optim.AdamW
        optimizer = adam(params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                         eps=config.adam_epsilon, weight_decay=config.weight_decay)
        self.model, self.optimizer = accelerator.prepare(transformer, optimizer)
        self.params = params

        self.step = 0
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + accelerator.process_index)
        self.stream = RecordStream(self.records, config.seed, accelerator.process_index, accelerator.num_processes)
        if self.resume_from is not None:
            self._load_state(self.resume_from)

    def _load_state(self, folder: Path) -> None:
        import torch

        state = folder / STATE_DIR
        saved = json.loads((state / "config.json").read_text(encoding="utf-8"))
        current = asdict(self.config)
        current["resolution"] = list(self.config.resolution)
        for key in RESUME_KEYS:
            if saved.get(key) != current.get(key):
                raise UserError(f"--resume {folder}: it was trained with {key}={saved.get(key)!r}, "
                                f"this run has {current.get(key)!r}; use the same setting")
        if saved.get("num_processes") != self.accelerator.num_processes:
            raise UserError(f"--resume {folder}: it was trained on {saved.get('num_processes')} process(es), "
                            f"this run has {self.accelerator.num_processes}; launch with the same number")
        self.accelerator.load_state(str(state))
        progress = torch.load(state / f"progress_{self.accelerator.process_index}.pt", weights_only=True)
        self.step = int(progress["step"])
        self.stream.position = int(progress["position"])
        self.generator.set_state(progress["generator"])

    # -- one batch

    def _decode(self, record):
        try:
            return load_pixels(record.image_path, self.height, self.width)
        except ImageError as exc:
            return exc

    def next_examples(self, pool) -> list:
        """``batch_size`` usable records of this process's stream, with pixels or cache entries."""
        config, examples, failures = self.config, [], 0
        while len(examples) < config.batch_size:
            need = config.batch_size - len(examples)
            positions = range(self.stream.position, self.stream.position + need)
            records = [self.stream.record_at(p) for p in positions]
            self.stream.position += need
            cached = [self.cache.load(r.stem) if self.cache else None for r in records]
            futures = [None if c is not None else pool.submit(self._decode, r) for r, c in zip(records, cached)]
            for record, entry, future in zip(records, cached, futures):
                pixels = future.result() if future is not None else None
                if isinstance(pixels, ImageError):
                    if config.on_bad_image == "stop":
                        raise UserError(f"{pixels} (line {record.line}); fix or remove it, or pass "
                                        "--on-bad-image skip")
                    self.skipped.append((str(record.image_path), pixels.reason))
                    self._say(f"skipped {record.image_path}: {pixels.reason}")
                    failures += 1
                    if failures > 2 * len(self.records):  # bad runs can span an epoch boundary
                        raise UserError(f"dataset {config.data}: no usable training image")
                    continue
                failures = 0  # only a run of bad images longer than two epochs means none is usable
                examples.append({"record": record, "cache": entry, "pixels": pixels})
        return examples

    def encode(self, examples: list) -> dict:
        """Stack prompt embeddings and latent distributions for a batch, filling the cache."""
        import torch

        device = self.accelerator.device
        missing = [e for e in examples if e["cache"] is None]
        if missing:
            embeds, pooled = encode_prompts(self.kind, self.pipe, [e["record"].prompt for e in missing],
                                            self.encoder_device, self.max_sequence_length)
            mean, logvar = encode_images(self.pipe.vae, torch.stack([e["pixels"] for e in missing]))
            for i, e in enumerate(missing):
                e["cache"] = {"prompt_embeds": embeds[i], "pooled": pooled[i],
                              "latent_mean": mean[i], "latent_logvar": logvar[i]}
                if self.cache is not None:
                    self.cache.store(e["record"].stem, e["cache"])
        return {key: torch.stack([e["cache"][key].to(device) for e in examples])
                for key in ("prompt_embeds", "pooled", "latent_mean", "latent_logvar")}

    def loss(self, batch: dict):
        """(training loss, plain x0 MSE) for one encoded batch; draws from this process's generator."""
        import torch

        from aesthetic4k.wavelet.loss import add_noise, sample_timesteps, wavelet_loss, x0_from_prediction, x0_mse

        config, device = self.config, self.accelerator.device
        mean = batch["latent_mean"].float()
        std = torch.exp(0.5 * batch["latent_logvar"].float().clamp(-30.0, 20.0))
        eps = torch.randn(mean.shape, generator=self.generator).to(device)
        x0 = ((mean + std * eps) - self.latent_shift) * self.latent_scale
        sigmas, timesteps = sample_timesteps(x0.shape[0], self.train_sigmas, self.train_timesteps,
                                             config.logit_mean, config.logit_std, generator=self.generator)
        noise = torch.randn(x0.shape, generator=self.generator).to(device)
        sigmas, timesteps = sigmas.to(device), timesteps.to(device)
        noisy = add_noise(x0, noise, sigmas)
        cond = {"prompt_embeds": batch["prompt_embeds"], "pooled": batch["pooled"]}
        with self.accelerator.autocast():
            output = predict(self.kind, self.model, noisy, timesteps, cond, self.guidance)
        x0_hat = x0_from_prediction(output.float(), noisy, sigmas)
        if config.loss == "wlf":
            loss = wavelet_loss(x0_hat, x0, sigmas, config.weighting, config.wavelet_levels,
                                config.band_weights, config.level_weights)
        else:
            loss = x0_mse(x0_hat, x0, sigmas, config.weighting)
        return loss, x0_mse(x0_hat.detach(), x0, sigmas, config.weighting)

    # -- checkpoints

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint-<step>`` under a temporary name, then rename it into place."""
        import torch

        accelerator, config = self.accelerator, self.config
        name = f"checkpoint-{self.step:06d}"
        final, tmp = self.out / name, self.out / f".{name}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(str(tmp / STATE_DIR))
            torch.save({"step": self.step, "position": self.stream.position, "generator": self.generator.get_state()},
                       tmp / STATE_DIR / f"progress_{accelerator.process_index}.pt")
            state = accelerator.get_state_dict(self.model)  # gathers under ZeRO-3 / FSDP: every process calls it
            if accelerator.is_main_process:
                saved = asdict(config)
                saved.update(resolution=list(config.resolution), num_processes=accelerator.num_processes)
                (tmp / STATE_DIR / "config.json").write_text(json.dumps(saved, indent=2), encoding="utf-8")
                scale = (config.lora_alpha or config.lora_rank) / config.lora_rank if config.lora_rank else 1.0
                self._save_pipeline(tmp, merged_state_dict(state, scale, self.weight_dtype))
                marker = {"model": self.kind, "vae": config.vae, "partitions": config.partitions,
                          "base": str(config.base), "step": self.step, "loss": config.loss,
                          "resolution": list(config.resolution)}
                (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            del state
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                if final.exists():  # the same step saved again: swap, then drop the old one
                    old = self.out / f".{name}.old"
                    shutil.rmtree(old, ignore_errors=True)
                    os.replace(final, old)
                    os.replace(tmp, final)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(tmp, final)
                write_text(self.out / LATEST_NAME, name + "\n")
                self._prune_checkpoints()
        except BaseException:
            if accelerator.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        accelerator.wait_for_everyone()
        return final

    def _save_pipeline(self, folder: Path, transformer_state: dict) -> None:
        """``pipe.save_pretrained`` with the trained (LoRA-merged) transformer weights."""
        transformer = self.accelerator.unwrap_model(self.model)
        # the live module, its state_dict swapped for the merged, cast copy while saving: no second model
        transformer.state_dict = lambda *args, **kwargs: transformer_state
        try:
            self.pipe.save_pretrained(folder)
        finally:
            if "state_dict" in transformer.__dict__:
                del transformer.state_dict

    def _prune_checkpoints(self) -> None:
        keep = self.config.keep_checkpoints
        if not keep:
            return
        found = sorted(p for p in self.out.glob("checkpoint-*") if p.is_dir())
        for old in found[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    # -- logging

    def _say(self, message: str) -> None:
        if self.accelerator.is_main_process and self.config.progress:
            from tqdm.auto import tqdm

            tqdm.write(message)

    def _open_log(self):
        """The CSV log, cut back to the resumed step so the curve continues without duplicates."""
        path = self.out / LOG_NAME
        rows = []
        if self.step and path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if r.get("step", "").isdigit() and int(r["step"]) <= self.step]

        def write(handle):
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

        from aesthetic4k.atomic import write_atomic

        write_atomic(path, write)
        handle = open(path, "a", newline="", encoding="utf-8")
        return handle, csv.DictWriter(handle, fieldnames=LOG_COLUMNS, lineterminator="\n")

    def _open_tensorboard(self):
        if self.config.tensorboard is False:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:
            if self.config.tensorboard:
                raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            return None
        return SummaryWriter(str(self.out / "tensorboard"), purge_step=self.step + 1 if self.step else None)

    # -- the loop

    def run(self) -> TrainResult:
        import torch

        config = self.config
        try:
            self.setup()  # checks the options, data and model before anything is written
        except KeyboardInterrupt:
            raise TrainingInterrupted("interrupted while loading; nothing was written") from None
        except torch.OutOfMemoryError:
            raise UserError(f"out of memory while loading the model: {_memory_advice(config)}") from None
        self.out.mkdir(parents=True, exist_ok=True)
        accelerator = self.accelerator
        result = TrainResult(step=self.step, checkpoint=self.resume_from, skipped=self.skipped)
        log_handle = writer = board = None
        if accelerator.is_main_process:
            log_handle, writer = self._open_log()
            board = self._open_tensorboard()
        from tqdm.auto import tqdm

        bar = tqdm(total=config.max_steps, initial=min(self.step, config.max_steps), unit="step",
                   disable=not (config.progress and accelerator.is_main_process), dynamic_ncols=True)
        images_per_step = config.batch_size * config.gradient_accumulation * accelerator.num_processes
        started = time.perf_counter()
        last_saved = self.step if self.resume_from is not None else None
        try:
            with ThreadPoolExecutor(max_workers=max(1, config.num_workers)) as pool:
                while self.step < config.max_steps:
                    tick = time.perf_counter()
                    losses, mses = [], []
                    for _ in range(config.gradient_accumulation):
                        batch = self.encode(self.next_examples(pool))
                        with accelerator.accumulate(self.model):
                            loss, mse = self.loss(batch)
                            accelerator.backward(loss)
                            if accelerator.sync_gradients and config.max_grad_norm > 0:
                                accelerator.clip_grad_norm_(self.params, config.max_grad_norm)
                            self.optimizer.step()
                            self.optimizer.zero_grad(set_to_none=True)
                        losses.append(loss.detach())
                        mses.append(mse)
                    self.step += 1
                    step_loss = accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item()
                    step_mse = accelerator.reduce(torch.stack(mses).mean(), reduction="mean").item()
                    if not math.isfinite(step_loss):
                        raise UserError(f"the loss became {step_loss} at step {self.step}; lower --learning-rate "
                                        "or use --mixed-precision bf16 instead of fp16")
                    rate = images_per_step / max(time.perf_counter() - tick, 1e-9)
                    result.losses.append((self.step, step_loss))
                    if writer is not None:
                        writer.writerow({"step": self.step, "loss": repr(step_loss), "x0_mse": repr(step_mse),
                                         "lr": repr(self.optimizer.param_groups[0]["lr"]),
                                         "images_per_s": f"{rate:.4g}",
                                         "elapsed_s": f"{time.perf_counter() - started:.3f}"})
                        log_handle.flush()
                    if board is not None:
                        board.add_scalar("loss", step_loss, self.step)
                        board.add_scalar("x0_mse", step_mse, self.step)
                        board.add_scalar("images_per_s", rate, self.step)
                    bar.update(1)
                    bar.set_postfix(loss=f"{step_loss:.4g}", img_s=f"{rate:.3g}")
                    if self.step % config.checkpoint_every == 0 or self.step == config.max_steps:
                        result.checkpoint = self.save_checkpoint()
                        last_saved = self.step
            if last_saved != self.step:  # max_steps reached before this invocation: still leave a checkpoint
                result.checkpoint = self.save_checkpoint()
        except KeyboardInterrupt:
            where = f"; continue from {result.checkpoint} with --resume" if result.checkpoint else ""
            raise TrainingInterrupted(f"interrupted at step {self.step}{where}") from None
        except torch.OutOfMemoryError:
            raise UserError(f"out of memory at step {self.step + 1} (resolution {self.height}x{self.width}, "
                            f"batch {config.batch_size}): {_memory_advice(config)}") from None
        finally:
            bar.close()
            if log_handle is not None:
                log_handle.close()
            if board is not None:
                board.close()
        result.step = self.step
        return result


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) a WLF fine-tuning and return where it ended."""
    return Trainer(config).run()
