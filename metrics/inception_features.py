"""Images -> Inception features, streamed: the common part of FID, KID and their patch variants.

An image is reduced to its 299 x 299 input(s) as soon as it arrives (one full-size image is
held at a time), inputs are batched through the network, and only 2048-d features are kept.
A metric can be fed images (``update(images, real=...)``) or features it extracted earlier
(``extract`` then ``update(features=..., real=...)``), which is how a run caches them. Real
features can be saved to and loaded from a reference-statistics file (metrics/reference_stats.py).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn
from torchmetrics import Metric

from aesthetic4k_metrics.defaults import FID_PROTOCOL
from aesthetic4k_metrics.errors import MetricUnavailable, UserError
from aesthetic4k_metrics.fid_resize import PROTOCOL_RESIZE, as_chw_uint8, check_protocol, to_299
from aesthetic4k_metrics.inception import FEATURE_DIM, INPUT_SIZE, load_inception
from aesthetic4k_metrics.patches import PATCH_RECIPE, crop_positions, extract_patches
from aesthetic4k_metrics.pixel_input import DEFAULT_MAX_PIXELS, image_list, embed_all

_NETWORKS: dict = {}


def inception_network(resolved, device="cpu") -> nn.Module:
    """The network of a resolved Inception weight file, loaded once per process and device."""
    from aesthetic4k_metrics import weights

    skeleton = weights.package_path(*weights.SPECS["inception"].package_file)
    key = (str(resolved.path), str(device))
    if key not in _NETWORKS:
        _NETWORKS[key] = load_inception(resolved.path, skeleton=skeleton, device=device)
    return _NETWORKS[key]


def default_inception(path: Optional[Union[str, Path]] = None, device="cpu") -> nn.Module:
    """The FID Inception resolved by ``aesthetic4k_metrics.weights`` (or from ``path``)."""
    from aesthetic4k_metrics import weights

    return inception_network(weights.resolve("inception", str(path) if path else None), device)


@contextmanager
def _exact_float32(device: torch.device):
    """Convolutions in true float32 on CUDA: cuDNN's default TF32 keeps 10 mantissa bits, which
    would move a GPU's FID away from the CPU's (and with the GPU model and library release)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


class InceptionFeatureExtractor(nn.Module):
    """Turns images into (N, 2048) features for one protocol, size and patch recipe.

    ``patch_count`` 0: one input per image (the whole image, resized to 299). ``patch_count`` P:
    P crops of 299 x 299 per image at ``size x size`` (metrics/patches.py), keyed by ``key``.
    """

    def __init__(self, network: nn.Module, size: Optional[int] = None, protocol: str = FID_PROTOCOL,
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
        pixels = as_chw_uint8(image)
        if self.patch_count <= 0:
            return to_299(pixels, self.protocol, self.size).unsqueeze(0)
        if key is None:
            raise ValueError("patch features need a key per image (its file stem) to seed the crops")
        height, width = pixels.shape[-2:] if self.size is None else (self.size, self.size)
        positions = crop_positions(key, self.patch_seed, self.patch_count, height, width)
        return extract_patches(pixels, positions, self.size)

    @torch.inference_mode()
    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) inputs -> (N, 2048) float32 features on the CPU, in chunks of batch_size."""
        device = self.device
        with _exact_float32(device):
            out = [self.network(inputs[start:start + self.batch_size].to(device)).float().cpu()
                   for start in range(0, inputs.shape[0], self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, int(getattr(self.network, "num_features", FEATURE_DIM)))

    def per_image(self, images: Sequence, keys: Optional[Sequence[str]] = None) -> list[torch.Tensor]:
        """Images -> one (1 or P, 2048) feature tensor per image."""
        if keys is not None and len(keys) != len(images):
            raise ValueError(f"{len(keys)} keys for {len(images)} images")
        inputs = [self.prepare(image, None if keys is None else keys[i]) for i, image in enumerate(images)]
        if not inputs:
            return []
        return list(self.embed(torch.cat(inputs)).split([x.shape[0] for x in inputs]))

    def forward(self, images: Sequence, keys: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Images (list of arrays/tensors or an (N, 3, H, W) uint8 tensor) -> features."""
        features = self.per_image(images, keys)
        return torch.cat(features) if features else torch.zeros(0, FEATURE_DIM)


