"""a4k-train: wavelet-based fine-tuning (WLF) of SD3 or Flux with the partitioned F16 VAE.

Launch on one device with ``a4k-train ...`` and on several with
``accelerate launch -m aesthetic4k.cli.train ...`` (data parallel, DeepSpeed, FSDP from
``accelerate config``). Heavy libraries are imported only once training starts.
"""
from __future__ import annotations

import argparse
import sys

from aesthetic4k.cli.common import Parser, add_run_options, finite_number, run_trainer
from aesthetic4k import families

EXAMPLE = """example (a tiny run on the CPU):
  a4k-train --family sd3 --base ./tiny-sd3 --data ./my-4k-set --output-dir runs/wlf \\
      --resolution 128 --max-steps 20 --checkpoint-every 10 --mixed-precision no --device cpu
resume the newest checkpoint of a run:
  a4k-train --family sd3 --base ./tiny-sd3 --data ./my-4k-set --output-dir runs/wlf --resume
stream a training set larger than the disk, through a 200 GiB cache:
  a4k-train --family flux --base black-forest-labs/FLUX.1-dev --data aesthetic-train-v2 --stream \
      --stream-cache /scratch/a4k-stream --stream-cache-limit 200G --output-dir runs/flux-v2
evaluate a checkpoint:
  a4k-eval --generator wlf:runs/wlf/checkpoint-000020 --dataset sample --out results.csv
upstream defaults per family (used when the option is not given):
""" + "".join(
    f"  {f.name}: --timestep-sampling {f.training.timestep_sampling}, --latent-shift {f.training.latent_shift}, "
    f"--max-sequence-length {f.training.max_sequence_length}"
    + (f", --guidance {f.training.guidance}" if f.training.guidance is not None else "")
    + f"; the paper ran --batch-size {f.training.batch_per_device} on {f.training.processes} processes\n"
    for f in families.FAMILIES.values())


