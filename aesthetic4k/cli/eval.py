"""``a4k-eval``: generate (or collect) images for a benchmark and score them into results.csv."""
from __future__ import annotations

import sys
from pathlib import Path

from aesthetic4k.cli.common import Parser, finite_number, in_command_terms, parse_assignments, run_main

PROG = "a4k-eval"
EXAMPLES = """examples:
  a4k-eval --generator flux-4k --out results.csv           (the benchmark: aesthetic-4k eval at 2048)
  a4k-eval --generator upscale --dataset sample --out results.csv
  a4k-eval --generator folder --images gen/ --metrics glcm_score,compression_ratio --cr-mode file --out r.csv
  a4k-eval --generator folder --images gen/ --reference real/ --metrics fid,kid --size 2048 --out r.csv
  a4k-eval --generator folder --images real/ --reference real/ --size 2048 --save-reference-stats real-2048.npz --out r.csv
  a4k-eval --list-generators | --list-metrics | --list-weights
"""


def _positive(name: str, minimum: int = 1, maximum: int | None = None, why: str = ""):
    def parse(text: str) -> int:
        import argparse

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{name} must be at most {maximum}{why}, got {value}")
        return value
    return parse



def build_parser() -> Parser:
    import argparse

    from aesthetic4k_metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
    from aesthetic4k.generators import base as gen_defaults
    from aesthetic4k_metrics import defaults
    from aesthetic4k_metrics.image_input import JPEG_MAX_SIDE

    p = Parser(prog=PROG, description=__doc__.split(":", 1)[1].strip(), epilog=EXAMPLES,
               formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    run = p.add_argument_group("run")
    run.add_argument("--generator", "-g", help="generator name, name:argument, module:attribute, or folder")
    run.add_argument("--out", "-o", type=Path, help="results.csv to create or update (one row per run)")
    run.add_argument("--dataset", "-d", help="aesthetic-4k (default for generators), sample, or a folder in the "
                                             "published layout")
    run.add_argument("--size", type=_positive("--size", 64, JPEG_MAX_SIDE, " (generated images are saved as "
                                                              "JPEG, which holds no longer side)"),
                     help=f"evaluation size: generated images are N x N and FID resizes to N (default {defaults.EVAL_SIZE}); "
                          "a folder's images are scored at their true size, --size then sets only the FID resize")
    run.add_argument("--metrics", "-m", help="comma list (default: glcm_score,compression_ratio,fid,clip_score,"
                                             "aesthetics, those that can run); extras: kid,patch_fid,patch_kid; "
                                             "plugins: an installed plugin's name or module:Class")
    run.add_argument("--limit", type=_positive("--limit"), help="only the first N dataset entries")
    run.add_argument("--seed", type=int, default=0, help="seed for every prompt (paper: 0)")
    run.add_argument("--per-image", type=Path, help="also write one row per image (and per skipped file) to this CSV")
    run.add_argument("--images-out", type=Path, help="where generated images are saved (default: a cache folder)")
    run.add_argument("--report", type=Path, help="write an HTML report of the run into this folder")
    run.add_argument("--reference", help="FID family: a folder of real images, or a .npz of saved reference "
                                         "statistics, instead of the dataset's references")
    run.add_argument("--save-reference-stats", type=Path, metavar="FILE.npz",
                     help="save the reference images' Inception features for later --reference FILE.npz")
    run.add_argument("--skip-bad", action="store_true",
                     help="skip unreadable, too small or too large images (listed with their reason)")
    run.add_argument("--max-pixels", type=_positive("--max-pixels"), default=defaults.MAX_PIXELS,
                     help=f"refuse images declaring more pixels than this (default {defaults.MAX_PIXELS})")
    run.add_argument("--from-files", action="store_true",
                     help="network metrics read the saved q95 JPEGs instead of the in-memory images "
                          "(the paper used the in-memory image)")
    run.add_argument("--json", action="store_true",
                     help="print the row as one JSON object on stdout (the summary goes to stderr)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars or step announcements (the report's, downloads' and models' too)")

    gen = p.add_argument_group("generators")
    gen.add_argument("--images", help="folder generator: the folder of generated images")
    gen.add_argument("--device", default="auto", help="auto (default: cuda when available), cpu, cuda, cuda:1")
    gen.add_argument("--dtype", choices=gen_defaults.DTYPE_CHOICES, help="model precision")
    gen.add_argument("--batch-size", type=_positive("--batch-size"), default=1,
                     help="prompts per generation call (default 1); see --metric-batch-size for scoring")
    gen.add_argument("--steps", type=_positive("--steps"), help="sampling steps (default: the paper's, Flux 50, SD3 28)")
    gen.add_argument("--guidance", type=finite_number, help="guidance scale")
    gen.add_argument("--offload", action="store_true", help="CPU offload of model parts (less GPU memory)")
    gen.add_argument("--vae", metavar="f16|f8|DIR",
                     help="flux/sd3: F16 partitioned VAE (default), the original F8, or a folder with a VAE "
                          "trained by a4k-train-vae")
    gen.add_argument("--partitions", type=_positive("--partitions"), default=gen_defaults.PARTITIONS,
                     help=f"F16 VAE decode partitions per side (default {gen_defaults.PARTITIONS})")
    gen.add_argument("--base-size", type=_positive("--base-size", 16), default=gen_defaults.BASE_SIZE,
                     help=f"upscale: size before upscaling (default {gen_defaults.BASE_SIZE})")
    gen.add_argument("--resample", choices=gen_defaults.RESAMPLERS, default=gen_defaults.RESAMPLERS[0],
                     help="upscale filter")

    met = p.add_argument_group("metrics")
    met.add_argument("--cr-mode", choices=defaults.CR_MODES, default=defaults.CR_MODE,
                     help=f"Compression Ratio: re-encode at JPEG q{defaults.JPEG_QUALITY} (default {defaults.CR_MODE}) "
                          "or use file sizes")
    met.add_argument("--workers", type=_positive("--workers", 0), default=0,
                     help="threads for the fine-detail metrics (default 0: one per core)")
    met.add_argument("--metric-batch-size", type=_positive("--metric-batch-size"), default=defaults.METRIC_BATCH_SIZE,
                     help="images per batch through the metric networks, and per step of the run "
                          f"(default {defaults.METRIC_BATCH_SIZE})")
    met.add_argument("--fid-protocol", choices=defaults.FID_PROTOCOLS, default=defaults.FID_PROTOCOL,
                     help="FID resize protocol")
    met.add_argument("--patch-count", type=_positive("--patch-count"), default=defaults.PATCH_COUNT,
                     help=f"patch-FID/KID: 299x299 crops per image (default {defaults.PATCH_COUNT})")
    met.add_argument("--patch-seed", type=int, default=defaults.PATCH_SEED, help="patch-FID/KID: crop seed")
    met.add_argument("--clip-model", default=defaults.CLIP_SCORE_MODEL,
                     help=f"CLIPScore open_clip model (default {defaults.CLIP_SCORE_MODEL})")
    met.add_argument("--aesthetics-model", default=defaults.AESTHETICS_MODEL,
                     help=f"open_clip model under the aesthetic head (default {defaults.AESTHETICS_MODEL}, "
                          "the published one)")
    met.add_argument("--aesthetics-precision", choices=defaults.PRECISIONS,
                     help="Aesthetics CLIP precision (default: fp16 on CUDA as upstream, fp32 on the CPU)")
    met.add_argument("--bootstrap", type=_positive("--bootstrap", 0, 100_000), default=DEFAULT_RESAMPLES, metavar="N",
                     help=f"resamples of the seeded bootstrap over images behind every metric's 95%% interval "
                          f"(<metric>_low/_high; default {DEFAULT_RESAMPLES}, 0: no intervals)")
    met.add_argument("--bootstrap-seed", type=_positive("--bootstrap-seed", 0), default=DEFAULT_SEED, metavar="SEED",
                     help=f"seed of the bootstrap's resamples (default {DEFAULT_SEED})")
    met.add_argument("--weights", action="append", metavar="NAME=PATH",
                     help="explicit weight file, e.g. inception=/w/inception.pt (names: --list-weights)")
    met.add_argument("--allow-download", action="store_true",
                     help="let missing weights be downloaded (off by default; never with HF_HUB_OFFLINE=1)")

    info = p.add_argument_group("information")
    info.add_argument("--list-generators", action="store_true", help="list generators and exit")
    info.add_argument("--list-metrics", action="store_true", help="list metrics and exit")
    info.add_argument("--list-weights", action="store_true", help="show where each metric's weights come from")
    info.add_argument("--version", action="store_true", help="print the toolkit version")
    return p


def _list_generators():
    from aesthetic4k.evaluation.sources import FolderImages
    from aesthetic4k.generators.registry import available

    for name, description in {"folder": FolderImages.description, **available()}.items():
        print(f"{name:12s} {description}")


def _list_metrics():
    from aesthetic4k.errors import UserError
    from aesthetic4k_metrics import plugin_metrics
    from aesthetic4k_metrics.registry import METRICS

    broken = []
    for name in plugin_metrics.installed():       # entry-point plugins are listed like the built-ins
        try:
            plugin_metrics.load(name)
        except UserError as exc:
            broken.append(f"{name:18s} plugin that does not load: {exc}")
    for info in METRICS.values():
        needs = f" (needs {', '.join(info.needs)})" if info.needs else ""
        print(f"{info.name:18s} {info.better} is better{needs}: {info.description}")
    for line in broken:
        print(line)


def _metric_settings(args):
    from aesthetic4k_metrics.settings import MetricSettings

    return MetricSettings(device=args.device, batch_size=args.metric_batch_size, weights=_weights(args),
                          allow_download=True if args.allow_download else None, cr_mode=args.cr_mode,
                          fid_protocol=args.fid_protocol, patch_count=args.patch_count, patch_seed=args.patch_seed,
                          clip_model=args.clip_model, aesthetics_model=args.aesthetics_model,
                          aesthetics_precision=args.aesthetics_precision, max_pixels=args.max_pixels)


def _list_weights(args):
    from aesthetic4k_metrics.registry import weight_sources

    for entry in weight_sources(_weights(args), allow_download=args.allow_download or None,
                          settings=_metric_settings(args)):
        where = entry.get("source") or entry.get("reason", "")
        print(f"{entry['metric']:12s} {entry['weight']:16s} {where}")


def _weights(args) -> dict:
    """``--weights NAME=PATH`` items, names checked against the known weights."""
    from aesthetic4k.errors import UserError
    from aesthetic4k_metrics.errors import did_you_mean
    from aesthetic4k_metrics.weights import SPECS

    weights = parse_assignments(args.weights, "--weights")
    for name in weights:
        if name not in SPECS and not name.startswith("clip-"):
            raise UserError(f"--weights: unknown weight {name!r}{did_you_mean(name, SPECS)} "
                            f"(known: {', '.join(SPECS)}, or clip-<open_clip model>)")
    return weights


def _config(args):
    from aesthetic4k.errors import UserError
    from aesthetic4k.evaluation import EvalConfig
    from aesthetic4k.evaluation.intervals import BootstrapSettings
    from aesthetic4k.generators.base import GeneratorOptions
    from aesthetic4k_metrics.plugin_metrics import parse_metric_specs

    if not args.generator:
        raise UserError("--generator is required (see --list-generators)")
    if not args.out:
        raise UserError("--out results.csv is required")
    if args.metrics is not None and not args.metrics.replace(",", "").strip():
        from aesthetic4k_metrics.registry import METRICS

        raise UserError("--metrics is empty; available: " + ", ".join(METRICS))
    from aesthetic4k.generators.base import VAE_CHOICES

    if args.vae and args.vae.lower() in VAE_CHOICES:
        args.vae = args.vae.lower()
    elif args.vae and not Path(args.vae).is_dir():
        raise UserError(f"--vae {args.vae}: expected f16, f8 or a folder holding a trained VAE")
    generator_options = GeneratorOptions(device=args.device, dtype=args.dtype, steps=args.steps,
                                         guidance=args.guidance, images=args.images, base_size=args.base_size,
                                         resample=args.resample, offload=args.offload, vae=args.vae,
                                         partitions=args.partitions, progress=not args.no_progress)
    return EvalConfig(generator=args.generator, out=args.out, dataset=args.dataset, size=args.size,
                      metrics=parse_metric_specs(args.metrics) if args.metrics is not None else None,
                      limit=args.limit, seed=args.seed, batch_size=args.batch_size, workers=args.workers,
                      per_image=args.per_image, images_out=args.images_out, skip_bad=args.skip_bad,
                      from_files=args.from_files, report=args.report, reference=args.reference,
                      save_reference_stats=args.save_reference_stats, progress=not args.no_progress,
                      generator_options=generator_options, metric_settings=_metric_settings(args),
                      bootstrap=BootstrapSettings(resamples=args.bootstrap, seed=args.bootstrap_seed))


def _summary(result, out, stream):
    import json

    from aesthetic4k.results import interval_columns
    from aesthetic4k_metrics.registry import METRICS

    row = result.row
    print(f"{row['generator']} on {row['dataset']} at {row['size']}px, {row['n_images']} images", file=stream)
    for name, info in METRICS.items():
        value = row.get(name)
        if value is None or value == "" or value != value:
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        low, high = (row.get(column) for column in interval_columns(name))
        if isinstance(low, float) and isinstance(high, float) and low == low and high == high:
            shown += f"  [{low:.4g}, {high:.4g}]"
        print(f"  {info.title:18s} {info.arrow} {shown}", file=stream)
    bootstrap = json.loads(row.get("settings") or "{}").get("bootstrap") or {}
    if bootstrap.get("resamples"):
        print(f"  [low, high]: {round(100 * bootstrap['level'])}% {bootstrap['method']} bootstrap over images, "
              f"{bootstrap['resamples']} resamples, seed {bootstrap['seed']}", file=stream)
    if row.get("status") and row["status"] != "ok":
        print(f"  status: {row['status']}", file=stream)
    if out:
        print(f"written: {out}", file=stream)


def _as_json(result) -> str:
    import json
    import math

    row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.row.items()}
    row["settings"] = json.loads(row["settings"])
    return json.dumps({"row": row, "notes": result.notes, "hints": result.hints,
                       "skipped": [{"file": s.name, "reason": s.reason, "kind": s.kind} for s in result.skipped]},
                      sort_keys=True)


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:          # usage errors (exit 2, one line) and --help (exit 0)
        return int(exc.code or 0)

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
            return _list_weights(args)
        config = _config(args)
        if args.no_progress:
            from aesthetic4k_metrics.network import silence_progress_bars

            silence_progress_bars()
        from aesthetic4k.evaluation import evaluate

        result = evaluate(config)
        import os

        if int(os.environ.get("RANK", "0")) == 0:
            for hint in result.hints:
                print(f"{PROG}: note: {in_command_terms(hint)}", file=sys.stderr)
            if args.json:
                print(_as_json(result))
            _summary(result, config.out, sys.stderr if args.json else sys.stdout)
        return 0

    return run_main(PROG, body, "finished images are kept; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
