"""The WLF loss: Parseval identity with equal weights, weighted sub-bands against pywt, sigma weighting."""
import math

import numpy as np
import pytest
import pywt
import torch

from aesthetic4k.wavelet import loss as wlf


def _pair(shape=(3, 4, 8, 10), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


def _pywt_weighted_loss(x0_hat, x0, band_weights, level, level_weights=None):
    """Reference from PyWavelets, sample by sample: sum_b w_b * ||band_b(x0_hat) - band_b(x0)||^2 / numel."""
    level_weights = level_weights or [1.0] * level
    ll_w, lh_w, hl_w, hh_w = band_weights
    out = []
    for a, b in zip(x0_hat.numpy(), x0.numpy()):
        ca, cb = pywt.wavedec2(a, "haar", mode="zero", level=level), pywt.wavedec2(b, "haar", mode="zero", level=level)
        total = ll_w * level_weights[-1] * np.sum((ca[0] - cb[0]) ** 2)
        for index, (da, db) in enumerate(zip(ca[1:], cb[1:])):
            lw = level_weights[level - 1 - index]  # pywt lists the coarsest level first
            total += lw * sum(w * np.sum((p - q) ** 2) for w, p, q in zip((lh_w, hl_w, hh_w), da, db))
        out.append(total / a.size)
    return np.array(out)


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 4, 7, 9)])
def test_equal_weights_equal_plain_x0_mse(level, shape):
    # Parseval: the orthonormal Haar transform keeps the sum of squares, so the WLF loss with
    # equal sub-band weights IS the plain x0 MSE (docs/protocol.md section 8)
    x0_hat, x0 = _pair(shape)
    plain = torch.mean((x0_hat - x0) ** 2)
    assert float(wlf.wavelet_loss(x0_hat, x0, level=level)) == pytest.approx(float(plain), rel=1e-6)
    assert float(wlf.x0_mse(x0_hat, x0)) == pytest.approx(float(plain), rel=1e-6)


def test_one_level_equals_mse_of_concatenated_subbands():
    # the authors' formulation: DWT both, concatenate the four sub-bands on channels, MSE
    x0_hat, x0 = _pair((2, 4, 8, 8))
    weights = (1.0, 1.0, 1.0, 1.0)
    a, b = pywt.dwt2(x0_hat.numpy(), "haar"), pywt.dwt2(x0.numpy(), "haar")
    cat_a = np.concatenate([a[0], *a[1]], axis=1)
    cat_b = np.concatenate([b[0], *b[1]], axis=1)
    expected = np.mean((cat_a - cat_b) ** 2)
    assert float(wlf.wavelet_loss(x0_hat, x0, band_weights=weights)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("band_weights, level_weights, level", [
    ((2.0, 1.0, 1.0, 1.0), None, 1),
    ((1.0, 0.5, 0.5, 3.0), None, 1),
    ((0.0, 1.0, 1.0, 1.0), (1.0, 2.0), 2),
    ((1.0, 2.0, 3.0, 4.0), (0.5, 1.0, 2.0), 3),
])
def test_unequal_weights_against_pywt(band_weights, level_weights, level):
    x0_hat, x0 = _pair((2, 3, 16, 12), seed=1)
    ours = wlf.wavelet_loss(x0_hat, x0, level=level, band_weights=band_weights, level_weights=level_weights,
                            reduction="none")
    ref = _pywt_weighted_loss(x0_hat, x0, band_weights, level, level_weights)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6)
    plain = float(torch.mean((x0_hat - x0) ** 2))
    assert abs(float(ours.mean()) - plain) > 1e-3 * plain  # no longer the plain MSE


