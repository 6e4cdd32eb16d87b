"""Haar DWT in torch against PyWavelets: coefficients, reconstruction, odd sizes, dtypes, gradients."""
import warnings

import numpy as np
import pytest
import pywt
import torch

from aesthetic4k.wavelet import dwt


def _random(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("mode", ["zero", "periodization"])
@pytest.mark.parametrize("size", [(8, 8), (7, 9), (5, 4), (1, 3)])
def test_dwt2_matches_pywt(mode, size):
    x = _random((2, 3, *size))
    ll, (lh, hl, hh) = dwt.dwt2(x, mode=mode)
    ref_ll, (ref_h, ref_v, ref_d) = pywt.dwt2(x.numpy(), "haar", mode=mode)
    for ours, ref in [(ll, ref_ll), (lh, ref_h), (hl, ref_v), (hh, ref_d)]:
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("mode", ["zero", "periodization"])
@pytest.mark.parametrize("size", [(16, 16), (13, 10), (9, 17)])
def test_wavedec2_matches_pywt(mode, size):
    x = _random((1, 2, *size), seed=1)
    ours = dwt.wavedec2(x, level=3, mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pywt: 3 levels on a tiny array see boundary effects
        ref = pywt.wavedec2(x.numpy(), "haar", mode=mode, level=3)
    np.testing.assert_allclose(ours[0].numpy(), ref[0], atol=1e-12)
    for our_level, ref_level in zip(ours[1:], ref[1:]):
        for a, b in zip(our_level, ref_level):
            np.testing.assert_allclose(a.numpy(), b, atol=1e-12)


@pytest.mark.parametrize("mode", ["zero", "periodization"])
@pytest.mark.parametrize("size", [(16, 16), (15, 11), (3, 5)])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_perfect_reconstruction(mode, size, level):
    x = _random((2, 4, *size), seed=2)
    coeffs = dwt.wavedec2(x, level=level, mode=mode)
    back = dwt.waverec2(coeffs, size=size)
    assert back.shape == x.shape
    torch.testing.assert_close(back, x, atol=1e-12, rtol=0)


def test_idwt2_matches_pywt_idwt2():
    x = _random((3, 10, 12), seed=3)
    ll, details = dwt.dwt2(x)
    ref = pywt.idwt2((ll.numpy(), tuple(d.numpy() for d in details)), "haar")
    np.testing.assert_allclose(dwt.idwt2(ll, details).numpy(), ref, atol=1e-12)


def test_parseval_energy_preserved_with_zero_extension():
    x = _random((1, 1, 7, 9), seed=4)
    bands = dwt.subbands(x, level=2)
    energy = sum(float(b.pow(2).sum()) for b in bands)
    assert energy == pytest.approx(float(x.pow(2).sum()), rel=1e-12)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
def test_low_precision_dtypes(dtype, tol):
    x = _random((2, 4, 12, 10), seed=5)
    coeffs = dwt.wavedec2(x.to(dtype), level=2)
    assert coeffs[0].dtype == dtype
    ref = pywt.wavedec2(x.numpy(), "haar", mode="zero", level=2)
    scale = float(np.abs(ref[0]).max())
    np.testing.assert_allclose(coeffs[0].double().numpy(), ref[0], atol=tol * scale)
    back = dwt.waverec2(coeffs, size=(12, 10)).double()
    assert float((back - x).abs().max()) < tol * 4


def test_differentiable_and_adjoint():
    # the orthonormal transform's gradient is its inverse: d/dx <w, DWT(x)> = IDWT(w)
    x = _random((1, 2, 6, 8), seed=6).requires_grad_(True)
    ll, details = dwt.dwt2(x)
    weights = [_random(t.shape, seed=7 + i) for i, t in enumerate([ll, *details])]
    sum((w * t).sum() for w, t in zip(weights, [ll, *details])).backward()
    expected = dwt.idwt2(weights[0], weights[1:])
    torch.testing.assert_close(x.grad, expected, atol=1e-12, rtol=0)


def test_concat_subbands_layout():
    x = _random((2, 3, 8, 8), seed=8)
    cat = dwt.concat_subbands(x)
    assert cat.shape == (2, 12, 4, 4)
    ref_ll, (ref_h, ref_v, ref_d) = pywt.dwt2(x.numpy(), "haar")
    np.testing.assert_allclose(cat[:, :3].numpy(), ref_ll, atol=1e-12)
    np.testing.assert_allclose(cat[:, 9:].numpy(), ref_d, atol=1e-12)


def test_bad_arguments():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="mode"):
        dwt.dwt2(x, mode="symmetric")
    with pytest.raises(ValueError, match="taps"):
        dwt.dwt2(x, wavelet="db2")
    with pytest.raises(ValueError, match="level"):
        dwt.wavedec2(x, level=0)
