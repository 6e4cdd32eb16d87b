"""How an image becomes a 299 x 299 Inception input, per FID protocol.

Both protocols first bring every image, real or generated, to ``size x size``: torchvision's
bilinear resize of the SHORTER side to ``size`` on the uint8 tensor (antialias on), then a
center crop. They differ only in the last step to 299 x 299:

- ``paper``: TensorFlow-1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False),
  no antialiasing: what torchmetrics 1.5 (via torch-fidelity) fed the Inception and therefore
  what the published Aesthetic-4K FIDs used. From 4096 it samples 4 pixels per output pixel.
- ``clean``: ``torch.nn.functional.interpolate(bilinear, antialias=True, align_corners=False)``
  in float32, which is what torchmetrics >= 1.8 does by default (``antialias=True``). It is not
  clean-fid's PIL-bicubic "clean" mode.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from aesthetic4k_metrics.defaults import FID_PROTOCOL, FID_PROTOCOLS
from aesthetic4k_metrics.errors import UserError
from aesthetic4k_metrics.inception import INPUT_SIZE

PROTOCOLS = FID_PROTOCOLS
# each protocol's whole resize chain in words, recorded next to its numbers
PROTOCOL_RESIZE = {
    "paper": "shorter side to size (torchvision bilinear, antialias, uint8) + center crop, "
             "then TF1 bilinear to 299 without antialias",
    "clean": "shorter side to size (torchvision bilinear, antialias, uint8) + center crop, "
             "then torch bilinear with antialias to 299",
}


def as_chw_uint8(image) -> torch.Tensor:
    """An H x W x 3 uint8 numpy array (RGB) or a (3, H, W) uint8 tensor -> (3, H, W) uint8 tensor."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"expected an H x W x 3 uint8 RGB array, got {image.dtype} {image.shape}")
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise UserError(f"expected a (3, H, W) uint8 tensor, got {image.dtype} {tuple(image.shape)}")
        return image
    raise UserError(f"expected an image array or tensor, got {type(image).__name__}")


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision's output shape when the shorter side of a height x width image goes to ``size``."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def _crop_start(length: int, size: int) -> int:
    return int(round((length - size) / 2.0))     # torchvision's center_crop offset


def shorter_side_center_crop(image: torch.Tensor, size: Optional[int]) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, size, size) uint8: shorter side to ``size`` (bilinear, antialias), center crop."""
    if size is None:
        return image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    height, width = image.shape[-2:]
    if min(height, width) != size:
        # channel by channel: same pixels, a third of torch's temporary buffers (about 0.3 GB
        # instead of 0.9 GB for a 4912 x 6449 reference)
        image = torch.cat([TF.resize(image[c:c + 1], size, interpolation=InterpolationMode.BILINEAR, antialias=True)
                           for c in range(image.shape[0])])
    if tuple(image.shape[-2:]) != (size, size):
        image = TF.center_crop(image, [size, size])
    return image


def _antialias_reads(in_size: int, out_size: int, outputs: torch.Tensor) -> torch.Tensor:
    """Sorted input indices that torch's antialiased bilinear resize reads for ``outputs``.

    torch centres output i at scale * (i + 0.5) and reads within +-support (scale when shrinking,
    1 when growing); one index of margin on each side covers its float32 rounding.
    """
    scale = in_size / out_size
    support = max(scale, 1.0)
    centers = (outputs.double() + 0.5) * scale
    first = torch.floor(centers - support + 0.5).long() - 1
    reads = first.unsqueeze(1) + torch.arange(int(2 * support) + 4)
    return torch.unique(reads.clamp(0, in_size - 1))


def _pick(image: torch.Tensor, rows: torch.Tensor, columns: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``image[..., rows, :][..., columns]`` of a (..., H, W) tensor."""
    if image.ndim == 3 and image.permute(1, 2, 0).is_contiguous():
        # a decoded H x W x 3 array seen as (C, H, W): gathering whole rows there is 10x faster
        picked = image.permute(1, 2, 0).index_select(0, rows)
        if columns is not None:
            picked = picked.index_select(1, columns)
        return picked.permute(2, 0, 1)
    picked = image.index_select(-2, rows)
    return picked if columns is None else picked.index_select(-1, columns)


