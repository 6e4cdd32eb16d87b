"""Settings of an SC-VAE run (``a4k-train-vae``); the defaults are the upstream ``sc-vae/train_vae.sh``.

One *step* here is one update of the student followed by one update of the discriminator.
Upstream counts each of the two as a step, so its ``--checkpointing_steps 10000`` is 5000 here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from aesthetic4k.errors import UserError
from aesthetic4k.training.sources import check_stream_options

# settings a resumed run must share with the run it continues
RESUME_KEYS = ("base", "resolution", "batch_size", "gradient_accumulation", "seed", "disc_channels", "disc_depth",
               "ema", "pixel_loss")


@dataclass
class VaeTrainConfig:
    base: str                                   # pipeline (folder or hub id; its vae/) or VAE folder: teacher and start
    data: str                                   # dataset (metadata.jsonl layouts, a .jsonl) or a folder of images
    output_dir: str
    resolution: int = 512                       # square random crops after resizing the shorter side
    partitions: int = 2                         # k x k partitions of the student's last decoder stage
    pixel_loss: str = "mse"                     # mse or patch (MSE of 32 x 32 windows at stride 16)
    lpips_weight: float = 0.1
    gan_weight: float = 0.05
    sc_weight: float = 1.0
    gp_weight: float = 10.0                     # gradient penalty of the discriminator
    max_adaptive_weight: float = 1e4
    disc_channels: int = 512
    disc_depth: int = 6
    learning_rate: float = 1e-5                 # student (decoder only), constant
    disc_learning_rate: float = 1e-5            # discriminator, constant
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    batch_size: int = 32                        # per process and micro-batch
    gradient_accumulation: int = 2
    epochs: float = 1.0                         # passes over the data (each step reads 2 x accumulation batches)
    max_steps: Optional[int] = None             # overrides epochs
    ema: bool = True
    ema_decay: float = 0.9999
    checkpoint_every: int = 5000
    keep_checkpoints: Optional[int] = None
    seed: int = 0
    mixed_precision: str = "no"                 # no, bf16 or fp16
    gradient_checkpointing: bool = True
    weights: dict = field(default_factory=dict)  # explicit LPIPS weight files: {"vgg16": path, "lpips-vgg": path}
    allow_download: Optional[bool] = None
    on_bad_image: str = "skip"
    num_workers: int = 4
    stream: bool = False                        # --data streamed (a hub dataset or a folder in its layout)
    stream_cache: Optional[str] = None          # streamed images' cache; None: $A4K_CACHE/stream
    stream_cache_limit: int = 50 * 2**30        # bytes that cache may hold
    stream_prefetch: int = 8                    # streamed images fetched ahead
    resume: Optional[str] = None
    tensorboard: Optional[bool] = None
    device: Optional[str] = None
    progress: bool = True


@dataclass
class VaeTrainResult:
    step: int
    checkpoint: Optional[Path]
    losses: list = field(default_factory=list)   # one dict per step of this invocation (the log row)
    skipped: list = field(default_factory=list)  # (path, reason) of skipped images


def validate(config: VaeTrainConfig) -> None:
    choices = {"pixel_loss": ("mse", "patch"), "mixed_precision": ("no", "bf16", "fp16"),
               "on_bad_image": ("skip", "stop")}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise UserError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                            f"not {getattr(config, name)!r}")
    for name in ("partitions", "batch_size", "gradient_accumulation", "checkpoint_every", "disc_depth"):
        if int(getattr(config, name)) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.resolution < 32 or config.resolution % 16:
        raise UserError(f"--resolution {config.resolution}: must be a multiple of 16, at least 32 "
                        "(the F16 VAE's factor)")
    if config.disc_channels < 2 ** max(config.disc_depth - 3, 3):
        raise UserError(f"--disc-channels {config.disc_channels} is too small for --disc-depth {config.disc_depth}")
    for name in ("learning_rate", "disc_learning_rate", "epochs", "ema_decay"):
        if not getattr(config, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if config.ema_decay >= 1:
        raise UserError("--ema-decay must be below 1")
    for name in ("lpips_weight", "gan_weight", "sc_weight", "gp_weight", "num_workers"):
        if getattr(config, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} cannot be negative")
    if config.max_steps is not None and config.max_steps < 0:
        raise UserError("--max-steps cannot be negative")
    check_stream_options(config)
    unknown = set(config.weights) - {"vgg16", "lpips-vgg"}
    if unknown:
        raise UserError(f"--weights {', '.join(sorted(unknown))}: a4k-train-vae uses vgg16 and lpips-vgg")
