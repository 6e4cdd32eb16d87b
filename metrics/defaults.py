"""Every default and allowed value of the metrics, in one place: the library, argparse and the data tools read them.

Plain constants, no imports: any module (and ``a4k-eval --help``, which must not import torch)
can read them. The defaults are the published Aesthetic-4K protocol.
"""
from __future__ import annotations

# 250 megapixels (e.g. 15800 x 15800): far above any camera, far below what exhausts memory
MAX_PIXELS = 250_000_000
JPEG_QUALITY = 95                        # the paper's generated images, and Compression Ratio's re-encode
EVAL_SIZE = 2048                         # FID-family evaluation size; a generator's image size
METRIC_BATCH_SIZE = 8                    # images per network forward pass (and per step of a run)

CR_MODES = ("jpeg95", "file")            # Compression Ratio: re-encode at JPEG_QUALITY, or the file's size
CR_MODE = "jpeg95"
FID_PROTOCOLS = ("paper", "clean")       # how an image becomes a 299 x 299 Inception input (fid_resize.py)
FID_PROTOCOL = "paper"

PATCH_COUNT = 8                          # patch-FID/KID: seeded 299 x 299 crops per image
PATCH_SEED = 0
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000

CLIP_SCORE_MODEL = "ViT-B-16"            # the open_clip model of CLIPScore
AESTHETICS_MODEL = "ViT-L-14"            # the open_clip model under the LAION aesthetic head
PRECISIONS = ("fp16", "fp32")            # Aesthetics' CLIP precision (None: fp16 on CUDA, fp32 on the CPU)