def resized_pixels_at(image: torch.Tensor, size: Optional[int], rows: torch.Tensor,
                      columns: torch.Tensor) -> torch.Tensor:
    """``shorter_side_center_crop(image, size)[:, rows][:, :, columns]``, computing only what those pixels read.

    torch's antialiased resize of a float image is separable: a horizontal pass over every row,
    then a vertical pass over every column, each output reading a few neighbours. Here the
    horizontal pass runs on only the input rows the wanted output rows read, and the vertical
    pass on only the wanted columns (rows it does not need are zeros). Both passes are torch's own
    kernels at the full image's geometry, so the pixels are the same bits; for a 4915 x 6431
    reference going to 4096 it is about 5x less work than resizing the whole image.
    """
    if size is None:
        return _pick(image, rows, columns)
    height, width = image.shape[-2:]
    out_height, out_width = resized_shape(height, width, size)
    rows = rows + _crop_start(out_height, size)
    columns = columns + _crop_start(out_width, size)
    if (out_height, out_width) == (height, width):
        return _pick(image, rows, columns)
    wanted_rows, row_order = torch.unique(rows, return_inverse=True)
    wanted_columns, column_order = torch.unique(columns, return_inverse=True)
    read_rows = _antialias_reads(height, out_height, wanted_rows) if out_height != height else wanted_rows
    pixels = _pick(image, read_rows).unsqueeze(0).to(torch.float32)          # (1, C, read rows, W)
    interpolate = torch.nn.functional.interpolate
    if out_width != width:
        pixels = interpolate(pixels, size=(pixels.shape[-2], out_width), mode="bilinear", antialias=True,
                             align_corners=False)
    pixels = pixels.index_select(-1, wanted_columns)
    if out_height != height:
        tall = pixels.new_zeros(*pixels.shape[:2], height, pixels.shape[-1])
        tall[..., read_rows, :] = pixels
        pixels = interpolate(tall, size=(out_height, pixels.shape[-1]), mode="bilinear", antialias=True,
                             align_corners=False).index_select(-2, wanted_rows)
    # torchvision rounds its float result back to uint8 the same way
    pixels = pixels.squeeze(0).round_().to(torch.uint8)
    return pixels.index_select(-2, row_order).index_select(-1, column_order)


def _tf1_axis(in_size: int, out_size: int):
    """Source indices and weights of TF1 resize_bilinear along one axis, in TF's float32 arithmetic."""
    scale = torch.tensor(float(in_size), dtype=torch.float32) / torch.tensor(float(out_size), dtype=torch.float32)
    position = torch.arange(out_size, dtype=torch.float32) * scale
    lower = torch.floor(position)
    weight = position - lower
    lower = lower.long().clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    return lower, upper, weight


def tf1_bilinear_resize(image: torch.Tensor, out_height: int, out_width: int,
                        size: Optional[int] = None) -> torch.Tensor:
    """TensorFlow 1.x bilinear resize (no antialias) of (..., H, W) pixels -> float32 (..., out_h, out_w).

    Only the 2 rows and 2 columns each output pixel reads are gathered, so a 4096 x 4096 uint8
    image is never converted to float as a whole. With ``size``, the (C, H, W) image is first
    brought to size x size by ``shorter_side_center_crop``, of which only those pixels are computed.
    """
    height, width = image.shape[-2:] if size is None else (size, size)
    y0, y1, wy = _tf1_axis(height, out_height)
    x0, x1, wx = _tf1_axis(width, out_width)
    device = image.device
    rows, columns = torch.cat([y0, y1]).to(device), torch.cat([x0, x1]).to(device)
    picked = resized_pixels_at(image, size, rows, columns).to(torch.float32)
    wx, wy = wx.to(device), wy.to(device).unsqueeze(-1)
    top_left, top_right = picked[..., :out_height, :out_width], picked[..., :out_height, out_width:]
    bottom_left, bottom_right = picked[..., out_height:, :out_width], picked[..., out_height:, out_width:]
    top = top_left + (top_right - top_left) * wx
    bottom = bottom_left + (bottom_right - bottom_left) * wx
    return top + (bottom - top) * wy


def to_299(image: torch.Tensor, protocol: str, size: Optional[int] = None) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, 299, 299) float32 in [0, 255]: ``shorter_side_center_crop(image, size)``
    then the protocol's last resize (the paper's computes only the pixels it reads)."""
    if protocol == "paper":
        if size is None and tuple(image.shape[-2:]) == (INPUT_SIZE, INPUT_SIZE):
            return image.to(torch.float32)
        return tf1_bilinear_resize(image, INPUT_SIZE, INPUT_SIZE, size)
    if protocol == "clean":
        return torch.nn.functional.interpolate(
            shorter_side_center_crop(image, size).unsqueeze(0).to(torch.float32), size=(INPUT_SIZE, INPUT_SIZE),
            mode="bilinear", align_corners=False, antialias=True).squeeze(0)
    raise UserError(f"unknown FID protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def inception_input(image, size: Optional[int], protocol: str = FID_PROTOCOL) -> torch.Tensor:
    """One image (array or tensor) -> (3, 299, 299) float32 Inception input for ``protocol``."""
    check_protocol(protocol)
    return to_299(as_chw_uint8(image), protocol, size)


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown FID protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    return protocol
