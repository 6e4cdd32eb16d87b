"""Sections on the models: the partitioned F16 VAE decode and bf16 WLF training steps."""
from __future__ import annotations

import csv
import math
import shutil
import statistics

from benchmarks.gpu import assets
from benchmarks.gpu.common import Context, Outcome, finite, mib, peak_memory

PARTITIONS = (1, 2, 4)
# a partition computes the same sums as the whole image, but the GPU may pick another convolution
# algorithm for a tile's shape: allowed is a difference of 2 units in the last place of the largest value
ULPS = 2


def _decode_all(ctx: Context, vae, latent) -> dict:
    """Decoded image and memory per partition count."""
    import torch

    from aesthetic4k.wavelet.vae_f16 import make_f16

    results = {}
    for parts in PARTITIONS:
        make_f16(vae, parts)
        with peak_memory(ctx) as memory, torch.no_grad():
            image = vae.decode(latent).sample
        results[parts] = {"image": image.float().cpu(), "above": memory["above"], "peak": memory["peak"]}
        del image
    return results


def f16_vae(ctx: Context) -> Outcome:
    import torch

    p = ctx.profile
    dtype = torch.bfloat16 if ctx.cuda else torch.float32     # generation decodes in bf16 on CUDA
    dtype_name = str(dtype).replace("torch.", "")
    figures, texts, problems = {"dtype": dtype_name, "size": p.vae_size}, [], []
    for family in ("sd3", "flux"):
        vae = assets.vae(family, p.published_models, seed=10).eval().requires_grad_(False).to(ctx.device, dtype)
        generator = torch.Generator().manual_seed(11)
        latent = torch.randn(1, vae.config.latent_channels, p.vae_size // 16, p.vae_size // 16, generator=generator)
        results = _decode_all(ctx, vae, latent.to(ctx.device, dtype))
        reference = results[1]["image"]
        if tuple(reference.shape) != (1, 3, p.vae_size, p.vae_size):
            problems.append(f"{family}: decoded {tuple(reference.shape)}, expected (1, 3, {p.vae_size}, {p.vae_size})")
        allowed = ULPS * torch.finfo(dtype).eps * float(reference.abs().max())
        partitions = {}
        for parts, result in results.items():
            gap = float((result["image"] - reference).abs().max())
            identical = bool(torch.equal(result["image"], reference))
            partitions[f"{parts}x{parts}"] = {"above_mib": result["above"], "peak_mib": result["peak"],
                                             "max_difference": gap, "identical": identical}
            if not finite(gap) or gap > allowed:
                problems.append(f"{family} {parts}x{parts} differs from the unpartitioned decode by {gap:.2e}")
        figures[family] = {"parameters_m": sum(t.numel() for t in vae.parameters()) / 1e6, "partitions": partitions}
        if ctx.cuda:
            texts.append(f"{family} " + ", ".join(f"{k} {mib(v['above_mib'])}" for k, v in partitions.items()))
        del vae, results
    compared = [v for family in ("sd3", "flux") for v in figures[family]["partitions"].values()]
    largest = max(v["max_difference"] for v in compared)
    outputs = "identical" if all(v["identical"] for v in compared) else f"differ by at most {largest:.1e}"
    memory = "; ".join(texts) if ctx.cuda else "memory is measured on CUDA only"
    summary = (f"SD3 and Flux VAEs, 1x1, 2x2 and 4x4 partitions, decode to {p.vae_size} px in {dtype_name}: "
               f"peak above weights {memory}; outputs {outputs}")
    return Outcome(summary, figures, problems)


def _seconds_per_step(log_path) -> list:
    """Seconds of each step from train_log.csv's elapsed column."""
    with open(log_path, newline="", encoding="utf-8") as handle:
        elapsed = [float(row["elapsed_s"]) for row in csv.DictReader(handle)]
    return [b - a for a, b in zip([0.0] + elapsed, elapsed)]


def wlf_training(ctx: Context) -> Outcome:
    from aesthetic4k.training.run_log import LOG_NAME
    from aesthetic4k.wavelet.config import TrainConfig
    from aesthetic4k.wavelet.train import train

    p = ctx.profile
    base = assets.flux_pipeline(ctx)
    data = assets.train_data(ctx, p.train_resolution, count=2)
    out = ctx.work / f"train-run-{ctx.device.replace(':', '')}"
    config = TrainConfig(family="flux", base=str(base), data=str(data), output_dir=str(out),
                         resolution=p.train_resolution, max_steps=p.train_steps, checkpoint_every=p.train_steps,
                         mixed_precision="bf16", device="cpu" if not ctx.cuda else None, batch_size=1,
                         learning_rate=1e-4, max_sequence_length=64, tensorboard=False, progress=False,
                         num_workers=2)
    shutil.rmtree(out, ignore_errors=True)         # a rerun in the same --work folder starts afresh
    with peak_memory(ctx) as memory:
        result = train(config)
    losses = [loss for _, loss in result.losses]
    seconds = _seconds_per_step(out / LOG_NAME)
    steady = seconds[1:] or seconds               # the first step includes the one-time set-up of kernels
    per_step = statistics.median(steady)
    figures = {"steps": len(losses), "resolution": p.train_resolution, "losses": losses,
               "seconds_per_step": per_step, "first_step_s": seconds[0], "peak_mib": memory["peak"],
               "transformer_parameters_m": _parameters(base)}
    summary = (f"{len(losses)} steps at {p.train_resolution} px, Flux transformer of "
               f"{figures['transformer_parameters_m']:.3g} M parameters, bf16: loss {losses[0]:.4g} -> "
               f"{losses[-1]:.4g}, {per_step:.3f} s/step (first {seconds[0]:.2f} s), peak {mib(memory['peak'])}")
    problems = []
    if len(losses) != p.train_steps:
        problems.append(f"{len(losses)} steps logged, expected {p.train_steps}")
    if not finite(*losses):
        problems.append(f"a loss is not finite: {losses}")
    return Outcome(summary, figures, problems)


def _parameters(pipeline_folder) -> float:
    """Millions of parameters of the saved transformer (from its safetensors headers, nothing loaded)."""
    from safetensors import safe_open

    total = 0
    for path in sorted((pipeline_folder / "transformer").glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            total += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    return total / 1e6
