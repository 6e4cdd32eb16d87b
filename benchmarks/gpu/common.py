"""What the sections of the accelerator check share: their sizes, their context, timing and memory."""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.tiny_clip import TINY_CLIP, TINY_CLIP_768


class CheckFailed(Exception):
    """A section could not produce its figures; the message is the one-line reason."""


@dataclass(frozen=True)
class Profile:
    """How big each section's work is: ``FULL`` on a GPU, ``QUICK`` (--quick) for a CPU in a test."""

    name: str
    fid_size: int                # FID/KID evaluation size and the side of the folder pair's images
    fid_images: int              # images on each side of the pair
    clip_images: int
    clip_side: int
    clip_model: str              # CLIPScore's CLIP
    aesthetics_model: str        # the CLIP under the aesthetic head
    vae_size: int                # side of the decoded image
    published_models: bool       # published VAE configs, a small Flux transformer, the real Inception; else the
                                 # tests' tiny models (and a tiny stand-in for the Inception unless --inception)
    train_resolution: int
    train_steps: int
    gen_sizes: tuple
    gen_images: int              # images per size (FID needs two)
    gen_steps: int
    gen_metrics: str             # what the generated images are scored with
    two_process_size: int
    two_process_images: int
    two_process_metrics: str     # the tiny CLIP configs exist only in the check's own process
    batch: int                   # images per network forward pass
    section_timeout: int         # seconds a section may take under --isolate


FULL = Profile("full", fid_size=4096, fid_images=16, clip_images=64, clip_side=1024, clip_model="ViT-B-16",
               aesthetics_model="ViT-L-14", vae_size=4096, published_models=True, train_resolution=2048,
               train_steps=6, gen_sizes=(1024, 2048), gen_images=2, gen_steps=4,
               gen_metrics="glcm_score,compression_ratio,fid,clip_score", two_process_size=1024,
               two_process_images=4, two_process_metrics="glcm_score,compression_ratio,fid,clip_score",
               batch=16, section_timeout=240)
QUICK = Profile("quick", fid_size=512, fid_images=3, clip_images=8, clip_side=256, clip_model=TINY_CLIP,
                aesthetics_model=TINY_CLIP_768, vae_size=256, published_models=False, train_resolution=64,
                train_steps=3, gen_sizes=(256, 512), gen_images=2, gen_steps=2,
                # FID's 2048 x 2048 eigendecompositions take seconds on a small CPU: once, in two-process
                gen_metrics="glcm_score,compression_ratio,clip_score", two_process_size=256,
                two_process_images=2, two_process_metrics="glcm_score,compression_ratio,fid", batch=2,
                section_timeout=900)     # only a guard against hangs: a shared CPU can be many times slower


@dataclass
class Context:
    device: str                  # "cuda", "cuda:1" or "cpu"
    profile: Profile
    work: Path                   # the assets the sections share (random weights, pipelines, images)
    inception: str = "Inception"  # which network FID uses, as the figures name it

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)


@dataclass
class Outcome:
    """A section's result: its figures in one line and as data, and the checks that did not hold."""

    summary: str
    figures: dict
    problems: list = field(default_factory=list)


@contextmanager
def timed(ctx: Context):
    """Wall seconds of the block (``box["s"]``), the device synchronised at both ends."""
    box = {}
    ctx.sync()
    start = time.perf_counter()
    yield box
    ctx.sync()
    box["s"] = time.perf_counter() - start


@contextmanager
def peak_memory(ctx: Context):
    """Peak CUDA memory of the block: ``box["above"]`` above what was allocated when it began,
    ``box["peak"]`` in all (MiB). None on the CPU, where the allocator keeps no such count."""
    box = {"above": None, "peak": None}
    if not ctx.cuda:
        yield box
        return
    import torch

    torch.cuda.synchronize(ctx.device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(ctx.device)
    base = torch.cuda.memory_allocated(ctx.device)
    yield box
    torch.cuda.synchronize(ctx.device)
    peak = torch.cuda.max_memory_allocated(ctx.device)
    box.update(above=(peak - base) / 2**20, peak=peak / 2**20)


def mib(value) -> str:
    return "n/a on the CPU" if value is None else f"{value:.0f} MiB"


def finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def relative(a: float, b: float) -> float:
    """|a - b| relative to |b| (absolute when b is 0)."""
    return abs(a - b) / abs(b) if b else abs(a - b)


def free_memory(ctx: Context) -> None:
    """Give cached device memory back between sections."""
    import gc

    gc.collect()
    if ctx.cuda:
        import torch

        torch.cuda.empty_cache()
