"""Peak memory of the F16 decoder's last stage (nearest 2x upsample + 3x3 conv), partitioned vs not.

At a 4K-equivalent size: a 2048 x 2048 activation (what the F16 decoder holds before its last
stage when it decodes a 256 x 256 latent into a 4096 x 4096 image) becomes a 3 x 4096 x 4096
image. Each variant runs in a fresh subprocess on the CPU and reports its peak resident memory
(``ru_maxrss``); the figure compared is the peak above the memory the inputs alone need, which
is the memory the stage itself adds. SD3's and Flux's VAEs have 128 channels there; the default
here is 32 to keep the benchmark light on a laptop (the ratio does not depend on the channel
count: every buffer of the stage scales with it). Set ``A4K_BENCH_VAE_CHANNELS=128`` for the
real width (needs ~12 GB).

Reference: the unpartitioned computation (``F.interpolate`` + ``F.conv2d``), the same arithmetic.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

SIZE = 2048  # activation side before the upsample: 4096 x 4096 output

_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from aesthetic4k.wavelet.vae_f16 import upsample_conv
channels, size, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
conv = torch.nn.Conv2d(channels, 3, 3, padding=1)
x = torch.randn(1, channels, size, size)
out = torch.empty(1, 3, 2 * size, 2 * size)  # the result buffer: part of the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
with torch.no_grad():
    if mode != "inputs":
        out = upsample_conv(conv, x, int(mode))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kib": base, "peak_kib": peak, "seconds": seconds, "checksum": float(out[0, :, ::97, ::89].sum())}))
"""


def _measure(channels: int, mode: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _CHILD, str(channels), str(SIZE), mode],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({mode}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> None:
    channels = int(os.environ.get("A4K_BENCH_VAE_CHANNELS", "32"))
    activation_mib = channels * SIZE * SIZE * 4 / 2**20
    print(f"F16 decoder last stage at 4K ({channels} x {SIZE}^2 fp32 activation = {activation_mib:.0f} MiB "
          f"-> 3 x {2 * SIZE}^2 image), CPU, peak RSS above inputs:")
    results = {}
    for mode in ("1", "2", "4"):
        r = _measure(channels, mode)
        added = (r["peak_kib"] - r["base_kib"]) / 1024
        results[mode] = (added, r)
        label = "unpartitioned (reference)" if mode == "1" else f"partitioned {mode} x {mode}"
        print(f"  {label:28s} +{added:8.0f} MiB   {r['seconds']:6.2f} s")
    ref_added, ref = results["1"]
    for mode in ("2", "4"):
        added, r = results[mode]
        same = abs(r["checksum"] - ref["checksum"]) <= 1e-3 * max(1.0, abs(ref["checksum"]))
        print(f"  ratio partitioned {mode}x{mode} / unpartitioned: {added / max(ref_added, 1e-9):.3f} "
              f"(memory saved x{ref_added / max(added, 1e-9):.1f}; same output: {same})")


if __name__ == "__main__":
    run()
