"""The partitioned F16 VAE: a diffusers ``AutoencoderKL`` (F8) turned into a 16x one with the same weights.

- Encoder: the first convolution gets stride 2, so latents are 1/16 of the image.
- Decoder: after the last norm + activation, a nearest 2x upsample precedes the final
  3x3 convolution, so images are 16x the latents.

At 4K that last upsample + convolution holds the largest activation of the whole
model (128 channels at full resolution), so it is computed in ``k x k`` spatial
partitions. Each partition reads a halo of one pre-upsample pixel on every inner
side (two pixels after upsampling, enough for the 3x3 kernel), and the halo is
cropped from the output at offset ``2 * halo`` -- i.e. rows ``[2, 2h + 2)`` of an
inner tile. (The authors' script crops at offset 1, which shifts the image by one
pixel; this module is exactly equal to the unpartitioned computation.)

The conversion changes no parameter names: a converted VAE's ``state_dict`` and
``save_pretrained`` output are those of the original F8 model, so a saved pipeline
stays a plain diffusers folder and is converted again after loading.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

F16_MARK = "_a4k_f16"


def _bounds(length: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(length)`` into ``parts`` contiguous nearly equal pieces (no empty one)."""
    parts = max(1, min(parts, length))
    edges = [i * length // parts for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def upsample_conv(conv: nn.Conv2d, x: torch.Tensor, partitions: int = 1) -> torch.Tensor:
    """``conv(nearest_upsample_2x(x))``, computed in ``partitions x partitions`` tiles.

    Equal to the unpartitioned result (same arithmetic per output pixel); peak memory
    of the upsampled activation falls by about ``partitions ** 2``.
    """
    if partitions <= 1:
        return _plain_forward(conv, F.interpolate(x, scale_factor=2.0, mode="nearest"))
    pad_h, pad_w = conv.padding if isinstance(conv.padding, tuple) else (conv.padding, conv.padding)
    # source pixels needed on each side so that the padded conv sees real neighbours
    halo_h, halo_w = math.ceil(pad_h / 2), math.ceil(pad_w / 2)
    height, width = x.shape[-2:]
    rows = []
    for top, bottom in _bounds(height, partitions):
        src_top, src_bottom = max(top - halo_h, 0), min(bottom + halo_h, height)
        row = []
        for left, right in _bounds(width, partitions):
            src_left, src_right = max(left - halo_w, 0), min(right + halo_w, width)
            tile = x[..., src_top:src_bottom, src_left:src_right]
            out = _plain_forward(conv, F.interpolate(tile, scale_factor=2.0, mode="nearest"))
            # keep the output rows/cols of [top, bottom) x [left, right); the halo was 2x wide after upsampling
            off_h, off_w = 2 * (top - src_top), 2 * (left - src_left)
            row.append(out[..., off_h : off_h + 2 * (bottom - top), off_w : off_w + 2 * (right - left)])
        rows.append(torch.cat(row, dim=-1))
    return torch.cat(rows, dim=-2)


def _plain_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return conv._conv_forward(x, conv.weight, conv.bias)


class UpsampleConv2d(nn.Conv2d):
    """The decoder's ``conv_out`` after conversion: nearest 2x upsample, then the same
    convolution, in ``partitions x partitions`` tiles. Same parameters as ``nn.Conv2d``."""

    partitions: int = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv(self, x, self.partitions)


def _check_convertible(vae) -> None:
    from aesthetic4k.errors import UserError

    encoder, decoder = getattr(vae, "encoder", None), getattr(vae, "decoder", None)
    conv_in = getattr(encoder, "conv_in", None)
    conv_out = getattr(decoder, "conv_out", None)
    if not isinstance(conv_in, nn.Conv2d) or not isinstance(conv_out, nn.Conv2d):
        raise UserError(
            f"cannot make an F16 VAE from {type(vae).__name__}: expected a diffusers AutoencoderKL "
            "(encoder.conv_in and decoder.conv_out convolutions)"
        )
    if tuple(conv_out.stride) != (1, 1) or conv_out.padding_mode != "zeros":
        raise UserError(f"cannot make an F16 VAE: decoder.conv_out has stride {conv_out.stride} / "
                        f"padding mode {conv_out.padding_mode}; expected stride 1 with zero padding")


def make_f16(vae, partitions: int = 2):
    """Convert ``vae`` (a diffusers ``AutoencoderKL``) to F16 in place and return it.

    Idempotent: converting again only changes the number of partitions.
    """
    if int(partitions) < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if not getattr(vae, F16_MARK, False):
        _check_convertible(vae)
        vae.encoder.conv_in.stride = (2, 2)
        # swap the class only: parameters, names and state_dict keys stay those of the F8 model
        vae.decoder.conv_out.__class__ = UpsampleConv2d
        # tiled decoding would cut the image at F8 tile sizes; F16 uses partitions instead
        if hasattr(vae, "disable_tiling"):
            vae.disable_tiling()
        setattr(vae, F16_MARK, True)
    vae.decoder.conv_out.partitions = int(partitions)
    return vae


def make_f8(vae):
    """Undo :func:`make_f16` in place (back to the original F8 model)."""
    if getattr(vae, F16_MARK, False):
        vae.encoder.conv_in.stride = (1, 1)
        vae.decoder.conv_out.__class__ = nn.Conv2d
        del vae.decoder.conv_out.partitions
        setattr(vae, F16_MARK, False)
    return vae


def is_f16(vae) -> bool:
    return bool(getattr(vae, F16_MARK, False))


def spatial_factor(vae) -> int:
    """Image pixels per latent pixel of ``vae`` (8 for SD3's / Flux's VAE, 16 after conversion)."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return factor * 2 if is_f16(vae) else factor
