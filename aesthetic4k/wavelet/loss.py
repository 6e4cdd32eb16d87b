"""The wavelet loss of WLF (wavelet-based fine-tuning) for rectified-flow models (SD3, Flux).

Forward process: ``noisy = sigma * noise + (1 - sigma) * x0``; the model predicts the
velocity ``noise - x0``. The prediction is preconditioned to an x0 estimate,
``x0_hat = model_output * (-sigma) + noisy``, and compared with ``x0`` after a 2-D
Haar DWT of both: the sub-bands (LL, LH, HL, HH per level) are weighted and the
squared errors summed, times the SD3 per-sample sigma weighting.

Normalisation: the weighted sum of squared sub-band errors is divided by the number
of latent elements. For one level and even sizes this is exactly the mean over the
four sub-bands concatenated on the channel axis. Because the Haar transform is
orthonormal (Parseval) and zero extension adds no energy, **with equal sub-band
weights the WLF loss equals the plain x0 MSE** (up to rounding) for any number of
levels and any size: only unequal weights make it a different objective.
"""
from __future__ import annotations

import math
from typing import Sequence

from aesthetic4k.wavelet import dwt

WEIGHTING_SCHEMES = ("none", "sigma_sqrt", "cosmap")


def x0_from_prediction(model_output, noisy, sigmas):
    """The x0 estimate of a velocity prediction: ``model_output * (-sigma) + noisy``."""
    return model_output * (-_per_sample(sigmas, noisy)) + noisy


def add_noise(x0, noise, sigmas):
    """Rectified-flow interpolation ``sigma * noise + (1 - sigma) * x0``."""
    s = _per_sample(sigmas, x0)
    return s * noise + (1.0 - s) * x0


def _per_sample(sigmas, like):
    """Broadcast a per-sample vector (or a scalar) against ``like`` (N x ...)."""
    import torch

    sigmas = torch.as_tensor(sigmas, device=like.device, dtype=like.dtype)
    if sigmas.dim() == 0:
        return sigmas
    return sigmas.reshape(-1, *([1] * (like.dim() - 1)))


def sigma_weighting(sigmas, scheme: str = "none"):
    """SD3's per-sample loss weighting: ``none`` (1, the paper's setting with logit-normal
    sampling), ``sigma_sqrt`` (``sigma ** -2``) or ``cosmap`` (``2 / (pi (1 - 2s + 2s^2))``)."""
    import torch

    sigmas = torch.as_tensor(sigmas, dtype=torch.float32)
    if scheme == "none":
        return torch.ones_like(sigmas)
    if scheme == "sigma_sqrt":
        return sigmas.clamp_min(1e-6) ** -2.0
    if scheme == "cosmap":
        return 2.0 / (math.pi * (1 - 2 * sigmas + 2 * sigmas**2))
    raise ValueError(f"weighting must be one of {', '.join(WEIGHTING_SCHEMES)}, not {scheme!r}")


def logit_normal(n: int, mean: float = 0.0, std: float = 1.0, generator=None, device="cpu"):
    """``n`` samples of ``sigmoid(N(mean, std))`` in (0, 1): SD3's logit-normal density."""
    import torch

    z = torch.randn(n, generator=generator, device=device) * std + mean
    return torch.sigmoid(z)


def timestep_density(scheme: str, n: int, mean: float = 0.0, std: float = 1.0, mode_scale: float = 1.29,
                     generator=None):
    """``n`` values in [0, 1] that pick training timesteps, under the names of diffusers' training utilities.

    - ``uniform``: ``u ~ U[0, 1)``, every timestep equally likely (what the upstream Flux script
      does with its default ``--weighting_scheme none``);
    - ``logit_normal``: ``sigmoid(N(mean, std))``, mid-range timesteps favoured (SD3's default);
    - ``mode``: ``1 - u - mode_scale * (cos(pi u / 2)^2 - 1 + u)`` with ``u ~ U[0, 1)``, the
      mode-centred density of the SD3 paper (``mode_scale`` 1.29 upstream).
    """
    import torch

    if scheme == "logit_normal":
        return logit_normal(n, mean, std, generator=generator)
    if scheme not in ("uniform", "mode"):
        raise ValueError(f"timestep sampling must be uniform, logit_normal or mode, not {scheme!r}")
    u = torch.rand(n, generator=generator)
    if scheme == "mode":
        u = 1.0 - u - mode_scale * (torch.cos(math.pi * u / 2.0) ** 2 - 1.0 + u)
    return u