class InceptionMetric(Metric):
    """Base of FID/KID: owns the extractor; subclasses keep features in ``_accumulate`` / ``_real_state``.

    ``feature`` follows torchmetrics: ``2048`` (the TF-FID Inception resolved by
    ``aesthetic4k_metrics.weights``), an ``nn.Module`` mapping (N, 3, 299, 299) [0, 255] inputs to features,
    or a path to a weight file. ``normalize=True`` takes float images in [0, 1];
    ``reset_real_features=False`` keeps the real side across ``reset()``.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    default_patch_count = 0
    name = ""   # registry name, set by subclasses

    def __init__(self, feature: Union[int, nn.Module, str, Path] = FEATURE_DIM, size: Optional[int] = None,
                 protocol: str = FID_PROTOCOL, batch_size: int = 16, patch_count: Optional[int] = None,
                 patch_seed: int = 0, normalize: bool = False, reset_real_features: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS, workers: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.weight_sha256 = None
        if isinstance(feature, nn.Module):
            network = feature
        elif isinstance(feature, int) and not isinstance(feature, bool):
            if feature != FEATURE_DIM:
                raise UserError(f"feature={feature}: this FID uses the TF-FID Inception's {FEATURE_DIM}-d pool "
                                f"features only; pass feature={FEATURE_DIM} or a feature network (nn.Module)")
            network = self._resolved_network(None)
        else:
            network = self._resolved_network(feature)
        count = self.default_patch_count if patch_count is None else int(patch_count)
        if self.default_patch_count and count < 1:
            raise UserError(f"{self.name} needs patch_count >= 1, got {count}")
        self.extractor = InceptionFeatureExtractor(network, size=size, protocol=protocol, batch_size=batch_size,
                                                   patch_count=count, patch_seed=patch_seed)
        self.num_features = int(getattr(network, "num_features", FEATURE_DIM))
        self.normalize = bool(normalize)
        self.reset_real_features = bool(reset_real_features)
        self.max_pixels = int(max_pixels)
        self.workers = workers          # threads that decode and prepare images (default: usable CPUs)
        self._auto_keys = {True: 0, False: 0}
        self._add_feature_states()

    def _add_feature_states(self) -> None:
        """Register the torchmetrics states that hold what ``_accumulate`` adds (per subclass)."""
        raise NotImplementedError

    def _resolved_network(self, path):
        from aesthetic4k_metrics import weights

        resolved = weights.resolve("inception", str(path) if path else None)
        self.weight_sha256 = weights.sha256_of(resolved.path)
        self.weight_label = resolved.label
        return inception_network(resolved)

    @classmethod
    def from_settings(cls, settings, **extra):
        """Built for a run: weights resolved by ``aesthetic4k_metrics.weights`` (MetricUnavailable if missing)."""
        from aesthetic4k_metrics import weights

        check_protocol(settings.fid_protocol)
        try:
            resolved = weights.resolve("inception", settings.weights.get("inception"),
                                       allow_download=settings.allow_download)
            network = inception_network(resolved, settings.device)
        except (ImportError, UserError) as exc:
            raise MetricUnavailable.of(exc) from None
        metric = cls(network, size=settings.size, protocol=settings.fid_protocol, batch_size=settings.batch_size,
                     patch_count=settings.patch_count if cls.default_patch_count else 0,
                     patch_seed=settings.patch_seed, max_pixels=settings.max_pixels, **extra)
        metric.weight_sha256 = weights.sha256_of(resolved.path)
        metric.weight_label = resolved.label
        return metric

    # -- features

    def feature_recipe(self) -> Optional[dict]:
        """What one image's features depend on (None when the network is not a known file)."""
        if self.weight_sha256 is None:
            return None
        extractor = self.extractor
        recipe = {"network": "inception", "weights": self.weight_sha256[:16], "protocol": extractor.protocol,
                  "size": extractor.size}
        if extractor.patch_count:
            recipe.update(patch_count=extractor.patch_count, patch_seed=extractor.patch_seed)
        return recipe

    def prepare(self, image, key: Optional[str] = None) -> torch.Tensor:
        """One H x W x 3 uint8 RGB image -> its (1 or P, 3, 299, 299) network inputs."""
        return self.extractor.prepare(image, key)

    def embed(self, inputs: list) -> list[torch.Tensor]:
        """Prepared inputs of several images -> one (1 or P, 2048) feature tensor per image."""
        if not inputs:
            return []
        return list(self.extractor.embed(torch.cat(inputs)).split([x.shape[0] for x in inputs]))

    def extract(self, images, keys: Optional[Sequence[str]] = None) -> list[torch.Tensor]:
        """One (1 or P, 2048) feature tensor per image; with patches, ``keys`` (file stems) seed the crops.

        Images are decoded and prepared in ``workers`` threads, one batch of ``batch_size`` ahead of
        the network (pixel_input.prepared_batches): memory does not grow with the number of images.
        """
        if self.extractor.patch_count > 0 and keys is None:
            raise ValueError("patch features need a key per image (its file stem) to seed the crops")
        return embed_all(images, self.prepare, self.embed, keys, self.normalize, self.max_pixels, self.workers,
                         self.extractor.batch_size)

    def update(self, images=None, real: bool = False, keys: Optional[Sequence[str]] = None,
               features=None) -> None:
        """Add a batch of real or generated images, or their features from ``extract`` ((N, 2048) or a list).

        With patches and no ``keys``, the i-th real and the i-th generated image get the same
        crops (keys are running counters): pass file stems to pair them by name instead.
        """
        if features is None:
            if images is None:
                raise ValueError("update needs images or features")
            images = image_list(images)
            if self.extractor.patch_count > 0 and keys is None:
                start = self._auto_keys[bool(real)]
                keys = [str(start + i) for i in range(len(images))]
                self._auto_keys[bool(real)] += len(images)
            features = self.extract(images, keys)
        if isinstance(features, (list, tuple)):
            features = torch.cat([torch.as_tensor(f).reshape(-1, self.num_features) for f in features]) \
                if features else torch.zeros(0, self.num_features)
        features = torch.as_tensor(features)
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}) features, got {tuple(features.shape)}")
        self._accumulate(features.to(self.device), bool(real))

    def _accumulate(self, features: torch.Tensor, real: bool) -> None:
        raise NotImplementedError

    def add_reference(self, stats) -> None:
        """Take the real side from saved reference statistics (metrics/reference_stats.py), checked first."""
        recipe = self.feature_recipe()
        if recipe is None:
            raise UserError("reference statistics need the Inception weights from a file (not a custom network)")
        self.update(features=torch.from_numpy(stats.features_for(recipe)), real=True)

    def _real_state_names(self) -> list[str]:
        return [name for name in self._defaults if name.startswith("real_")]

    def reset(self) -> None:
        kept = {name: getattr(self, name) for name in self._real_state_names()} if not self.reset_real_features else {}
        super().reset()
        for name, value in kept.items():
            setattr(self, name, value)
        self._auto_keys = {True: 0, False: 0}

    # -- for a run

    def per_image_values(self) -> dict:
        """Empty: a distance between two sets has no value per image (the protocol's method, for a run)."""
        return {}

    def provenance(self) -> dict:
        """What the numbers depend on, recorded in a results row's settings."""
        extractor = self.extractor
        out = {"fid_protocol": extractor.protocol, "fid_size": extractor.size,
               "fid_resize": PROTOCOL_RESIZE[extractor.protocol]}
        if self.weight_sha256:
            out.update(inception=getattr(self, "weight_label", "file"), inception_sha256=self.weight_sha256[:16])
        if extractor.patch_count:
            out.update(patch_count=extractor.patch_count, patch_seed=extractor.patch_seed, patch_size=INPUT_SIZE,
                       patch_recipe=PATCH_RECIPE)
        return out

    def __repr__(self) -> str:
        extractor = self.extractor
        patches = f", patch_count={extractor.patch_count}" if extractor.patch_count else ""
        return f"{type(self).__name__}(size={extractor.size}, protocol={extractor.protocol!r}{patches})"
