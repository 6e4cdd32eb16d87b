"""GLCM Score against the straightforward scikit-image reference, patch by patch."""
import math

import numpy as np
import pytest
from skimage.feature import graycomatrix, graycoprops
from skimage.measure import shannon_entropy

import metrics
from metrics.glcm import PROPERTIES, glcm_patch_properties, glcm_patch_scores, pixel_offsets
from tests.images import natural, save

ANGLES = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]


def reference_patches(gray, prop="entropy"):
    q = gray // 4
    rows, cols = gray.shape[0] // 64, gray.shape[1] // 64
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            glcm = graycomatrix(q[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64], [1, 2, 3, 4], ANGLES,
                                levels=64, symmetric=False, normed=True)
            out[r, c] = shannon_entropy(glcm) if prop == "entropy" else round(np.mean(graycoprops(glcm, prop)), 4)
    return out


def test_offsets_match_scikit_image_rounding():
    # distance 2 at 45 degrees rounds to a one-pixel diagonal step, like distance 1
    assert pixel_offsets()[:8] == [(0, 1), (1, 1), (1, 0), (1, -1), (0, 2), (1, 1), (2, 0), (1, -1)]


RNG = np.random.default_rng(7)
GRAYS = {
    "noise": RNG.integers(0, 256, (192, 256), dtype=np.uint8),
    "flat": np.full((128, 192), 77, np.uint8),
    "non_square_remainder": natural(200, 330, seed=1)[:, :, 0],
    "gradient": np.tile(np.arange(256, dtype=np.uint8), (130, 1)),
    "two_levels": (RNG.random((128, 128)) > 0.5).astype(np.uint8) * 255,
    "smooth": natural(256, 256, seed=2)[:, :, 1],
}


@pytest.mark.parametrize("name", sorted(GRAYS))
def test_entropy_equals_reference(name):
    gray = GRAYS[name]
    fast = glcm_patch_scores(gray)
    assert fast.shape == (gray.shape[0] // 64, gray.shape[1] // 64)
    np.testing.assert_allclose(fast, reference_patches(gray), rtol=0, atol=1e-9)


@pytest.mark.parametrize("prop", PROPERTIES)
def test_properties_equal_reference(prop):
    for gray in (GRAYS["noise"], GRAYS["smooth"], GRAYS["flat"]):
        np.testing.assert_allclose(glcm_patch_properties(gray, prop), reference_patches(gray, prop), atol=1e-9)


def test_image_score_uses_opencv_grey_of_the_file(tmp_path):
    import cv2

    rgb = natural(256, 320, seed=3)
    path = save(rgb, tmp_path / "a.png")
    gray = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
    expected = float(np.mean(reference_patches(gray)))
    assert math.isclose(metrics.glcm_score(path), expected, abs_tol=1e-9)
    assert math.isclose(metrics.glcm_score(rgb), expected, abs_tol=1e-9)


def test_pillow_grey_differs_from_opencv_grey():
    # the reason the protocol insists on OpenCV: Pillow rounds the luma differently
    import cv2
    from PIL import Image

    rgb = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert (np.asarray(Image.fromarray(rgb).convert("L")) != cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).any()


def test_too_small_image_is_an_image_error():
    from aesthetic4k.errors import ImageError

    with pytest.raises(ImageError, match="smaller than one 64x64 patch"):
        metrics.glcm_score(np.zeros((63, 500, 3), np.uint8))


def test_sharp_scores_higher_than_upscaled():
    from PIL import Image

    sharp = natural(512, 512, seed=4)
    small = Image.fromarray(sharp).resize((128, 128), Image.Resampling.LANCZOS)
    upscaled = np.asarray(small.resize((512, 512), Image.Resampling.BICUBIC))
    assert metrics.glcm_score(sharp) > metrics.glcm_score(upscaled) + 0.1