def _resolution(text: str) -> tuple[int, int]:
    """``4096`` or ``HEIGHTxWIDTH``."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 4096 or 2304x4096, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size like 4096 or 2304x4096, got {text!r}")
    return values[0], values[1]


def _floats(count: int | None):
    def parse(text: str) -> tuple:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
        if count is not None and len(values) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers, got {text!r}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="a4k-train",
        description="Fine-tune SD3 or Flux on 2K-4K images with the wavelet loss (WLF) and the partitioned "
                    "F16 VAE. Defaults are the paper's settings. Each checkpoint folder is a diffusers "
                    "pipeline that `a4k-eval --generator wlf:<folder>` loads.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    need = parser.add_argument_group("what to train")
    need.add_argument("--family", "--model", dest="family", required=True, choices=families.names(),
                      help="model family (--model is the old name of this option)")
    need.add_argument("--base", required=True, help="hub id or local diffusers pipeline folder to start from "
                      "(e.g. stabilityai/stable-diffusion-3-medium-diffusers, black-forest-labs/FLUX.1-dev)")
    need.add_argument("--data", required=True, help="dataset folder in the published layout "
                      "(train/metadata.jsonl), a folder with a metadata.jsonl, or aesthetic-4k; with --stream "
                      "also aesthetic-train-v2 or a hub dataset owner/name")
    need.add_argument("--output-dir", required=True, help="where checkpoint-<step>/ folders and logs go")
    need.add_argument("--resolution", type=_resolution, default=(4096, 4096),
                      help="training crop, 4096 or HEIGHTxWIDTH; divisible by 16 x patch size (default 4096)")

    method = parser.add_argument_group("method")
    method.add_argument("--vae", default="f16", metavar="f16|f8|DIR",
                        help="f16: the partitioned F16 VAE (WLF, default); f8: the model's own VAE; DIR: a VAE "
                             "folder (an a4k-train-vae checkpoint, an SC-VAE) that replaces the model's VAE")
    method.add_argument("--partitions", type=int, default=2, help="k x k partitions of the F16 decoder's last "
                        "stage (default 2; only memory changes)")
    method.add_argument("--loss", choices=["wlf", "mse"], default="wlf",
                        help="wlf: wavelet loss (default); mse: plain x0 MSE, the baseline")
    method.add_argument("--wavelet-levels", type=int, default=1, help="Haar DWT levels (default 1)")
    method.add_argument("--band-weights", type=_floats(4), default=(1.0, 1.0, 1.0, 1.0), metavar="LL,LH,HL,HH",
                        help="sub-band weights (default 1,1,1,1; equal weights make WLF equal plain x0 MSE)")
    method.add_argument("--level-weights", type=_floats(None), default=None, metavar="W1,...",
                        help="per-level weights, finest level first (default all 1)")
    method.add_argument("--weighting", choices=["none", "sigma_sqrt", "cosmap"], default="none",
                        help="SD3 sigma loss weighting (default none)")
    method.add_argument("--timestep-sampling", choices=["uniform", "logit_normal", "mode"], default=None,
                        help="how training timesteps are drawn (default: the family's upstream script: "
                             "logit_normal for SD3, uniform for Flux)")
    method.add_argument("--logit-mean", type=finite_number, default=0.0, help="logit-normal timestep mean (default 0)")
    method.add_argument("--logit-std", type=finite_number, default=1.0, help="logit-normal timestep std (default 1)")
    method.add_argument("--mode-scale", type=finite_number, default=1.29,
                        help="scale of the mode density (default 1.29)")
    method.add_argument("--latent-shift", choices=["none", "subtract"], default=None,
                        help="none: latents sample * scaling_factor; subtract: (sample - shift_factor) * "
                             "scaling_factor (default: the family's upstream script: none for SD3, subtract for Flux)")
    method.add_argument("--guidance", type=finite_number, default=None,
                        help="guidance embedding value in training (Flux-dev; default 3.5 as upstream)")
    method.add_argument("--max-sequence-length", type=int, default=None,
                        help="T5 tokens (default 77 for SD3, 512 for Flux)")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--learning-rate", type=finite_number, default=1e-6, help="constant learning rate (default 1e-6)")
    opt.add_argument("--batch-size", type=int, default=1, help="images per device and step (default 1)")
    opt.add_argument("--gradient-accumulation", type=int, default=1, help="micro-batches per step (default 1)")
    opt.add_argument("--max-steps", type=int, default=20000, help="optimizer steps (default 20000)")
    opt.add_argument("--optimizer", choices=["adamw", "adamw8bit"], default="adamw",
                     help="adamw8bit needs bitsandbytes (pip install 'aesthetic4k[train]')")
    opt.add_argument("--weight-decay", type=finite_number, default=1e-4, help="AdamW weight decay (default 1e-4)")
    opt.add_argument("--max-grad-norm", type=finite_number, default=1.0, help="gradient clipping, 0 = off (default 1)")
    opt.add_argument("--lora-rank", type=int, default=0, help="train LoRA adapters of this rank instead of all "
                     "weights (needs peft); checkpoints hold the merged weights (default 0 = full)")
    opt.add_argument("--lora-alpha", type=finite_number, default=None, help="LoRA alpha (default: the rank)")
    opt.add_argument("--mixed-precision", choices=["bf16", "fp16", "no"], default="bf16", help="default bf16")
    opt.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false",
                     help="faster, much more memory (checkpointing is on by default)")
    opt.add_argument("--seed", type=int, default=0, help="data order and noise (default 0)")

    run = add_run_options(parser, checkpoint_every=1000)
    run.add_argument("--cache-dir", default=None, help="cache text embeddings and latents here (reused by "
                     "later runs; with a full cache the text encoders and VAE stay on the CPU)")
    return parser


def config_from_args(args):
    from aesthetic4k.wavelet.config import TrainConfig

    return TrainConfig(
        family=args.family, base=args.base, data=args.data, output_dir=args.output_dir, resolution=args.resolution,
        vae=args.vae, partitions=args.partitions, loss=args.loss, wavelet_levels=args.wavelet_levels,
        band_weights=args.band_weights, level_weights=args.level_weights, weighting=args.weighting,
        timestep_sampling=args.timestep_sampling, logit_mean=args.logit_mean, logit_std=args.logit_std,
        mode_scale=args.mode_scale, latent_shift=args.latent_shift, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm, batch_size=args.batch_size,
        gradient_accumulation=args.gradient_accumulation, max_steps=args.max_steps,
        checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints, seed=args.seed,
        mixed_precision=args.mixed_precision, gradient_checkpointing=args.gradient_checkpointing,
        optimizer=args.optimizer, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, guidance=args.guidance,
        max_sequence_length=args.max_sequence_length, cache_dir=args.cache_dir, on_bad_image=args.on_bad_image,
        num_workers=args.num_workers, resume=args.resume, tensorboard=args.tensorboard, device=args.device,
        progress=not args.quiet, stream=args.stream, stream_cache=args.stream_cache,
        stream_cache_limit=args.stream_cache_limit, stream_prefetch=args.stream_prefetch)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def start():
        from aesthetic4k_metrics.extras import require

        require("a4k-train", "train")
        from aesthetic4k.wavelet.train import train

        return train(config_from_args(args))

    return run_trainer("a4k-train", start)


if __name__ == "__main__":
    sys.exit(main())