def sample_timesteps(n: int, train_sigmas, train_timesteps, mean: float = 0.0, std: float = 1.0, generator=None,
                     scheme: str = "logit_normal", mode_scale: float = 1.29):
    """Pick ``n`` training timesteps by ``scheme`` (see :func:`timestep_density`), as SD3 / Flux training does.

    ``train_sigmas`` / ``train_timesteps`` are the scheduler's training tables (a fresh
    ``FlowMatchEulerDiscreteScheduler``: ``.sigmas``, ``.timesteps``); the value ``u`` picks
    entry ``floor(u * count)``. Returns ``(sigmas, timesteps)`` on the CPU, float32.
    """
    import torch

    count = len(train_timesteps)
    u = timestep_density(scheme, n, mean, std, mode_scale, generator=generator)
    index = (u * count).long().clamp_(0, count - 1)
    sigmas = torch.as_tensor(train_sigmas, dtype=torch.float32).cpu()[index]
    timesteps = torch.as_tensor(train_timesteps, dtype=torch.float32).cpu()[index]
    return sigmas, timesteps


def band_weight_table(
    level: int = 1,
    band_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    level_weights: Sequence[float] | None = None,
) -> list[float]:
    """Weights in :func:`dwt.subbands` order (``ll_n, lh_n, hl_n, hh_n, lh_{n-1}, ...``).

    ``band_weights`` are (LL, LH, HL, HH); ``level_weights[0]`` is the finest level and
    ``level_weights[-1]`` the coarsest, which also carries the LL band.
    """
    if len(band_weights) != 4:
        raise ValueError(f"band_weights needs 4 values (LL, LH, HL, HH), got {len(band_weights)}")
    if level_weights is None:
        level_weights = [1.0] * level
    if len(level_weights) != level:
        raise ValueError(f"level_weights needs {level} value(s) (one per level), got {len(level_weights)}")
    ll, lh, hl, hh = (float(w) for w in band_weights)
    table = [ll * level_weights[-1]]
    for index in range(level - 1, -1, -1):  # coarsest level first, like subbands()
        table += [lh * level_weights[index], hl * level_weights[index], hh * level_weights[index]]
    return table


def wavelet_loss(
    x0_hat,
    x0,
    sigmas=None,
    weighting: str = "none",
    level: int = 1,
    band_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    level_weights: Sequence[float] | None = None,
    wavelet: str = "haar",
    mode: str = "zero",
    reduction: str = "mean",
):
    """The WLF loss between an x0 estimate and the clean latents (N x C x H x W).

    Computed in float32. ``reduction="none"`` returns one value per sample.
    """
    import torch

    if x0_hat.shape != x0.shape:
        raise ValueError(f"x0_hat and x0 differ in shape: {tuple(x0_hat.shape)} vs {tuple(x0.shape)}")
    weights = band_weight_table(level, band_weights, level_weights)
    diff = x0_hat.float() - x0.float()  # the DWT is linear: transform the difference once
    bands = dwt.subbands(diff, level, wavelet, mode)
    per_sample = torch.zeros(x0.shape[0], device=x0.device, dtype=torch.float32)
    for weight, band in zip(weights, bands):
        if weight:
            per_sample = per_sample + weight * band.pow(2).flatten(1).sum(1)
    per_sample = per_sample / x0[0].numel()
    if sigmas is not None:
        per_sample = per_sample * sigma_weighting(sigmas, weighting).to(per_sample.device)
    return _reduce(per_sample, reduction)


def x0_mse(x0_hat, x0, sigmas=None, weighting: str = "none", reduction: str = "mean"):
    """Plain x0 MSE with the same sigma weighting: the baseline the WLF loss is compared with."""
    per_sample = (x0_hat.float() - x0.float()).pow(2).flatten(1).mean(1)
    if sigmas is not None:
        per_sample = per_sample * sigma_weighting(sigmas, weighting).to(per_sample.device)
    return _reduce(per_sample, reduction)


def _reduce(per_sample, reduction: str):
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be mean, sum or none, not {reduction!r}")
