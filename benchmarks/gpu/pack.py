"""What the lent GPU machine lacks, packed here (``--pack DIR``) and unpacked there (``--inception``).

That machine has its own Python 3.12 with torch, transformers, accelerate, torchmetrics and
OpenCV, reaches no network, and takes at most 64 MiB of files per call. So the pure-Python and
binary wheels it lacks travel in DIR, at the versions installed here, and so does the FID
Inception: its 87 MB file does not fit, so it travels as a half-precision copy (42 MiB) that is
turned back into a float32 TorchScript file there. Its FIDs are then not the published
network's (weights rounded to 11 significant bits), but it is the same network and code path.
"""
from __future__ import annotations

import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

# missing from the lent GPU machine's Python image (docs/gpu-check.md: what it has and how the pack fills the gap)
WHEELS = ("diffusers", "open_clip_torch", "ftfy", "wcwidth", "PyWavelets")
PYTHON_VERSION = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
HALF_INCEPTION = "inception-fp16.pt"
CARRY_LIMIT = 64 * 2**20


def _inception_file() -> Path:
    from aesthetic4k_metrics import weights

    return weights.resolve("inception", None).path


def pack(folder: Path) -> None:
    """Download the wheels for the lent machine and write the half-precision Inception into ``folder``."""
    import torch

    from aesthetic4k_metrics.inception import _load_torchscript

    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in WHEELS]
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", PYTHON_VERSION, "--implementation", "cp", *platforms, "--dest", str(folder), *pins]
    subprocess.run(command, check=True)
    network = _load_torchscript(_inception_file(), "cpu").half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(network, str(folder / HALF_INCEPTION))
    sizes = {path.name: path.stat().st_size for path in sorted(folder.iterdir()) if path.is_file()}
    for name, size in sizes.items():
        print(f"  {size / 2**20:6.1f} MiB  {name}")
    total = sum(sizes.values())
    print(f"  {total / 2**20:6.1f} MiB in {folder} (the device run carries at most {CARRY_LIMIT // 2**20} MiB, "
          "the repository's files included)")


def full_precision_inception(path: Path, work: Path) -> Path:
    """``path`` itself, or for a half-precision TorchScript copy a float32 one written into ``work``."""
    import torch

    from aesthetic4k_metrics.inception import _load_torchscript, is_torchscript

    target = work / f"{path.stem}-float32.pt"
    if target.is_file() and target.stat().st_mtime >= path.stat().st_mtime:   # made by an earlier process
        return target
    if not is_torchscript(path):
        return path
    network = _load_torchscript(path, "cpu")
    if all(tensor.dtype != torch.float16 for tensor in network.state_dict().values()):
        return path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.jit.save is deprecated, still the only writer
        torch.jit.save(network.float(), str(target))
    return target
