"""GLCM Score and the classic properties against scikit-image, patch by patch (tests/glcm_reference.py)."""
import math

import numpy as np
import pytest

import aesthetic4k_metrics
from aesthetic4k_metrics import native_kernels
from aesthetic4k_metrics.glcm import PROPERTIES, glcm_patch_properties, glcm_patch_scores, patch_values, pixel_offsets
from aesthetic4k_metrics.glcm_kernels import STEPS
from tests.glcm_reference import opencv_grey, reference_file_score, reference_patches
from tests.images import natural, save


def test_offsets_match_scikit_image_rounding():
    # distance 2 at 45 degrees rounds to a one-pixel diagonal step, like distance 1
    assert pixel_offsets()[:8] == [(0, 1), (1, 1), (1, 0), (1, -1), (0, 2), (1, 1), (2, 0), (1, -1)]
    assert len(STEPS) == 14


RNG = np.random.default_rng(7)
GRAYS = {
    "noise": RNG.integers(0, 256, (192, 256), dtype=np.uint8),
    "flat": np.full((128, 192), 77, np.uint8),
    "non_square_remainder": natural(200, 330, seed=1)[:, :, 0],
    "gradient": np.tile(np.arange(256, dtype=np.uint8), (130, 1)),
    "two_levels": (RNG.random((128, 128)) > 0.5).astype(np.uint8) * 255,
    "smooth": natural(256, 256, seed=2)[:, :, 1],
    "all_levels": np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8),
}


