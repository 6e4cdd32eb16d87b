"""Settings of a WLF fine-tuning run (``a4k-train``) and the checks that need no model.

The defaults are the paper's settings where it gives them; the options whose upstream value
differs between SD3 and Flux (timestep sampling, latent shift, guidance, T5 length) default
to None, meaning "what the family's upstream script does" (:mod:`aesthetic4k.families`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from aesthetic4k import families
from aesthetic4k.errors import UserError
from aesthetic4k.families.base import LATENT_SHIFTS, TIMESTEP_SAMPLINGS
from aesthetic4k.training.sources import check_stream_options

# settings a resumed run must share with the run it continues
RESUME_KEYS = ("family", "resolution", "vae", "batch_size", "gradient_accumulation", "seed", "lora_rank")
RESUME_ALIASES = {"family": "model"}  # the name checkpoints written before the family rename use


@dataclass
class TrainConfig:
    """Everything a run needs; the defaults are the paper's settings where it gives them."""

    family: str                                 # "sd3" or "flux" (aesthetic4k.families)
    base: str                                   # hub id or local diffusers pipeline folder
    data: str                                   # dataset in the published layout (train/metadata.jsonl)
    output_dir: str
    resolution: tuple = (4096, 4096)            # (height, width) of the training crops
    vae: str = "f16"                            # "f16" (WLF), "f8" (the model's own VAE) or a VAE folder
    partitions: int = 2                         # k x k partitions of the F16 decoder's last stage
    loss: str = "wlf"                           # "wlf" (wavelet) or "mse" (plain x0 MSE baseline)
    wavelet_levels: int = 1
    band_weights: tuple = (1.0, 1.0, 1.0, 1.0)  # LL, LH, HL, HH
    level_weights: Optional[tuple] = None       # finest level first; None = all 1
    weighting: str = "none"                     # SD3 sigma weighting: none, sigma_sqrt, cosmap
    timestep_sampling: Optional[str] = None     # uniform, logit_normal, mode; None: the family's upstream one
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    latent_shift: Optional[str] = None          # "none" or "subtract" (shift_factor); None: the family's
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
    guidance: Optional[float] = None            # guidance embedding value in training; None: the family's (Flux 3.5)
    max_sequence_length: Optional[int] = None   # None: the family's (77 SD3 / 512 Flux)
    cache_dir: Optional[str] = None             # text embeddings + latent distributions per image
    on_bad_image: str = "skip"                  # skip (logged) or stop
    num_workers: int = 4                        # image decoding threads
    stream: bool = False                        # --data streamed (a hub dataset or a folder in its layout)
    stream_cache: Optional[str] = None          # streamed images' cache; None: $A4K_CACHE/stream
    stream_cache_limit: int = 50 * 2**30        # bytes that cache may hold
    stream_prefetch: int = 8                    # streamed images fetched ahead
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

    def with_family_defaults(self) -> "TrainConfig":
        """Fill the options left to the family (None) with its upstream values, in place."""
        upstream = families.get(self.family).training
        for name in ("timestep_sampling", "latent_shift", "guidance", "max_sequence_length"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(upstream, name))
        return self


@dataclass
class TrainResult:
    step: int
    checkpoint: Optional[Path]
    losses: list = field(default_factory=list)   # (step, loss) of this invocation
    skipped: list = field(default_factory=list)  # (path, reason) of skipped images


def validate(config: TrainConfig) -> None:
    """Check the settings that need no model; a UserError names the option and what to do."""
    from aesthetic4k.wavelet.loss import WEIGHTING_SCHEMES

    if config.family not in families.FAMILIES:
        raise UserError(f"--family must be one of {', '.join(families.FAMILIES)}, not {config.family!r}")
    choices = {"loss": ("wlf", "mse"), "weighting": WEIGHTING_SCHEMES,
               "mixed_precision": ("bf16", "fp16", "no"), "optimizer": ("adamw", "adamw8bit"),
               "on_bad_image": ("skip", "stop"), "timestep_sampling": TIMESTEP_SAMPLINGS + (None,),
               "latent_shift": LATENT_SHIFTS + (None,)}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            shown = ", ".join(a for a in allowed if a is not None)
            raise UserError(f"--{name.replace('_', '-')} must be one of {shown}, not {getattr(config, name)!r}")
    if config.vae not in ("f16", "f8") and not Path(config.vae).expanduser().is_dir():
        raise UserError(f"--vae must be f16, f8 or a VAE folder, not {config.vae!r}")
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
    check_stream_options(config)


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


def check_model_folder(family: str, base: str) -> None:
    """A local folder must hold the pipeline class of the family ``--family`` names."""
    index = _read_model_index(base)
    if index is None:
        return
    found = index.get("_class_name", "?")
    expected = families.get(family).pipeline_class
    if found != expected:
        other = [f.name for f in families.FAMILIES.values() if f.pipeline_class == found]
        hint = f"use --family {other[0]}" if other else f"--family {family} needs a {expected} folder"
        raise UserError(f"--base {base}: holds a {found}, not a {expected}; {hint}")


def memory_advice(config: TrainConfig) -> str:
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
