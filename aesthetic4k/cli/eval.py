"""``a4k-eval``: generate (or collect) images for a benchmark and score them into results.csv."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aesthetic4k.cli.common import parse_assignments, run_main

EXAMPLES = """examples:
  a4k-eval --generator folder --images gen/ --metrics glcm_score,compression_ratio --cr-mode file --out r.csv
  a4k-eval --generator upscale --dataset sample --out results.csv
  a4k-eval --generator flux-4k --dataset aesthetic-4k --size 2048 --out results.csv --per-image per-image.csv
  a4k-eval --generator diffusers:path/to/pipeline --dataset my-eval/ --size 1024 --out results.csv
  a4k-eval --list-generators | --list-metrics | --list-weights
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="a4k-eval", description=__doc__.split(":", 1)[1].strip(),
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = p.add_argument_group("run")
    run.add_argument("--generator", "-g", help="generator name, name:argument, or module:attribute")
    run.add_argument("--out", "-o", type=Path, help="results.csv to create or update (one row per run)")
    run.add_argument("--dataset", "-d", help="aesthetic-4k, sample, or a folder in the published layout")
    run.add_argument("--size", type=int, default=2048, help="evaluation size (default 2048)")
    run.add_argument("--metrics", "-m", help="comma list (default: glcm_score,compression_ratio,fid,clip_score,"
                                             "aesthetics, those that can run); extras: kid,patch_fid,patch_kid")
    run.add_argument("--limit", type=int, help="only the first N dataset entries")
    run.add_argument("--seed", type=int, default=0, help="seed for every prompt (paper: 0)")
    run.add_argument("--per-image", type=Path, help="also write one row per image to this CSV")
    run.add_argument("--images-out", type=Path, help="where generated images are saved (default: a cache folder)")
    run.add_argument("--report", type=Path, help="write an HTML report of the run into this folder")
    run.add_argument("--skip-bad", action="store_true", help="skip unreadable images (listed in status)")
    run.add_argument("--from-files", action="store_true",
                     help="FID/CLIPScore/Aesthetics read the saved q95 JPEGs instead of the in-memory images "
                          "(numbers then do not depend on resuming; the paper used the in-memory image)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    gen = p.add_argument_group("generators")
    gen.add_argument("--images", help="folder generator: the folder of generated images")
    gen.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    gen.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], help="model precision")
    gen.add_argument("--batch-size", type=int, default=1, help="prompts per generation batch (default 1)")
    gen.add_argument("--steps", type=int, help="sampling steps (default: the paper's, Flux 50, SD3 28)")
    gen.add_argument("--guidance", type=float, help="guidance scale")
    gen.add_argument("--offload", action="store_true", help="CPU offload of model parts (less GPU memory)")
    gen.add_argument("--vae", choices=["f16", "f8"], help="flux/sd3: F16 partitioned VAE (default) or F8")
    gen.add_argument("--partitions", type=int, default=2, help="F16 VAE decode partitions per side (default 2)")
    gen.add_argument("--base-size", type=int, default=1024, help="upscale: size before upscaling (default 1024)")
    gen.add_argument("--resample", choices=["bicubic", "lanczos"], default="bicubic", help="upscale filter")

    met = p.add_argument_group("metrics")
    met.add_argument("--cr-mode", choices=["jpeg95", "file"], default="jpeg95",
                     help="Compression Ratio: re-encode at JPEG q95 (default) or use file sizes")
    met.add_argument("--workers", type=int, default=0, help="processes for the detail metrics (default: cores)")
    met.add_argument("--fid-protocol", choices=["paper", "clean"], default="paper", help="FID resize protocol")
    met.add_argument("--patch-count", type=int, default=8, help="patch-FID/KID: 299x299 crops per image")
    met.add_argument("--patch-seed", type=int, default=0, help="patch-FID/KID: crop seed")
    met.add_argument("--clip-model", default="ViT-B-16", help="CLIPScore open_clip model (default ViT-B-16)")
    met.add_argument("--aesthetics-model", default="ViT-L-14",
                     help="open_clip model under the aesthetic head (default ViT-L-14, the published one)")
    met.add_argument("--weights", action="append", metavar="NAME=PATH",
                     help="explicit weight file, e.g. inception=/w/inception.pt (see --list-weights)")
    met.add_argument("--allow-download", action="store_true",
                     help="let missing weights be downloaded (off by default; never with HF_HUB_OFFLINE=1)")

    info = p.add_argument_group("information")
    info.add_argument("--list-generators", action="store_true", help="list generators and exit")
    info.add_argument("--list-metrics", action="store_true", help="list metrics and exit")
    info.add_argument("--list-weights", action="store_true", help="show where each metric's weights come from")
    info.add_argument("--version", action="store_true", help="print the toolkit version")
    return p


