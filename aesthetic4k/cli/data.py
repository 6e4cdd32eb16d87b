"""a4k-data: build, check, describe and fetch Aesthetic-4K style datasets.

  a4k-data build --source PHOTOS --out DATASET     curate raw photographs into the published layout
  a4k-data stats DATASET                            Table 9 sizes, histograms, caption statistics
  a4k-data validate DATASET                         every problem with its metadata line
  a4k-data sample                                   render the offline smoke-test set, print its folder
  a4k-data download                                 fetch one split of zhang0jhon/Aesthetic-4K
  a4k-data captioners                               list captioners (built-in and plugins)
"""
from __future__ import annotations

import argparse
import json
import sys

from aesthetic4k.cli.common import Parser, finite_number
from aesthetic4k.errors import UserError
from aesthetic4k_metrics.defaults import MAX_PIXELS

PROG = "a4k-data"


def _sizes(text: str) -> tuple:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes like 2048,4096, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {text!r}")
    return sizes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_quiet(command) -> None:
    command.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                         help="no progress bars (the hub downloads' too)")


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Aesthetic-4K datasets: build, stats, validate, "
                                     "the offline sample set and hub downloads.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    build = commands.add_parser("build", help="curate a folder of photographs into a dataset in the published layout",
                                description="Scan, filter, deduplicate, caption and split a folder of raw images "
                                "into train/ and eval/size_<S>/ with metadata.jsonl and an auditable manifest.jsonl. "
                                "Re-running resumes: finished work is skipped.")
    build.add_argument("--source", required=True, help="folder of raw images (searched recursively; never modified)")
    build.add_argument("--out", required=True, help="output dataset folder")
    build.add_argument("--min-short-side", type=int, default=2048, help="drop images whose shorter side is "
                       "below this many pixels (default: 2048)")
    build.add_argument("--dup-threshold", type=int, default=8, help="near-duplicate pHash distance in bits, "
                       "of 63 (default: 8; 0 keeps everything but identical pictures)")
    build.add_argument("--min-glcm", type=finite_number, default=None, help="drop images whose GLCM Score (at 2048) is "
                       "below this (off by default; published sets score ~0.6-0.8)")
    build.add_argument("--min-aesthetics", type=finite_number, default=None, help="drop images whose LAION aesthetic "
                       "score is below this (off by default; skipped with a note when its weights are missing)")
    build.add_argument("--captioner", default="sidecar", help="sidecar (default: photo.txt beside photo.jpg), "
                       "openai[:MODEL], none, a plugin name, or module:attribute")
    build.add_argument("--caption-model", default="gpt-4o", help="model for --captioner openai (default: gpt-4o)")
    build.add_argument("--caption-timeout", type=finite_number, default=60.0,
                       help="seconds per caption request (default 60)")
    build.add_argument("--caption-retries", type=int, default=5, help="retries after a transient failure (default 5)")
    build.add_argument("--max-caption-words", type=int, default=300,
                       help="drop images whose caption is longer (default: 300 words)")
    build.add_argument("--eval-count", type=int, default=195, help="images held out for evaluation (default: 195, "
                       "lowered to half the kept images when fewer)")
    build.add_argument("--seed", type=int, default=0, help="seed of the train/eval split (default: 0)")
    build.add_argument("--eval-sizes", type=_sizes, default=(2048, 4096),
                       help="eval sets to write (default: 2048,4096); an image joins eval@S only if its shorter "
                            "side is >= S")
    build.add_argument("--eval-mode", choices=("crop", "keep"), default="crop",
                       help="crop: shorter side resized to S (Lanczos) and center-cropped to S x S (default); "
                            "keep: the full image, as in the hub dataset")
    build.add_argument("--eval-format", choices=("png", "jpg"), default="png",
                       help="png (lossless, default) or jpg (quality 95)")
    build.add_argument("--train-format", choices=("png", "jpg"), default="png",
                       help="format for train images that need re-encoding (rotated, CMYK, 16-bit...); others "
                            "are copied byte for byte (default: png)")
    build.add_argument("--link", action="store_true", help="hard-link unchanged train images instead of copying")
    build.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                       help=f"refuse images with more pixels (decompression-bomb guard; default {MAX_PIXELS:,})")
    build.add_argument("--device", default="cpu", help="device for the aesthetics filter (default: cpu)")
    build.add_argument("--workers", type=_positive, default=None,
                       help="parallel workers for scanning, decoding, hashing, the GLCM filter and writing "
                            "(default: one per core; 1 = everything in this process). With --distributor ray: "
                            "the CPUs of the local Ray instance")
    build.add_argument("--distributor", choices=("local", "ray"), default="local",
                       help="local: worker processes on this machine (default); ray: Ray tasks, on a local Ray "
                            "instance or the cluster at --ray-address (pip install 'aesthetic4k[ray]')")
    build.add_argument("--ray-address", default=None,
                       help="a running Ray cluster (e.g. auto, or ray://head:10001); every node must see --source "
                            "and --out at the same paths")
    _add_quiet(build)

    stats = commands.add_parser("stats", help="image size and caption statistics, with histograms",
                                description="Median/mean height and width per split (paper Table 9), "
                                "height/width histograms as PNG (Figure 13) and caption length statistics.")
    stats.add_argument("dataset", help="dataset folder (published layout or a folder with metadata.jsonl), or sample")
    stats.add_argument("--plots", default="a4k-stats", help="folder for the histogram PNGs (default: ./a4k-stats)")
    stats.add_argument("--no-plots", action="store_true", help="print the table only")
    stats.add_argument("--json", default=None, help="also write the statistics to this JSON file")
    _add_quiet(stats)

    validate = commands.add_parser("validate", help="list every problem of a dataset with its line number")
    validate.add_argument("dataset", help="aesthetic-4k, sample, or a dataset folder")
    validate.add_argument("--size", type=int, default=2048, help="eval size (default: 2048)")
    validate.add_argument("--split", choices=("eval", "train"), default="eval")
    validate.add_argument("--quick", action="store_true", help="read image headers only (misses truncated files)")
    validate.add_argument("--no-images", action="store_true", help="check the metadata only")
    _add_quiet(validate)

    sample = commands.add_parser("sample", help="render the offline sample set (8 scenes, a smoke test) into the "
                                 "cache and print its folder")
    sample.add_argument("--size", type=int, default=2048, help="image size, >= 256 (default: 2048)")
    _add_quiet(sample)

    download = commands.add_parser("download", help="download one split of zhang0jhon/Aesthetic-4K into the "
                                   "Hugging Face cache (resumable) and print its folder")
    download.add_argument("--split", choices=("eval", "train"), default="eval")
    download.add_argument("--size", type=int, default=2048, help="eval size: 2048 or 4096 (default: 2048)")
    _add_quiet(download)

    commands.add_parser("captioners", help="list the captioners this installation knows")
    return parser


