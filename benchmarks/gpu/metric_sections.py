"""Sections on the network metrics: FID/KID features, CLIPScore and Aesthetics, on the check's device."""
from __future__ import annotations

from dataclasses import replace

from benchmarks.gpu import assets
from benchmarks.gpu.common import Context, Outcome, finite, relative, timed

FID_AGREEMENT = 1e-3        # relative: the FID of one folder pair on the device against the CPU
AESTHETICS_FP16 = 1e-2      # per image |fp16 - fp32| at most this times (1 + the largest |score|)


def _feature_pass(ctx: Context, device: str, real: list, generated: list) -> dict:
    """Features of both folders on ``device`` (timed, after a warm-up), their FID and KID, the metrics
    built as a4k-eval builds them."""
    import torch

    from aesthetic4k_metrics import FID, KID, MetricSettings

    p = ctx.profile
    settings = MetricSettings(size=p.fid_size, device=device, batch_size=p.batch, kid_subsets=1,
                              kid_subset_size=len(real))
    fid, kid = FID.from_settings(settings), KID.from_settings(settings)
    inputs = torch.rand(p.batch, 3, 299, 299) * 255
    for _ in range(2):        # warm-up: TorchScript profiles, then optimises; CUDA context and cuDNN plans
        fid.extractor.embed(inputs)
    on_device = replace(ctx, device=device)
    with timed(on_device) as network:
        fid.extractor.embed(inputs)
    with timed(on_device) as files:
        real_features, generated_features = fid.extract(real), fid.extract(generated)
    for metric in (fid, kid):
        metric.update(features=real_features, real=True)
        metric.update(features=generated_features, real=False)
    return {"fid": float(fid.compute()), "kid": float(kid.compute()[0]), "features": torch.cat(generated_features),
            "files_per_s": (len(real) + len(generated)) / files["s"], "network_per_s": p.batch / network["s"]}


def fid_kid(ctx: Context) -> Outcome:
    p = ctx.profile
    real_dir, generated_dir = assets.folder_pair(ctx, p.fid_size, p.fid_images)
    real, generated = sorted(real_dir.glob("*.jpg")), sorted(generated_dir.glob("*.jpg"))
    here = _feature_pass(ctx, ctx.device, real, generated)
    cpu = _feature_pass(ctx, "cpu", real, generated) if ctx.cuda else here     # on the CPU: the same pass
    gap = relative(here["fid"], cpu["fid"])
    feature_gap = float((here["features"] - cpu["features"]).abs().max() / cpu["features"].abs().max())
    figures = {"size": p.fid_size, "images": 2 * p.fid_images, "network": ctx.inception,
               "files_per_s": here["files_per_s"], "network_per_s": here["network_per_s"],
               "cpu_files_per_s": cpu["files_per_s"], "fid": here["fid"], "fid_cpu": cpu["fid"],
               "fid_relative_gap": gap, "kid": here["kid"], "kid_cpu": cpu["kid"], "feature_gap": feature_gap}
    summary = (f"{p.fid_size} px, {ctx.inception}: {here['files_per_s']:.1f} img/s from JPEG files "
               f"({here['network_per_s']:.0f} img/s network alone; CPU {cpu['files_per_s']:.1f}); "
               f"FID {here['fid']:.4f} vs CPU {cpu['fid']:.4f} (relative {gap:.1e}), "
               f"KID {here['kid']:.6f} vs {cpu['kid']:.6f}, features {feature_gap:.1e} of max")
    problems = []
    if not finite(here["fid"], cpu["fid"], here["kid"], cpu["kid"]):
        problems.append("FID or KID is not finite")
    elif gap > FID_AGREEMENT:
        problems.append(f"FID on {ctx.device} differs from the CPU's by {gap:.1e} relative "
                        f"(limit {FID_AGREEMENT:g})")
    return Outcome(summary, figures, problems)


def clip_weights(ctx: Context) -> dict:
    """``--weights`` entries (weight name -> file) of the random CLIPScore and Aesthetics CLIPs."""
    from aesthetic4k_metrics.weights import clip_weight_name

    return {clip_weight_name(model): str(assets.clip_checkpoint(ctx, model))
            for model in (ctx.profile.clip_model, ctx.profile.aesthetics_model)}


