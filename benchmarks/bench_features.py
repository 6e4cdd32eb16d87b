"""FID feature extraction on real pictures at 2048 and 4096: throughput and peak memory.

Inputs are files, as users meet them: N generated images (size x size JPEG q95 crops of the
Debian wallpapers, benchmarks/wallpapers.py) and N references (the same pictures at 1.2 x 1.57
x size, like Aesthetic-4K's non-square references). Each implementation runs in its own process
(its own peak RSS), in the same run:

- ``torchmetrics``: ``FrechetInceptionDistance(feature=2048, antialias=False)`` with the same
  Inception weights (mapped into torch-fidelity's layout), fed one image at a time after the
  paper's resize (Pillow decode, torchvision bilinear shorter side to size with antialias, centre
  crop): what a user of the upstream script runs;
- ``aesthetic4k``: ``aesthetic4k_metrics.FID(batch_size=8)`` fed each side's file paths in one call: images
  decoded and prepared in threads one batch ahead of the network (one decoded image per thread).

Printed per implementation: the whole process's wall time (interpreter start, imports, model
loading and extraction: what a user waits for), its start-up part (imports and building the
metric) and the extraction throughput after start-up, the rate at which a long run proceeds.
Both implementations import torchmetrics (6-7 s on this 2-core machine), which weighs on the
whole-process ratio at small N. ``A4K_BENCH_IMAGES`` sets N (default 8).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (2048, 4096)
MIN_SHORT_SIDE = {2048: 1600, 4096: 2000}   # source pictures used for each size (as bench_detail)
BATCH = 8


def _sets(size: int, count: int) -> tuple[list[Path], list[Path]]:
    from benchmarks.wallpapers import reference_set, square_set

    generated = sorted(square_set(size, count, MIN_SHORT_SIDE[size]).glob("*.jpg"))
    return generated, sorted(reference_set(size, count).glob("*.jpg"))


def _worker(impl: str, size: int, count: int, weights_file: str) -> dict:
    import torch

    generated, references = _sets(size, count)
    start = time.perf_counter()
    if impl == "aesthetic4k":
        from aesthetic4k_metrics.fid import FID

        metric = FID(size=size, protocol="paper", batch_size=BATCH)
        ready = time.perf_counter()
        for files, real in ((generated, False), (references, True)):
            metric.update([str(f) for f in files], real=real)
    else:
        import numpy as np
        from PIL import Image
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        metric = FrechetInceptionDistance(feature=2048, antialias=False, feature_extractor_weights_path=weights_file)
        ready = time.perf_counter()
        for files, real in ((generated, False), (references, True)):
            for file in files:
                with Image.open(file) as image:
                    tensor = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
                tensor = TF.resize(tensor, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
                metric.update(TF.center_crop(tensor, [size, size]).unsqueeze(0), real=real)
    done = time.perf_counter()
    value = float(metric.compute())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": impl, "size": size, "images": 2 * count, "startup_s": ready - start,
            "images_per_s": 2 * count / (done - ready), "peak_rss_mb": peak_mb, "fid": value}


def _mapped_weights(folder: Path) -> str:
    import torch

    from aesthetic4k_metrics.inception import torchscript_to_fidelity
    from aesthetic4k_metrics.inception_features import default_inception

    state = torchscript_to_fidelity(default_inception().net.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = folder / "inception-fidelity.pth"
    torch.save(state, path)
    return str(path)


def _spawn(impl: str, size: int, count: int, weights_file: str) -> dict:
    repo = Path(__file__).resolve().parents[1]
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_features", "--worker", impl, str(size),
                          str(count), weights_file], cwd=repo, capture_output=True, text=True)
    wall = time.perf_counter() - start    # includes compute() of the FID (about 3 s on both sides)
    if out.returncode != 0:
        return {"impl": impl, "size": size, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "wall_s": wall}


def run() -> None:
    from benchmarks.wallpapers import Unavailable

    count = int(os.environ.get("A4K_BENCH_IMAGES", "8"))
    try:
        import torch_fidelity  # noqa: F401
        impls = ("torchmetrics", "aesthetic4k")
    except ImportError:
        impls = ("aesthetic4k",)
        print("torch-fidelity not installed: the torchmetrics column is skipped")
    try:
        for size in SIZES:
            _sets(size, count)              # built once, untimed
    except Unavailable as exc:
        print(f"skipped: {exc}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        weights_file = _mapped_weights(Path(tmp)) if "torchmetrics" in impls else ""
        print(f"FID features from files (real pictures), {count} generated + {count} reference images per size, "
              f"CPU threads={os.cpu_count()}, one process per implementation")
        print(f"{'size':>6} {'impl':>13} {'process s':>10} {'start-up s':>11} {'img/s after':>12} "
              f"{'peak RSS MB':>12} {'vs torchmetrics':>22} {'FID':>10}")
        for size in SIZES:
            rows = {impl: _spawn(impl, size, count, weights_file) for impl in impls}
            reference = rows.get("torchmetrics", {})
            for impl, row in rows.items():
                if "error" in row:
                    print(f"{size:>6} {impl:>13} error: {row['error']}")
                    continue
                ratio = (f"{reference['wall_s'] / row['wall_s']:.2f}x / {row['images_per_s'] / reference['images_per_s']:.2f}x"
                         if reference.get("images_per_s") else "-")
                print(f"{size:>6} {impl:>13} {row['wall_s']:>10.1f} {row['startup_s']:>11.1f} "
                      f"{row['images_per_s']:>12.2f} {row['peak_rss_mb']:>12.0f} {ratio:>22} {row['fid']:>10.3f}")
        print("vs torchmetrics: whole process / extraction throughput after start-up")

if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])))
    else:
        run()
