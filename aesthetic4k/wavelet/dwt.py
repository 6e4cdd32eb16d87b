"""2-D Haar discrete wavelet transform in torch, batched over N x C x H x W tensors.

The filters come from PyWavelets (``pywt.Wavelet("haar")``) and the coefficients
match ``pywt.dwt2`` / ``pywt.wavedec2`` (same sub-band order, same signs).
Layout conventions, as in pywt:

- ``dwt2(x)`` returns ``(ll, (lh, hl, hh))`` = pywt's ``(cA, (cH, cV, cD))``:
  ``lh`` is low-pass along the width and high-pass along the height (horizontal
  edges), ``hl`` the opposite (vertical edges), ``hh`` diagonal detail.
- ``wavedec2(x, level)`` returns ``[ll_n, (lh_n, hl_n, hh_n), ..., (lh_1, hl_1, hh_1)]``,
  coarsest level first.

Odd sizes: the signal is extended by one sample at the bottom / right before the
transform, so each output has ``ceil(H / 2) x ceil(W / 2)`` coefficients:
``mode="zero"`` extends with 0 (pywt's ``"zero"`` mode, the default here, and the
one the WLF loss uses: zero extension adds no energy, so Parseval still holds),
``mode="periodization"`` repeats the last row / column (pywt's
``"periodization"`` mode). For even sizes both modes are identical. The inverse
returns the even size ``2h x 2w`` unless ``size=`` asks for the original one.

The Haar filter has two taps, so a level is one 2 x 2 block transform: it is
computed with reshapes and a small einsum instead of a convolution, which works
in bf16, fp16 and fp32 on any device and is differentiable.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

MODES = ("zero", "periodization")
BAND_NAMES = ("ll", "lh", "hl", "hh")


@lru_cache(maxsize=None)
def _filter_values(wavelet: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(analysis, synthesis) 2 x 2 matrices as nested tuples: row 0 low-pass, row 1 high-pass.

    The analysis rows are pywt's decomposition filters reversed, because pywt
    convolves while we take a dot product with each 2-sample block.
    """
    import pywt

    try:
        w = pywt.Wavelet(wavelet)
    except ValueError:
        raise ValueError(f"unknown wavelet {wavelet!r}") from None
    if w.dec_len != 2:
        raise ValueError(f"wavelet {wavelet!r} has {w.dec_len} taps; only two-tap (Haar) wavelets are supported")
    analysis = (tuple(w.dec_lo[::-1]), tuple(w.dec_hi[::-1]))
    synthesis = (tuple(w.rec_lo), tuple(w.rec_hi))
    return analysis, synthesis


def _matrix(values, like):
    import torch

    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def _pad_to_even(x, mode: str):
    import torch.nn.functional as F

    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if not (pad_h or pad_w):
        return x
    if mode == "zero":
        return F.pad(x, (0, pad_w, 0, pad_h))
    # periodization: repeat the last row / column (replicate pad is not implemented for every dtype)
    import torch

    if pad_h:
        x = torch.cat([x, x[..., -1:, :]], dim=-2)
    if pad_w:
        x = torch.cat([x, x[..., :, -1:]], dim=-1)
    return x


def dwt2(x, wavelet: str = "haar", mode: str = "zero"):
    """One level of the 2-D DWT of ``x`` (shape ``(..., H, W)``): ``(ll, (lh, hl, hh))``."""
    import torch

    _check_mode(mode)
    if x.dim() < 2:
        raise ValueError(f"dwt2 needs at least a 2-D tensor, got shape {tuple(x.shape)}")
    analysis, _ = _filter_values(wavelet)
    x = _pad_to_even(x, mode)
    *lead, h, w = x.shape
    blocks = x.reshape(*lead, h // 2, 2, w // 2, 2)
    f = _matrix(analysis, x)
    # bands[a, b] = sum_ij f[a, i] * f[b, j] * block[i, j]; a filters the height, b the width
    bands = torch.einsum("ai,bj,...hiwj->ab...hw", f, f, blocks)
    return bands[0, 0], (bands[1, 0], bands[0, 1], bands[1, 1])


def idwt2(ll, details: Sequence, wavelet: str = "haar", size: Sequence[int] | None = None):
    """Inverse of :func:`dwt2`; ``size=(H, W)`` crops the result to an original odd size."""
    import torch

    lh, hl, hh = details
    if not (ll.shape == lh.shape == hl.shape == hh.shape):
        raise ValueError(
            "sub-bands must have the same shape, got "
            + ", ".join(str(tuple(t.shape)) for t in (ll, lh, hl, hh))
        )
    _, synthesis = _filter_values(wavelet)
    g = _matrix(synthesis, ll)
    bands = torch.stack([torch.stack([ll, hl]), torch.stack([lh, hh])])  # bands[a, b]
    blocks = torch.einsum("ai,bj,ab...hw->...hiwj", g, g, bands)
    *lead, h, _, w, _ = blocks.shape
    x = blocks.reshape(*lead, 2 * h, 2 * w)
    if size is not None:
        x = _crop(x, size)
    return x


def _crop(x, size: Sequence[int]):
    height, width = int(size[0]), int(size[1])
    if height > x.shape[-2] or width > x.shape[-1]:
        raise ValueError(f"cannot crop {tuple(x.shape[-2:])} to a larger size {(height, width)}")
    return x[..., :height, :width]


def wavedec2(x, level: int = 1, wavelet: str = "haar", mode: str = "zero") -> list:
    """Multi-level 2-D DWT: ``[ll_n, (lh_n, hl_n, hh_n), ..., (lh_1, hl_1, hh_1)]``."""
    if level < 1:
        raise ValueError(f"level must be >= 1, got {level}")
    details = []
    approx = x
    for _ in range(level):
        approx, bands = dwt2(approx, wavelet, mode)
        details.append(bands)
    return [approx] + details[::-1]


def waverec2(coeffs: Sequence, wavelet: str = "haar", size: Sequence[int] | None = None):
    """Inverse of :func:`wavedec2`; ``size=(H, W)`` crops the result to an original odd size."""
    if len(coeffs) < 2:
        raise ValueError("coeffs must hold the approximation and at least one level of details")
    approx = coeffs[0]
    for details in coeffs[1:]:
        # an odd size at the finer level made the coarser level one sample larger: crop it back
        approx = _crop(approx, details[0].shape[-2:])
        approx = idwt2(approx, details, wavelet)
    if size is not None:
        approx = _crop(approx, size)
    return approx


def subbands(x, level: int = 1, wavelet: str = "haar", mode: str = "zero") -> list:
    """The sub-bands of ``wavedec2`` as a flat list, coarsest first: ``[ll_n, lh_n, hl_n, hh_n, lh_{n-1}, ...]``."""
    coeffs = wavedec2(x, level, wavelet, mode)
    flat = [coeffs[0]]
    for details in coeffs[1:]:
        flat.extend(details)
    return flat


def concat_subbands(x, wavelet: str = "haar", mode: str = "zero"):
    """One level, the four sub-bands concatenated on the channel axis: ``N x 4C x H/2 x W/2`` (LL, LH, HL, HH)."""
    import torch

    ll, (lh, hl, hh) = dwt2(x, wavelet, mode)
    return torch.cat([ll, lh, hl, hh], dim=-3)
