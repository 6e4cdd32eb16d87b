"""LPIPS with a VGG16 backbone, as defined by Zhang et al., "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric" (CVPR 2018), version 0.1.

For images ``x, y`` in [-1, 1]: both are shifted and scaled per channel, passed through VGG16's
convolutional layers, and read after the last ReLU of each of the five stages (relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3). Each feature map is divided by its L2 norm over channels at every
pixel; the squared difference of the two normalised maps is weighted per channel by a learned
non-negative 1 x 1 layer, averaged over the pixels, and the five stages are summed.

Weights (resolved by :mod:`aesthetic4k_metrics.weights`, never downloaded unless allowed):

- ``vgg16``: torchvision's ImageNet VGG16 (``vgg16-397923af.pth``, keys ``features.N.*``);
- ``lpips-vgg``: the LPIPS v0.1 linear layers (``weights/v0.1/vgg.pth`` of the ``lpips`` package,
  keys ``linK.model.1.weight``).

The stage widths are read from the backbone file, so a small random backbone with the same
layout (what the tests use) loads through the same code.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from aesthetic4k.errors import UserError

VGG16_WIDTHS = (64, 128, 256, 512, 512)
CONVS_PER_STAGE = (2, 2, 3, 3, 3)
# input normalisation of LPIPS v0.1 (per RGB channel, for images in [-1, 1])
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


def _vgg_layers(widths) -> tuple[list, list]:
    """torchvision's ``vgg16().features`` layer order up to relu5_3, and the index of each stage's last ReLU."""
    layers, taps, channels = [], [], 3
    for stage, (width, convs) in enumerate(zip(widths, CONVS_PER_STAGE)):
        if stage:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU()]
            channels = width
        taps.append(len(layers) - 1)
    return layers, taps


class LPIPS(nn.Module):
    """LPIPS-VGG distance; ``forward(x, y)`` returns one value per image pair (N,)."""

    def __init__(self, widths=VGG16_WIDTHS):
        super().__init__()
        layers, self.taps = _vgg_layers(widths)
        self.features = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Conv2d(w, 1, kernel_size=1, bias=False) for w in widths)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def stages(self, x):
        """The five normalised feature maps of ``x`` (N x 3 x H x W in [-1, 1])."""
        x = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        out, taps = [], set(self.taps)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                norm = torch.sqrt(torch.sum(x * x, dim=1, keepdim=True))
                out.append(x / (norm + EPS))
        return out

    def forward(self, x, y):
        distance = 0
        for head, fx, fy in zip(self.heads, self.stages(x), self.stages(y)):
            distance = distance + head((fx - fy) ** 2).mean(dim=(2, 3))
        return distance.flatten()

    # -- weights ----------------------------------------------------------------------------

    @classmethod
    def from_files(cls, backbone_path, heads_path) -> "LPIPS":
        """Build from a torchvision-layout VGG16 state dict and an LPIPS linear-layer file."""
        backbone = _load_state(backbone_path, "vgg16")
        convs = sorted((int(k.split(".")[1]) for k in backbone if k.startswith("features.") and k.endswith(".weight")))
        layers, _ = _vgg_layers(VGG16_WIDTHS)
        expected = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
        if convs[:len(expected)] != expected:
            raise UserError(f"{backbone_path}: not a VGG16 state dict (expected convolutions features."
                            f"{{{','.join(map(str, expected))}}}.weight)")
        widths, index = [], 0
        for convs_in_stage in CONVS_PER_STAGE:
            index += convs_in_stage
            widths.append(int(backbone[f"features.{expected[index - 1]}.weight"].shape[0]))
        model = cls(tuple(widths))
        features = {k[len("features."):]: v for k, v in backbone.items()
                    if k.startswith("features.") and int(k.split(".")[1]) < len(model.features)}
        heads = _load_state(heads_path, "lpips-vgg")
        head_state = {}
        for k in range(len(widths)):
            key = next((name for name in (f"lin{k}.model.1.weight", f"heads.{k}.weight", f"lin{k}.weight")
                        if name in heads), None)
            if key is None:
                raise UserError(f"{heads_path}: no LPIPS linear layer {k} (expected key lin{k}.model.1.weight)")
            head_state[f"{k}.weight"] = heads[key]
        try:
            model.features.load_state_dict(features)
            model.heads.load_state_dict(head_state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"LPIPS weights {backbone_path} / {heads_path} do not fit together ({first})") from None
        return model


def _load_state(path, name: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a torch file
        raise UserError(f"{name} weights {path}: cannot read ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{name} weights {path}: expected a state dict, got {type(state).__name__}")
    return state


def load_lpips(backbone: Optional[str] = None, heads: Optional[str] = None,
               allow_download: Optional[bool] = None) -> tuple[LPIPS, dict]:
    """LPIPS-VGG with weights from the resolver; returns the model and where each file came from.

    ``backbone`` / ``heads`` are explicit paths (``--weights vgg16=PATH``, ``--weights lpips-vgg=PATH``);
    otherwise ``A4K_VGG16`` / ``A4K_LPIPS_VGG``, the caches (torch hub's ``vgg16-397923af.pth``),
    the installed ``lpips`` package, then a download when allowed.
    """
    from aesthetic4k_metrics.weights import resolve

    resolved = {"vgg16": resolve("vgg16", backbone, allow_download),
                "lpips-vgg": resolve("lpips-vgg", heads, allow_download)}
    model = LPIPS.from_files(resolved["vgg16"].path, resolved["lpips-vgg"].path)
    return model, {name: r.label for name, r in resolved.items()}
