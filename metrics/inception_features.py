"""Images -> Inception features, streamed: the common part of FID, KID and their patch variants.

An image is reduced to its 299 x 299 input(s) as soon as it arrives (one full-size image is
held at a time), inputs are batched through the network, and only 2048-d features are kept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn
from torchmetrics import Metric

from metrics.fid_resize import as_chw_uint8, check_protocol, shorter_side_center_crop, to_299
from metrics.inception import FEATURE_DIM, load_inception
from metrics.patches import crop_positions, extract_patches

_NETWORKS: dict = {}


def default_inception(path: Optional[Union[str, Path]] = None, device="cpu") -> nn.Module:
    """The FID Inception resolved by ``metrics.weights`` (or from ``path``), loaded once per process."""
    from metrics import weights

    resolved = weights.resolve("inception", str(path) if path else None)
    skeleton = weights.package_path(*weights.SPECS["inception"].package_file)
    key = (str(resolved.path), str(device))
    if key not in _NETWORKS:
        _NETWORKS[key] = load_inception(resolved.path, skeleton=skeleton, device=device)
    return _NETWORKS[key]


class InceptionFeatureExtractor(nn.Module):
    """Turns images into (N, 2048) features for one protocol, size and patch recipe.

    ``patch_count`` 0: one input per image (the whole image, resized to 299). ``patch_count`` P:
    P crops of 299 x 299 per image at ``size x size`` (metrics/patches.py), keyed by ``key``.
    """

    def __init__(self, network: nn.Module, size: Optional[int] = None, protocol: str = "paper",
                 batch_size: int = 16, patch_count: int = 0, patch_seed: int = 0):
        super().__init__()
        self.network = network
        self.size = size
        self.protocol = check_protocol(protocol)
        self.batch_size = max(1, int(batch_size))
        self.patch_count = int(patch_count)
        self.patch_seed = int(patch_seed)

    @property
    def device(self) -> torch.device:
        for tensor in self.network.state_dict().values():
            return tensor.device
        return torch.device("cpu")

    def prepare(self, image, key: Optional[str] = None) -> torch.Tensor:
        """One image -> (1 or P, 3, 299, 299) float32 inputs on the CPU."""
        pixels = shorter_side_center_crop(as_chw_uint8(image), self.size)
        if self.patch_count <= 0:
            return to_299(pixels, self.protocol).unsqueeze(0)
        if key is None:
            raise ValueError("patch features need a key per image (its file stem) to seed the crops")
        height, width = pixels.shape[-2:]
        positions = crop_positions(key, self.patch_seed, self.patch_count, height, width)
        return extract_patches(pixels, positions)

    @torch.inference_mode()
    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) inputs -> (N, 2048) float32 features on the CPU, in chunks of batch_size."""
        device = self.device
        out = [self.network(inputs[start:start + self.batch_size].to(device)).float().cpu()
               for start in range(0, inputs.shape[0], self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, int(getattr(self.network, "num_features", FEATURE_DIM)))

    def forward(self, images: Sequence, keys: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Images (list of arrays/tensors or an (N, 3, H, W) uint8 tensor) -> features."""
        if keys is not None and len(keys) != len(images):
            raise ValueError(f"{len(keys)} keys for {len(images)} images")
        inputs = [self.prepare(image, None if keys is None else keys[i]) for i, image in enumerate(images)]
        return self.embed(torch.cat(inputs) if inputs else torch.zeros(0, 3, 299, 299))


class InceptionMetric(Metric):
    """Base of FID/KID: owns the extractor; subclasses accumulate features in ``_accumulate``."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    default_patch_count = 0

    def __init__(self, feature: Optional[Union[nn.Module, str, Path]] = None, size: Optional[int] = None,
                 protocol: str = "paper", batch_size: int = 16, patch_count: Optional[int] = None,
                 patch_seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        network = feature if isinstance(feature, nn.Module) else default_inception(feature)
        count = self.default_patch_count if patch_count is None else patch_count
        self.extractor = InceptionFeatureExtractor(network, size=size, protocol=protocol, batch_size=batch_size,
                                                   patch_count=count, patch_seed=patch_seed)
        self.num_features = int(getattr(network, "num_features", FEATURE_DIM))
        self._auto_keys = {True: 0, False: 0}

    def update(self, images=None, real: bool = False, keys: Optional[Sequence[str]] = None,
               features: Optional[torch.Tensor] = None) -> None:
        """Add a batch of real or generated images, or their precomputed ``features`` (N, 2048).

        With patches and no ``keys``, the i-th real and the i-th generated image get the same
        crops (keys are running counters): pass file stems to pair them by name instead.
        """
        if features is None:
            if images is None:
                raise ValueError("update needs images or features")
            if self.extractor.patch_count > 0 and keys is None:
                start = self._auto_keys[bool(real)]
                keys = [str(start + i) for i in range(len(images))]
                self._auto_keys[bool(real)] += len(images)
            features = self.extractor(images, keys)
        features = torch.as_tensor(features)
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}) features, got {tuple(features.shape)}")
        self._accumulate(features.to(self.device), bool(real))

    def _accumulate(self, features: torch.Tensor, real: bool) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        super().reset()
        self._auto_keys = {True: 0, False: 0}

    def settings(self) -> dict:
        info = {"protocol": self.extractor.protocol, "size": self.extractor.size}
        if self.extractor.patch_count:
            info.update(patch_count=self.extractor.patch_count, patch_seed=self.extractor.patch_seed,
                        patch_size=299)
        return info
