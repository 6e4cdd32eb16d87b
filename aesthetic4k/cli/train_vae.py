"""a4k-train-vae: the Scale-Consistent F16 VAE (SC-VAE) of the Diffusion-4K journal version.

Launch on one device with ``a4k-train-vae ...`` and on several with
``accelerate launch -m aesthetic4k.cli.train_vae ...``. Heavy libraries are imported only once
training starts.
"""
from __future__ import annotations

import argparse
import sys

from aesthetic4k.cli.common import Parser, add_run_options, finite_number, run_trainer

EXAMPLE = """example (a tiny run on the CPU; LPIPS weights by path):
  a4k-train-vae --base ./tiny-flux --data ./photos --output-dir runs/scvae --resolution 64 \\
      --batch-size 2 --gradient-accumulation 1 --max-steps 20 --checkpoint-every 10 --device cpu \\
      --disc-channels 16 --disc-depth 3 --weights vgg16=vgg16.pth --weights lpips-vgg=vgg.pth
resume the newest checkpoint of a run:
  a4k-train-vae --base ./tiny-flux --data ./photos --output-dir runs/scvae ... --resume
generate with it:
  a4k-eval --generator flux-4k --vae runs/scvae/checkpoint-000020 --dataset sample --out results.csv
LPIPS needs torchvision's VGG16 (vgg16-397923af.pth; the torch hub cache, A4K_VGG16 or
--weights vgg16=PATH) and the LPIPS v0.1 linear layers (`pip install lpips`, A4K_LPIPS_VGG or
--weights lpips-vgg=PATH); --allow-download fetches missing ones once.
"""


def _weights(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (vgg16=... or lpips-vgg=...), got {text!r}")
    return name, path


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="a4k-train-vae",
        description="Train the Scale-Consistent F16 VAE (SC-VAE): the F16-converted VAE's decoder learns to "
                    "match the original F8 VAE (teacher) with pixel MSE, LPIPS, a patch GAN and the "
                    "scale-consistency loss. Defaults are the upstream sc-vae/train_vae.sh. Each checkpoint "
                    "is a VAE folder for `a4k-eval --vae <folder>` and `a4k-train --vae <folder>`.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    need = parser.add_argument_group("what to train")
    need.add_argument("--base", required=True, help="the original model: a diffusers pipeline (hub id or folder; "
                      "its vae/) or a VAE folder; teacher and the student's starting point")
    need.add_argument("--data", required=True, help="training images: a dataset folder or .jsonl in the published "
                      "layout (e.g. SA-1B's metadata_vae_sa1b.jsonl), or a folder of images; with --stream a hub "
                      "dataset (aesthetic-4k, aesthetic-train-v2, owner/name) or a folder in the hub layout")
    need.add_argument("--output-dir", required=True, help="where checkpoint-<step>/ folders and logs go")
    need.add_argument("--resolution", type=int, default=512, help="square training crop after resizing the shorter "
                      "side (default 512)")

    method = parser.add_argument_group("method (one step = one student update + one discriminator update)")
    method.add_argument("--pixel-loss", choices=["mse", "patch"], default="mse",
                        help="mse: image MSE (default); patch: MSE of 32x32 windows at stride 16")
    method.add_argument("--lpips-weight", type=finite_number, default=0.1, help="LPIPS (VGG) weight (default 0.1)")
    method.add_argument("--gan-weight", type=finite_number, default=0.05, help="adversarial weight, times the adaptive "
                        "weight (default 0.05)")
    method.add_argument("--sc-weight", type=finite_number, default=1.0, help="scale-consistency weight (default 1)")
    method.add_argument("--gp-weight", type=finite_number, default=10.0,
                        help="discriminator gradient penalty (default 10)")
    method.add_argument("--max-adaptive-weight", type=finite_number, default=1e4, help="clamp of the adaptive weight "
                        "(default 1e4)")
    method.add_argument("--disc-channels", type=int, default=512, help="discriminator width (default 512)")
    method.add_argument("--disc-depth", type=int, default=6, help="strided discriminator layers (default 6)")
    method.add_argument("--partitions", type=int, default=2, help="k x k partitions of the student's last decoder "
                        "stage (default 2; only memory changes)")
    method.add_argument("--no-ema", dest="ema", action="store_false", help="export the raw student instead of its "
                        "exponential moving average")
    method.add_argument("--ema-decay", type=finite_number, default=0.9999, help="EMA decay (default 0.9999)")

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--learning-rate", type=finite_number, default=1e-5,
                     help="student decoder, constant (default 1e-5)")
    opt.add_argument("--disc-learning-rate", type=finite_number, default=1e-5,
                     help="discriminator, constant (default 1e-5)")
    opt.add_argument("--weight-decay", type=finite_number, default=1e-4, help="AdamW weight decay (default 1e-4)")
    opt.add_argument("--max-grad-norm", type=finite_number, default=1.0, help="gradient clipping, 0 = off (default 1)")
    opt.add_argument("--batch-size", type=int, default=32, help="images per device and micro-batch (default 32)")
    opt.add_argument("--gradient-accumulation", type=int, default=2, help="micro-batches per update (default 2)")
    opt.add_argument("--epochs", type=finite_number, default=1.0, help="passes over the data (default 1)")
    opt.add_argument("--max-steps", type=int, default=None, help="steps, instead of --epochs")
    opt.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default="no", help="default no")
    opt.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false",
                     help="faster, more memory (checkpointing is on by default)")
    opt.add_argument("--seed", type=int, default=0, help="data order, crops and noise (default 0)")

    run = add_run_options(parser, checkpoint_every=5000)
    run.add_argument("--weights", type=_weights, action="append", default=[], metavar="NAME=PATH",
                     help="an LPIPS weight file: vgg16=PATH (torchvision VGG16) or lpips-vgg=PATH (linear layers)")
    run.add_argument("--allow-download", action="store_true", default=None,
                     help="download missing LPIPS weights once (off by default)")
    return parser


def config_from_args(args):
    from aesthetic4k.scvae.config import VaeTrainConfig

    options = {k: v for k, v in vars(args).items() if k not in ("quiet", "weights")}
    return VaeTrainConfig(**options, weights=dict(args.weights), progress=not args.quiet)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def start():
        from aesthetic4k_metrics.extras import require

        require("a4k-train-vae", "train", ("torch", "diffusers", "accelerate", "safetensors"))
        from aesthetic4k.scvae.train import train_vae

        return train_vae(config_from_args(args))

    return run_trainer("a4k-train-vae", start)


if __name__ == "__main__":
    sys.exit(main())
