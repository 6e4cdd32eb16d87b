"""The settings a set of metrics is built from (``MetricClass.from_settings``), one object for all.

A metric reads only the fields it uses; the defaults are the published protocol.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from aesthetic4k_metrics import defaults


@dataclass
class MetricSettings:
    size: int = defaults.EVAL_SIZE                       # FID-family evaluation size (shorter side, centre crop)
    device: str = "cpu"                    # resolve "auto" with resolve_device before building metrics
    batch_size: int = defaults.METRIC_BATCH_SIZE                    # images per network forward pass
    weights: dict = field(default_factory=dict)   # weight name -> explicit file (``--weights NAME=PATH``)
    allow_download: Optional[bool] = None  # None: the A4K_ALLOW_DOWNLOAD environment variable decides
    cr_mode: str = defaults.CR_MODE                # Compression Ratio: "jpeg95" re-encode, or "file" sizes
    fid_protocol: str = defaults.FID_PROTOCOL
    patch_count: int = defaults.PATCH_COUNT                   # patch-FID/KID crops per image
    patch_seed: int = defaults.PATCH_SEED
    kid_subsets: int = defaults.KID_SUBSETS
    kid_subset_size: int = defaults.KID_SUBSET_SIZE
    clip_model: str = defaults.CLIP_SCORE_MODEL           # CLIPScore
    aesthetics_model: str = defaults.AESTHETICS_MODEL     # the CLIP under the aesthetic head
    aesthetics_precision: Optional[str] = None   # "fp16" (upstream, CUDA) or "fp32"; None: fp16 on CUDA, else fp32
    max_pixels: int = defaults.MAX_PIXELS          # decode guard for every image read


def resolve_device(spec: Optional[str]) -> str:
    """``auto`` (or None) -> ``cuda`` when available (``cuda:LOCAL_RANK`` under torchrun, modulo the
    GPU count), else ``cpu``.

    An explicit CUDA device that does not exist is a UserError now, not a failure minutes later.
    """
    import os

    from aesthetic4k_metrics.errors import UserError
    from aesthetic4k_metrics.extras import missing

    spec = (spec or "auto").strip()
    if spec == "cpu" or (spec == "auto" and os.environ.get("CUDA_VISIBLE_DEVICES") == ""):
        return "cpu"
    if missing(["torch"]):      # the light core: nothing here can use a device but the CPU
        if spec == "auto":
            return "cpu"
        raise UserError(f"device={spec!r} needs torch, which is not installed: pip install 'aesthetic4k[metrics]' "
                        "(network metrics) or 'aesthetic4k[generators]' (diffusion generators)")
    import torch

    available = torch.cuda.is_available()
    if spec == "auto":
        if not available:
            return "cpu"
        local_rank = os.environ.get("LOCAL_RANK")
        # more processes than GPUs (torchrun on one GPU): ranks share them round robin
        return f"cuda:{int(local_rank) % torch.cuda.device_count()}" if local_rank else "cuda"
    if spec.startswith("cuda"):
        if not available:
            raise UserError(f"device={spec!r}: no CUDA device is available here (use device='cpu')")
        index = spec.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UserError(f"device={spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return spec
    if spec != "mps":
        raise UserError(f"device={spec!r}: unknown device; use auto, cpu, cuda, cuda:N or mps")
    if not torch.backends.mps.is_available():
        raise UserError("device='mps': not available here (use device='cpu')")
    return spec