def _build(args) -> int:
    from aesthetic4k.data.build import BuildOptions, build
    from aesthetic4k.data.captioning import CaptionerOptions

    if args.caption_retries < 0 or args.caption_timeout <= 0:
        raise UserError("--caption-retries must be >= 0 and --caption-timeout > 0")
    options = BuildOptions(
        source=args.source, out=args.out, min_short_side=args.min_short_side, dup_threshold=args.dup_threshold,
        min_glcm=args.min_glcm, min_aesthetics=args.min_aesthetics, captioner=args.captioner,
        caption=CaptionerOptions(model=args.caption_model, timeout=args.caption_timeout,
                                 retries=args.caption_retries),
        max_caption_words=args.max_caption_words, eval_count=args.eval_count, seed=args.seed,
        eval_sizes=args.eval_sizes, eval_mode=args.eval_mode, eval_format=args.eval_format,
        train_format=args.train_format, link=args.link, max_pixels=args.max_pixels, device=args.device,
        workers=args.workers, distributor=args.distributor, ray_address=args.ray_address, progress=not args.quiet)
    summary = build(options)
    _print_summary(summary, options.out)
    return 0


def _print_summary(summary: dict, out) -> None:
    from aesthetic4k_metrics.files import display_path

    print(f"{summary['files']} file(s): " + ", ".join(f"{n} {k}" for k, n in summary["decisions"].items()))
    for reason, count in summary["skip_reasons"].items():
        print(f"  {count:>5}  {display_path(reason)}")
    splits, written = summary["splits"], summary["written"]
    evals = ", ".join(f"{name}: {n}" for name, n in written.items() if name != "train")
    print(f"train split: {splits['train']} image(s), written to train/: {written['train']}")
    print(f"eval split: {splits['eval']} image(s), written to {evals}")
    for note in summary["notes"]:
        print(f"note: {display_path(note)}")
    print(f"dataset written to {display_path(out)} (every decision in {display_path(out / 'manifest.jsonl')})")