@pytest.mark.parametrize("name", sorted(GRAYS))
def test_entropy_equals_reference(name):
    gray = GRAYS[name]
    fast = glcm_patch_scores(gray)
    assert fast.shape == (gray.shape[0] // 64, gray.shape[1] // 64)
    np.testing.assert_allclose(fast, reference_patches(gray), rtol=0, atol=1e-9)


@pytest.mark.parametrize("prop", PROPERTIES)
def test_properties_equal_upstream_rounding(prop):
    # upstream: graycoprops(...).round(4), then the mean of the 16 distance/angle values
    for name in ("noise", "smooth", "flat", "two_levels"):
        gray = GRAYS[name]
        np.testing.assert_allclose(glcm_patch_properties(gray, prop), reference_patches(gray, prop),
                                   rtol=0, atol=1e-9, err_msg=name)


def test_rounding_happens_before_the_mean():
    # the other order (mean, then round) differs on this image: the test above can tell them apart
    from skimage.feature import graycomatrix, graycoprops

    from tests.glcm_reference import ANGLES, DISTANCES

    patch = GRAYS["noise"][:64, :64] // 4
    values = graycoprops(graycomatrix(patch, DISTANCES, ANGLES, levels=64, normed=True), "contrast")
    assert abs(values.round(4).mean() - round(values.mean(), 4)) > 1e-6
    assert glcm_patch_properties(GRAYS["noise"][:64, :64], "contrast")[0, 0] == pytest.approx(values.round(4).mean(),
                                                                                            abs=1e-12)


def test_threads_split_rows_without_changing_numbers():
    gray = natural(64 * 7, 64 * 3, seed=9)[:, :, 2]
    one = glcm_patch_scores(gray)
    assert np.array_equal(glcm_patch_scores(gray, threads=3), one)
    assert np.array_equal(glcm_patch_scores(gray, threads=50), one)
    assert np.array_equal(patch_values(gray, "homogeneity", threads=4), glcm_patch_properties(gray, "homogeneity"))


def test_numba_fallback_gives_the_same_numbers(monkeypatch):
    gray = GRAYS["smooth"]
    native = native_kernels.load(aesthetic4k_metrics.glcm._geometry)
    fallback = native_kernels.load(aesthetic4k_metrics.glcm._geometry, prefer="numba")
    assert fallback.source == "numba" and native.source in ("cache", "built", "memory"), native.reason
    expected = (glcm_patch_scores(gray), glcm_patch_properties(gray, "correlation"))
    monkeypatch.setattr(aesthetic4k_metrics.glcm, "kernels", lambda: fallback)
    assert np.array_equal(glcm_patch_scores(gray), expected[0])
    assert np.array_equal(glcm_patch_properties(gray, "correlation"), expected[1])


def test_kernels_refuse_arrays_of_the_wrong_layout():
    kernels = aesthetic4k_metrics.glcm.kernels()
    if kernels.source == "numba":
        pytest.skip(f"machine code unavailable here: {kernels.reason}")
    table, n_values, _ = aesthetic4k_metrics.glcm._tables()
    from aesthetic4k_metrics.glcm_kernels import entropy_scratch

    out = np.empty((1, 1))
    with pytest.raises(TypeError, match="C-ordered"):
        kernels.entropies(np.zeros((64, 64), np.uint8)[:, ::-1], table, n_values, out, *entropy_scratch(n_values))
    with pytest.raises(TypeError, match="uint8"):
        kernels.entropies(np.zeros((64, 64), np.int16), table, n_values, out, *entropy_scratch(n_values))


def test_image_score_uses_opencv_grey_of_the_file(tmp_path):
    rgb = natural(256, 320, seed=3)
    path = save(rgb, tmp_path / "a.png")
    expected = reference_file_score(path)
    assert math.isclose(aesthetic4k_metrics.glcm_score(path), expected, abs_tol=1e-9)
    assert math.isclose(aesthetic4k_metrics.glcm_score(rgb), expected, abs_tol=1e-9)
    assert math.isclose(aesthetic4k_metrics.glcm_score(rgb, "ASM"), reference_file_score(path, "ASM"), abs_tol=1e-9)


def test_every_readable_odd_file_equals_reference(tmp_path):
    from tests.odd_files import make_odd_files

    for case in make_odd_files(tmp_path):
        if case.expected == "ok":
            import cv2

            data = (tmp_path / case.name).read_bytes()
            grey = opencv_grey(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
            np.testing.assert_allclose(glcm_patch_scores(grey), reference_patches(grey), atol=1e-9, err_msg=case.name)


def test_pillow_grey_differs_from_opencv_grey():
    # the reason the protocol insists on OpenCV: Pillow rounds the luma differently
    import cv2
    from PIL import Image

    rgb = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert (np.asarray(Image.fromarray(rgb).convert("L")) != cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).any()


def test_too_small_image_is_an_image_error():
    from aesthetic4k.errors import ImageError

    with pytest.raises(ImageError, match="smaller than one 64x64 patch"):
        aesthetic4k_metrics.glcm_score(np.zeros((63, 500, 3), np.uint8))


def test_same_input_same_bytes():
    gray = natural(256, 192, seed=6)[:, :, 0]
    assert glcm_patch_scores(gray).tobytes() == glcm_patch_scores(gray.copy()).tobytes()


def test_sharp_scores_higher_than_upscaled():
    from PIL import Image

    sharp = natural(512, 512, seed=4)
    small = Image.fromarray(sharp).resize((128, 128), Image.Resampling.LANCZOS)
    upscaled = np.asarray(small.resize((512, 512), Image.Resampling.BICUBIC))
    assert aesthetic4k_metrics.glcm_score(sharp) > aesthetic4k_metrics.glcm_score(upscaled) + 0.1


@pytest.mark.parametrize("prefer", ["native", "numba"])
def test_kernels_release_the_gil(prefer):
    # while one thread is inside a kernel call, another thread runs Python code
    import threading

    from aesthetic4k_metrics.glcm_kernels import entropy_scratch

    kernels = native_kernels.load(aesthetic4k_metrics.glcm._geometry, prefer=prefer)
    table, n_values, _ = aesthetic4k_metrics.glcm._tables()
    q = np.random.default_rng(0).integers(0, 64, (64 * 24, 64 * 24), dtype=np.uint8)
    out, scratch = np.empty((24, 24)), entropy_scratch(n_values)
    kernels.entropies(np.ascontiguousarray(q[:64, :64]), table, n_values, out[:1, :1], *scratch)  # warm
    state = {"inside": False, "done": False}

    def work():
        state["inside"] = True
        kernels.entropies(q, table, n_values, out, *scratch)
        state["done"] = True

    thread = threading.Thread(target=work)
    thread.start()
    while not state["inside"]:
        pass
    spins = 0
    while not state["done"]:
        spins += 1
    thread.join()
    assert spins > 1000