def test_low_frequency_weight_only_sees_low_frequency_error():
    x0 = torch.zeros(1, 1, 8, 8)
    checker = torch.ones(8, 8)
    checker[::2, 1::2] = checker[1::2, ::2] = -1  # pure diagonal (HH) detail
    x0_hat = checker.reshape(1, 1, 8, 8)
    assert float(wlf.wavelet_loss(x0_hat, x0, band_weights=(1, 0, 0, 0))) == pytest.approx(0.0, abs=1e-7)
    assert float(wlf.wavelet_loss(x0_hat, x0, band_weights=(0, 0, 0, 1))) == pytest.approx(1.0, rel=1e-6)


def test_x0_preconditioning_recovers_x0_from_the_true_velocity():
    x0, noise = _pair((2, 4, 6, 6), seed=2)
    sigmas = torch.tensor([0.3, 0.9], dtype=torch.float64)
    noisy = wlf.add_noise(x0, noise, sigmas)
    s = sigmas.reshape(-1, 1, 1, 1)
    torch.testing.assert_close(noisy, s * noise + (1 - s) * x0)
    velocity = noise - x0
    torch.testing.assert_close(wlf.x0_from_prediction(velocity, noisy, sigmas), x0)
    assert float(wlf.wavelet_loss(wlf.x0_from_prediction(velocity, noisy, sigmas), x0)) < 1e-20


def test_sigma_weighting_schemes():
    sigmas = torch.tensor([0.1, 0.5, 0.9])
    torch.testing.assert_close(wlf.sigma_weighting(sigmas, "none"), torch.ones(3))
    torch.testing.assert_close(wlf.sigma_weighting(sigmas, "sigma_sqrt"), sigmas ** -2.0)
    expected = torch.tensor([2 / (math.pi * (1 - 2 * s + 2 * s * s)) for s in (0.1, 0.5, 0.9)])
    torch.testing.assert_close(wlf.sigma_weighting(sigmas, "cosmap"), expected)
    with pytest.raises(ValueError, match="weighting"):
        wlf.sigma_weighting(sigmas, "bogus")


def test_sigma_weighting_multiplies_each_sample():
    x0_hat, x0 = _pair((2, 4, 8, 8), seed=3)
    sigmas = torch.tensor([0.2, 0.8])
    per_sample = wlf.wavelet_loss(x0_hat, x0, reduction="none")
    weighted = wlf.wavelet_loss(x0_hat, x0, sigmas, "sigma_sqrt", reduction="none")
    torch.testing.assert_close(weighted, per_sample * sigmas ** -2.0)


def test_logit_normal_timesteps():
    g = torch.Generator().manual_seed(0)
    u = wlf.logit_normal(200_000, mean=0.0, std=1.0, generator=g)
    assert 0 < float(u.min()) and float(u.max()) < 1
    logits = torch.logit(u.double())
    assert float(logits.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(logits.std()) == pytest.approx(1.0, abs=0.01)
    # a shifted mean moves the density: mean 1 puts ~84% of the mass above sigmoid(0) = 0.5
    shifted = wlf.logit_normal(100_000, mean=1.0, std=1.0, generator=g)
    assert float((shifted > 0.5).double().mean()) == pytest.approx(0.8413, abs=0.01)


def test_sample_timesteps_uses_the_scheduler_tables():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sigmas, timesteps = wlf.sample_timesteps(64, scheduler.sigmas, scheduler.timesteps,
                                             generator=torch.Generator().manual_seed(1))
    table = {round(float(s), 6): float(t) for s, t in zip(scheduler.sigmas, scheduler.timesteps)}
    for s, t in zip(sigmas, timesteps):
        assert table[round(float(s), 6)] == pytest.approx(float(t))
    torch.testing.assert_close(timesteps, sigmas * 1000)


def test_bad_weights():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="4 values"):
        wlf.wavelet_loss(x, x, band_weights=(1, 1, 1))
    with pytest.raises(ValueError, match="level_weights"):
        wlf.wavelet_loss(x, x, level=2, level_weights=(1.0,))
    with pytest.raises(ValueError, match="shape"):
        wlf.wavelet_loss(x, torch.zeros(1, 1, 4, 2))
