"""Inception feature extraction for FID at 2048 and 4096: throughput and peak memory.

Each configuration runs in its own process (so peak RSS is its own) on N generated images
(size x size) plus N references (non-square, 1.2 x 1.57 x size like Aesthetic-4K's), streamed one
decoded image at a time. The reference implementation is torchmetrics'
``FrechetInceptionDistance(feature=2048, antialias=False)`` with the same Inception weights
(mapped into torch-fidelity's layout) after the same torchvision resize + center crop: the
paper's pipeline. ``A4K_BENCH_IMAGES`` sets N (default 4; 195 is the Eval@4096 size).
Needs torch-fidelity for the reference column.
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


def _images(size: int, count: int):
    """(generated, reference) pairs, built one at a time from one random base (not all held)."""
    import numpy as np

    rng = np.random.default_rng(0)
    ref_shape = (int(size * 1.2), int(size * 1.57), 3)
    base_ref = rng.integers(0, 256, ref_shape, dtype=np.uint8)
    base_gen = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for index in range(count):
        base_ref[index::97, :, index % 3] ^= 0x55    # make each image different, in place
        base_gen[index::89, :, (index + 1) % 3] ^= 0x33
        yield base_gen, base_ref


def _worker(impl: str, size: int, count: int, weights_file: str) -> dict:
    import torch

    from metrics.inception_features import default_inception

    network = default_inception()
    elapsed = 0.0
    if impl == "ours":
        from metrics.fid import FID

        metric = FID(network, size=size, protocol="paper", batch_size=8)
        for generated, reference in _images(size, count):
            start = time.perf_counter()
            metric.update([generated], real=False)
            metric.update([reference], real=True)
            elapsed += time.perf_counter() - start
    else:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        metric = FrechetInceptionDistance(feature=2048, antialias=False, feature_extractor_weights_path=weights_file)
        for generated, reference in _images(size, count):
            start = time.perf_counter()
            for array, real in ((generated, False), (reference, True)):
                tensor = torch.from_numpy(array).permute(2, 0, 1)
                tensor = TF.resize(tensor, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
                metric.update(TF.center_crop(tensor, [size, size]).unsqueeze(0), real=real)
            elapsed += time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": impl, "size": size, "images": 2 * count, "seconds": elapsed,
            "images_per_s": 2 * count / elapsed, "peak_rss_mb": peak_mb}


def _mapped_weights(folder: Path) -> str:
    import torch

    from metrics.inception import torchscript_to_fidelity
    from metrics.inception_features import default_inception

    state = torchscript_to_fidelity(default_inception().net.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = folder / "inception-fidelity.pth"
    torch.save(state, path)
    return str(path)


def _spawn(impl: str, size: int, count: int, weights_file: str) -> dict:
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_features", "--worker", impl, str(size),
                          str(count), weights_file], cwd=repo, capture_output=True, text=True)
    if out.returncode != 0:
        return {"impl": impl, "size": size, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> None:
    count = int(os.environ.get("A4K_BENCH_IMAGES", "4"))
    try:
        import torch_fidelity  # noqa: F401
        impls = ("ours", "torchmetrics")
    except ImportError:
        impls = ("ours",)
        print("torch-fidelity not installed: reference column skipped")
    with tempfile.TemporaryDirectory() as tmp:
        weights_file = _mapped_weights(Path(tmp)) if "torchmetrics" in impls else ""
        print(f"FID feature extraction, CPU threads={os.cpu_count()}, {count} generated + {count} reference images "
              "per size, peak RSS of the whole process")
        print(f"{'size':>6} {'impl':>13} {'img/s':>8} {'peak RSS MB':>12} {'speed vs ref':>13}")
        for size in SIZES:
            rows = {impl: _spawn(impl, size, count, weights_file) for impl in impls}
            reference = rows.get("torchmetrics", {})
            for impl, row in rows.items():
                if "error" in row:
                    print(f"{size:>6} {impl:>13} error: {row['error']}")
                    continue
                ratio = (f"{row['images_per_s'] / reference['images_per_s']:.2f}x"
                         if reference.get("images_per_s") else "-")
                print(f"{size:>6} {impl:>13} {row['images_per_s']:>8.2f} {row['peak_rss_mb']:>12.0f} {ratio:>13}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])))
    else:
        run()