def _stats(args) -> int:
    from pathlib import Path

    from aesthetic4k.data.stats import find_splits, format_table, plot_histograms, split_stats

    if args.json:                             # checked before the work
        from aesthetic4k_metrics.file_kinds import named_output, output_problem

        json_out = named_output(args.json)     # a link: its target is replaced, the link stays
        problem = output_problem(json_out)
        if problem:
            raise UserError(f"--json {args.json}: {problem}; refused")
    target = args.dataset
    if target == "sample":
        from aesthetic4k.data.sample import materialise_sample

        target = materialise_sample(progress=not args.quiet)
    splits = [split_stats(label, path, progress=not args.quiet) for label, path in find_splits(Path(target))]
    summaries = [s.summary() for s in splits]
    print(format_table(summaries))
    if not args.no_plots:
        for path in plot_histograms(splits, Path(args.plots)):
            print(f"wrote {path}")
    if args.json:
        from aesthetic4k.atomic import write_atomic

        try:
            write_atomic(json_out, lambda handle: handle.write(json.dumps(summaries, indent=2) + "\n"))
        except OSError as exc:
            raise UserError(f"--json {args.json}: cannot write ({exc.strerror or exc})") from None
        print(f"wrote {args.json}")
    return 0


def _validate(args) -> int:
    from aesthetic4k.data import open_dataset, validate

    dataset = open_dataset(args.dataset, size=args.size, split=args.split, progress=not args.quiet)
    problems = validate(dataset, images=not args.no_images, decode=not args.quick, progress=not args.quiet)
    from aesthetic4k_metrics.files import display_path

    where = display_path(getattr(dataset, "metadata_path", dataset.name))
    for problem in problems:
        print(f"{where}: {display_path(problem)}")
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    print(f"{len(dataset)} entries, {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _sample(args) -> int:
    from aesthetic4k.data.sample import SAMPLE_NOTE, materialise_sample

    folder = materialise_sample(args.size, progress=not args.quiet)
    print(SAMPLE_NOTE, file=sys.stderr)
    print(folder)
    return 0


def _download(args) -> int:
    from aesthetic4k.data.hub import hub_folder, split_folder

    folder = hub_folder(args.split, args.size)
    print(folder / split_folder(args.split, args.size))
    return 0


def _captioners(args) -> int:
    from aesthetic4k.data.captioning import available

    for name, description in available().items():
        print(f"{name:<10} {description}")
    return 0


def main(argv=None) -> int:
    from aesthetic4k.cli.common import run_main

    args = _parser().parse_args(argv)
    if getattr(args, "quiet", False):
        from aesthetic4k_metrics.network import silence_progress_bars

        silence_progress_bars()
    handlers = {"build": _build, "stats": _stats, "validate": _validate, "sample": _sample,
                "download": _download, "captioners": _captioners}
    return run_main(PROG, lambda: handlers[args.command](args),
                    "finished work is kept; re-run the same command to resume")


if __name__ == "__main__":
    sys.exit(main())
