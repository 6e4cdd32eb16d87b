"""GLCM Score speed: the vectorised kernel against the scikit-image reference loop, same run.

The reference is what a straightforward script does per 64 x 64 patch: ``graycomatrix`` with
distances 1-4 x 4 angles, 64 levels, non-symmetric, normed, then ``shannon_entropy`` (or the
six ``graycoprops`` averaged over the grid). Test images are synthetic but natural-looking:
smooth multi-scale shading, flat hard-edged shapes, patches of fine texture and sensor grain.
Times are the best of several runs (the reference: best of two on the rows it times).
"""
import time

import numpy as np

SIZES = (2048, 4096)
REFERENCE_ROWS = {2048: 32, 4096: 16}  # patch rows the reference loop is timed on; more are extrapolated
PROPERTY_ROWS = 4  # patch rows for the properties comparison
FAST_REPEATS = 5


def natural_image(size: int, seed: int = 0) -> np.ndarray:
    """Deterministic natural-looking uint8 grey image of size x size."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.float32)
    for cells, amplitude in ((4, 60.0), (16, 25.0), (64, 8.0)):  # shading at three scales
        coarse = rng.normal(0, 1, (cells + 2, cells + 2)).astype(np.float32)
        img += amplitude * cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    img += 128
    for _ in range(40):  # flat objects with hard edges
        x, y = (int(v) for v in rng.integers(0, size, 2))
        radius = int(rng.integers(size // 40, size // 8))
        shade = float(rng.uniform(20, 235))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), radius, shade, -1)
        else:
            cv2.rectangle(img, (x, y), (x + radius, y + radius // 2), shade, -1)
    for _ in range(12):  # regions of fine texture of varied strength
        x, y = (int(v) for v in rng.integers(0, size - size // 6, 2))
        side = int(rng.integers(size // 16, size // 6))
        img[y:y + side, x:x + side] += rng.normal(0, rng.uniform(3, 30), (side, side)).astype(np.float32)
    img += rng.normal(0, 1.5, img.shape).astype(np.float32)  # sensor grain
    return np.clip(img, 0, 255).astype(np.uint8)


def _reference_patches(gray: np.ndarray, n_rows: int, props=None) -> np.ndarray:
    """scikit-image per patch on the first n_rows patch rows: entropies, or the properties' grid means."""
    from skimage.feature import graycomatrix, graycoprops
    from skimage.measure import shannon_entropy

    q = gray // 4
    n_cols = gray.shape[1] // 64
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    out = np.zeros((n_rows, n_cols) if props is None else (len(props), n_rows, n_cols))
    for r in range(n_rows):
        for c in range(n_cols):
            glcm = graycomatrix(q[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64], [1, 2, 3, 4], angles,
                                levels=64, symmetric=False, normed=True)
            if props is None:
                out[r, c] = shannon_entropy(glcm)
            else:
                for k, prop in enumerate(props):
                    out[k, r, c] = np.mean(graycoprops(glcm, prop))
    return out


def _best(fn, repeats):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run():
    import numba

    from metrics.glcm import PROPERTIES, glcm_patch_properties, glcm_patch_scores

    print(f"GLCM Score, 64 x 64 patches, 4 distances x 4 angles; numba threads: {numba.get_num_threads()}")
    glcm_patch_scores(natural_image(256, seed=1))  # JIT warm-up (or load from the numba cache)
    glcm_patch_properties(natural_image(256, seed=1), "contrast")
    for size in SIZES:
        gray = natural_image(size)
        n_rows = size // 64
        ref_rows = min(REFERENCE_ROWS.get(size, n_rows), n_rows)
        ref_time, ref = _best(lambda: _reference_patches(gray, ref_rows), 2)
        ref_time *= n_rows / ref_rows
        fast_time, fast = _best(lambda: glcm_patch_scores(gray), FAST_REPEATS)
        diff = float(np.abs(fast[:ref_rows] - ref).max())
        note = "" if ref_rows == n_rows else f" (timed on {ref_rows}/{n_rows} patch rows, scaled)"
        print(f"{size}x{size} entropy: reference {ref_time:.3f} s{note}, fast {fast_time:.4f} s, "
              f"ratio {ref_time / fast_time:.1f}x, max |diff| {diff:.2e}, score {fast.mean():.4f}")

        crop = gray[:PROPERTY_ROWS * 64]
        ref_time, ref = _best(lambda: _reference_patches(crop, PROPERTY_ROWS, PROPERTIES), 2)
        ref_time *= n_rows / PROPERTY_ROWS
        fast_time, fast = _best(lambda: [glcm_patch_properties(gray, p) for p in PROPERTIES], 2)
        diff = max(float(np.abs(f[:PROPERTY_ROWS] - np.round(r, 4)).max()) for f, r in zip(fast, ref))
        print(f"{size}x{size} six properties: reference {ref_time:.3f} s (timed on {PROPERTY_ROWS}/{n_rows} "
              f"patch rows, scaled), fast {fast_time:.4f} s, ratio {ref_time / fast_time:.1f}x, "
              f"max |diff| after rounding to 4 decimals {diff:.1e}")


if __name__ == "__main__":
    run()