def _list_generators():
    from aesthetic4k.generators.registry import available

    for name, description in available().items():
        print(f"{name:12s} {description}")


def _list_metrics():
    from metrics.registry import METRICS

    for info in METRICS.values():
        arrow = "higher" if info.higher_is_better else "lower"
        needs = f" (needs {', '.join(info.needs)})" if info.needs else ""
        print(f"{info.name:18s} {arrow} is better{needs}: {info.description}")


def _list_weights(overrides, allow_download):
    from metrics.weights import describe

    for entry in describe(overrides, allow_download=allow_download or None):
        where = entry.get("source") or entry.get("reason", "")
        print(f"{entry['metric']:12s} {entry['weight']:16s} {where}")


def _config(args):
    from aesthetic4k.errors import UserError
    from aesthetic4k.evaluate import EvalConfig
    from aesthetic4k.generators.base import GeneratorOptions
    from aesthetic4k.scoring import ScoringOptions
    from metrics.registry import parse_metric_list

    if not args.generator:
        raise UserError("--generator is required (see --list-generators)")
    if not args.out:
        raise UserError("--out results.csv is required")
    if args.size < 64:
        raise UserError("--size must be at least 64")
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    weights = parse_assignments(args.weights, "--weights")
    device = args.device or _default_device()
    generator_options = GeneratorOptions(device=device, dtype=args.dtype, steps=args.steps, guidance=args.guidance,
                                         images=args.images, base_size=args.base_size, resample=args.resample,
                                         offload=args.offload, vae=args.vae, partitions=args.partitions)
    scoring = ScoringOptions(size=args.size, device=device, batch_size=max(1, args.batch_size), weights=weights,
                             cr_mode=args.cr_mode, fid_protocol=args.fid_protocol, patch_count=args.patch_count,
                             patch_seed=args.patch_seed, clip_model=args.clip_model,
                             extra={"allow_download": True if args.allow_download else None,
                                    "aesthetics_model": args.aesthetics_model})
    return EvalConfig(generator=args.generator, out=args.out, dataset=args.dataset, size=args.size,
                      metrics=parse_metric_list(args.metrics) if args.metrics else None, limit=args.limit,
                      seed=args.seed, batch_size=args.batch_size, workers=args.workers, cr_mode=args.cr_mode,
                      per_image=args.per_image, images_out=args.images_out, skip_bad=args.skip_bad,
                      from_files=args.from_files,
                      report=args.report, progress=not args.no_progress,
                      generator_options=generator_options, scoring=scoring)


def _default_device() -> str:
    import os

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        local_rank = os.environ.get("LOCAL_RANK")
        return f"cuda:{local_rank}" if local_rank else "cuda"
    return "cpu"


def _summary(result, out):
    from metrics.registry import METRICS

    row = result.row
    print(f"{row['generator']} on {row['dataset']} at {row['size']}px, {row['n_images']} images")
    for name, info in METRICS.items():
        value = row.get(name)
        if value is None or value == "":
            continue
        arrow = "↑" if info.higher_is_better else "↓"
        print(f"  {info.title:18s} {arrow} {value:.4f}" if isinstance(value, float) else f"  {info.title:18s} {value}")
    if row.get("status") and row["status"] != "ok":
        print(f"  status: {row['status']}")
    if out:
        print(f"written: {out}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def body():
        if args.version:
            from aesthetic4k import __version__

            print(__version__)
            return 0
        if args.list_generators:
            return _list_generators()
        if args.list_metrics:
            return _list_metrics()
        if args.list_weights:
            return _list_weights(parse_assignments(args.weights, "--weights"), args.allow_download)
        config = _config(args)
        from aesthetic4k.evaluate import evaluate

        result = evaluate(config)
        import os

        if int(os.environ.get("RANK", "0")) == 0:
            _summary(result, config.out)
        return 0

    return run_main("a4k-eval", body, "finished images are kept; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