def clip_weights_option(ctx: Context) -> str:
    """``--weights`` for a4k-eval: the random CLIPScore checkpoint."""
    from aesthetic4k_metrics.weights import clip_weight_name

    name = clip_weight_name(ctx.profile.clip_model)
    return f"{name}={clip_weights(ctx)[name]}"


def _aesthetics(ctx: Context, settings, precision: str):
    """Aesthetics as ``Aesthetics.from_settings`` builds it, but with the random head loaded by the head
    loader itself: the weight resolver would refuse it (it checks the published file's sha256)."""
    from aesthetic4k_metrics import Aesthetics
    from aesthetic4k_metrics.aesthetics import load_aesthetic_head
    from aesthetic4k_metrics.clip_model import resolve_clip

    clip = resolve_clip(settings.aesthetics_model, settings, precision=precision)
    head = load_aesthetic_head(assets.aesthetic_head(ctx), settings.device)
    return Aesthetics(settings.aesthetics_model, clip=clip, head=head, batch_size=settings.batch_size,
                      device=settings.device, precision=precision)


def _timed_update(ctx: Context, metric, images, *texts) -> float:
    """Images per second of ``metric.update`` (after a warm-up batch that is then reset)."""
    batch = ctx.profile.batch
    metric.update(images[:batch], *(t[:batch] for t in texts))
    metric.reset()
    with timed(ctx) as t:
        metric.update(images, *texts)
    return len(images) / t["s"]


def clip_aesthetics(ctx: Context) -> Outcome:
    from aesthetic4k_metrics import CLIPScore, MetricSettings

    p = ctx.profile
    settings = MetricSettings(device=ctx.device, batch_size=p.batch, clip_model=p.clip_model,
                              aesthetics_model=p.aesthetics_model, weights=clip_weights(ctx))
    images = assets.pictures(p.clip_images, p.clip_side)
    prompts = [assets.CAPTIONS[i % len(assets.CAPTIONS)] for i in range(len(images))]
    clip = CLIPScore.from_settings(settings)
    clip_rate = _timed_update(ctx, clip, images, prompts)
    clip_value = float(clip.compute())
    rates, scores = {}, {}
    for precision in ("fp16", "fp32"):
        aesthetics = _aesthetics(ctx, settings, precision)
        rates[precision] = _timed_update(ctx, aesthetics, images)
        scores[precision] = aesthetics.per_image().double()
    difference = (scores["fp16"] - scores["fp32"]).abs()
    largest = float(scores["fp32"].abs().max())
    figures = {"images": len(images), "side": p.clip_side, "clip_model": p.clip_model,
               "aesthetics_model": p.aesthetics_model, "clip_score_per_s": clip_rate, "clip_score": clip_value,
               "aesthetics_fp16_per_s": rates["fp16"], "aesthetics_fp32_per_s": rates["fp32"],
               "aesthetics_fp16": float(scores["fp16"].mean()), "aesthetics_fp32": float(scores["fp32"].mean()),
               "fp16_max_difference": float(difference.max()), "fp16_mean_difference": float(difference.mean())}
    summary = (f"{len(images)} x {p.clip_side} px: CLIPScore ({p.clip_model}) {clip_rate:.1f} img/s; Aesthetics "
               f"({p.aesthetics_model}) fp16 {rates['fp16']:.1f} img/s, fp32 {rates['fp32']:.1f} img/s; "
               f"fp16 - fp32 per image max {float(difference.max()):.1e}, mean {float(difference.mean()):.1e} "
               f"(scores about {largest:.3g}, random weights)")
    problems = []
    if not finite(clip_value, figures["aesthetics_fp16"], figures["aesthetics_fp32"], figures["fp16_max_difference"]):
        problems.append("a score is not finite")
    elif figures["fp16_max_difference"] > AESTHETICS_FP16 * (1 + largest):
        problems.append(f"fp16 and fp32 Aesthetics differ by {figures['fp16_max_difference']:.1e} on one image")
    return Outcome(summary, figures, problems)
