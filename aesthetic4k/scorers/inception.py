"""a4k-eval adapters for the Inception metrics: FID, KID, patch-FID, patch-KID.

The four scorers share one feature service per (weights, device, protocol, size, patch recipe):
the network is loaded once, and an image's features computed for FID are reused by KID within
the same batch. Reference images are read by the scorer from ``item.reference_path`` one at a
time; their features are cached on disk (``$A4K_CACHE/features``, keyed by file path, mtime,
size, protocol, evaluation size, patch recipe and Inception file), so re-runs do not decode 4K
references again. Set ``A4K_FEATURE_CACHE=0`` or ``extra["feature_cache"] = False`` to disable.

Options used: ``size``, ``fid_protocol``, ``patch_count``, ``patch_seed``, ``device``,
``batch_size``, ``weights["inception"]``, ``extra``: ``allow_download``, ``feature_cache``,
``kid_subsets`` (100), ``kid_subset_size`` (1000).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import numpy as np

from metrics import weights
from aesthetic4k.atomic import atomic_path
from aesthetic4k.errors import UserError
from aesthetic4k.scoring import Item, MetricUnavailable, Scorer, ScoringOptions

PAPER_RESIZE = ("shorter side to size (torchvision bilinear, antialias, uint8) + center crop, "
                "then TF1 bilinear to 299 without antialias")
CLEAN_RESIZE = ("shorter side to size (torchvision bilinear, antialias, uint8) + center crop, "
                "then torch bilinear with antialias to 299")
PATCH_RECIPE = ("P crops of 299x299 at size x size (after the same resize/crop), corners uniform from "
                "numpy PCG64 seeded by sha256(seed/stem); same corners for reference and generated image")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("torchmetrics", "torch-fidelity", "torchvision", "torch"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


class ReferenceFeatureCache:
    """Features of reference images on disk, one .npy per (file, mtime, size, recipe)."""

    def __init__(self, folder: Path, recipe: dict):
        self.folder = folder
        self.recipe = recipe

    def _file(self, path: Path, kind: str) -> Optional[Path]:
        try:
            stat = path.stat()
        except OSError:
            return None
        key = dict(self.recipe, file=str(path.resolve()), mtime_ns=stat.st_mtime_ns, bytes=stat.st_size, kind=kind)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:40]
        return self.folder / f"{digest}.npy"

    def load(self, path: Path, kind: str) -> Optional[np.ndarray]:
        file = self._file(path, kind)
        if file is None or not file.is_file():
            return None
        try:
            return np.load(file, allow_pickle=False)
        except (OSError, ValueError):
            return None      # a damaged cache entry is recomputed

    def save(self, path: Path, kind: str, features: np.ndarray) -> None:
        file = self._file(path, kind)
        if file is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(file) as tmp, open(tmp, "wb") as handle:
                np.save(handle, features, allow_pickle=False)
        except OSError:
            pass             # a read-only cache only costs time


class InceptionFeatureService:
    """Features of generated and reference images for one configuration, shared by the scorers."""

    MEMO_ENTRIES = 512

    def __init__(self, options: ScoringOptions, resolved: weights.ResolvedWeight):
        from metrics.inception_features import InceptionFeatureExtractor, default_inception

        self.resolved = resolved
        network = default_inception(resolved.path, device=options.device)
        common = dict(size=options.size, protocol=options.fid_protocol, batch_size=options.batch_size)
        self.extractors = {
            "full": InceptionFeatureExtractor(network, **common),
            "patches": InceptionFeatureExtractor(network, patch_count=options.patch_count,
                                                 patch_seed=options.patch_seed, **common),
        }
        self.memo: OrderedDict = OrderedDict()
        use_cache = options.extra.get("feature_cache", True) and os.environ.get("A4K_FEATURE_CACHE", "1") != "0"
        stat = resolved.path.stat()
        recipe = {"version": 1, "protocol": options.fid_protocol, "size": options.size,
                  "patch_count": options.patch_count, "patch_seed": options.patch_seed,
                  "inception": [str(resolved.path), stat.st_size]}
        self.disk = ReferenceFeatureCache(weights.cache_root() / "features" / "inception", recipe) if use_cache else None

    def _remember(self, key, value) -> None:
        self.memo[key] = value
        self.memo.move_to_end(key)
        while len(self.memo) > self.MEMO_ENTRIES:
            self.memo.popitem(last=False)

    def features(self, items: list[Item], real: bool, kind: str):
        """(sum of per-image counts, 2048) float32 features of the batch, in item order."""
        import torch

        extractor = self.extractors[kind]
        per_item: list = [None] * len(items)
        pending, pending_keys, pending_index = [], [], []
        for index, item in enumerate(items):
            key = self._key(item, real, kind)
            if key in self.memo:
                per_item[index] = self.memo[key]
                continue
            if real and self.disk is not None:
                cached = self.disk.load(Path(item.reference_path), kind)
                if cached is not None:
                    per_item[index] = torch.from_numpy(cached)
                    self._remember(key, per_item[index])
                    continue
            # one decoded image alive at a time: reduce it to 299 x 299 inputs right away
            pending.append(extractor.prepare(self._pixels(item, real), key=item.stem))
            pending_keys.append(key)
            pending_index.append(index)
        if pending:
            counts = [p.shape[0] for p in pending]
            computed = extractor.embed(torch.cat(pending)).split(counts)
            for index, key, value in zip(pending_index, pending_keys, computed):
                value = value.contiguous()
                per_item[index] = value
                self._remember(key, value)
                if real and self.disk is not None:
                    self.disk.save(Path(items[index].reference_path), kind, value.numpy())
        return torch.cat(per_item) if per_item else torch.zeros(0, 2048)

    @staticmethod
    def _key(item: Item, real: bool, kind: str):
        if real:
            path = Path(item.reference_path)
            try:
                stat = path.stat()
            except OSError:
                raise UserError(f"{path}: reference image of {item.stem!r} cannot be read") from None
            return ("real", kind, str(path), stat.st_mtime_ns, stat.st_size, item.stem)
        if item.image is not None:
            pixels = np.ascontiguousarray(item.image)
            return ("fake", kind, item.stem, pixels.shape, hashlib.blake2b(pixels.data, digest_size=16).hexdigest())
        if item.image_path is None:
            raise UserError(f"{item.stem}: no generated image to score")
        path = Path(item.image_path)
        try:
            stat = path.stat()
        except OSError:
            raise UserError(f"{path}: generated image of {item.stem!r} cannot be read") from None
        return ("fake", kind, item.stem, str(path), stat.st_mtime_ns, stat.st_size)

    @staticmethod
    def _pixels(item: Item, real: bool):
        from metrics.image_input import read_rgb

        if real:
            return read_rgb(item.reference_path)
        if item.image is not None:
            return item.image
        if item.image_path is not None:
            return read_rgb(item.image_path)
        raise UserError(f"{item.stem}: no generated image to score")


_SERVICES: dict = {}


def feature_service(options: ScoringOptions) -> InceptionFeatureService:
    from metrics.fid_resize import check_protocol

    check_protocol(options.fid_protocol)
    try:
        resolved = weights.resolve("inception", options.weights.get("inception"),
                                   allow_download=options.extra.get("allow_download"))
    except UserError as exc:
        raise MetricUnavailable(f"unavailable: {exc}") from None
    key = (str(resolved.path), str(options.device), options.fid_protocol, options.size, options.patch_count,
           options.patch_seed, options.batch_size, options.extra.get("feature_cache", True))
    if key not in _SERVICES:
        try:
            _SERVICES[key] = InceptionFeatureService(options, resolved)
        except ImportError as exc:
            raise MetricUnavailable(f"unavailable: {exc}; pip install torch torchvision torchmetrics") from None
    return _SERVICES[key]


class _InceptionScorer(Scorer):
    needs_reference = True
    kind = "full"

    def __init__(self, options: ScoringOptions):
        if self.kind == "patches" and options.patch_count < 1:
            raise UserError(f"{self.name} needs --patch-count >= 1, got {options.patch_count}")
        self.options = options
        self.service = feature_service(options)
        self.metric = self._make_metric(self.service.extractors[self.kind].network)

    def _make_metric(self, network):
        raise NotImplementedError

    def add(self, items: list[Item]) -> list[dict]:
        missing = [item.stem for item in items if item.reference_path is None]
        if missing:
            raise UserError(f"{self.name} compares with reference images; none for {', '.join(missing[:5])} "
                            "(use --dataset with the reference images)")
        self.metric.update(features=self.service.features(items, real=False, kind=self.kind), real=False)
        self.metric.update(features=self.service.features(items, real=True, kind=self.kind), real=True)
        return [{} for _ in items]

    def settings(self) -> dict:
        out = {"fid_protocol": self.options.fid_protocol, "fid_size": self.options.size,
               "fid_resize": PAPER_RESIZE if self.options.fid_protocol == "paper" else CLEAN_RESIZE,
               "inception": self.service.resolved.label,
               "inception_sha256": weights.sha256_of(self.service.resolved.path)[:16], **_versions()}
        if self.kind == "patches":
            out.update(patch_count=self.options.patch_count, patch_seed=self.options.patch_seed,
                       patch_recipe=PATCH_RECIPE)
        return out

    def close(self) -> None:
        self.metric = None


class FIDScorer(_InceptionScorer):
    name = "fid"
    columns = ("fid",)

    def _make_metric(self, network):
        from metrics.fid import FID

        return FID(network, size=self.options.size, protocol=self.options.fid_protocol)

    def result(self) -> dict:
        if min(int(self.metric.real_count), int(self.metric.fake_count)) < 2:
            return {self.columns[0]: math.nan}
        return {self.columns[0]: float(self.metric.compute())}


class PatchFIDScorer(FIDScorer):
    name = "patch_fid"
    columns = ("patch_fid",)
    kind = "patches"


class KIDScorer(_InceptionScorer):
    name = "kid"
    columns = ("kid", "kid_std")

    def _make_metric(self, network):
        from metrics.kid import KID

        return KID(network, size=self.options.size, protocol=self.options.fid_protocol,
                   subsets=int(self.options.extra.get("kid_subsets", 100)),
                   subset_size=int(self.options.extra.get("kid_subset_size", 1000)), seed=self.options.patch_seed)

    def result(self) -> dict:
        if self.metric.effective_subset_size() < 2:
            return {self.columns[0]: math.nan} if self.name == "patch_kid" else {"kid": math.nan, "kid_std": math.nan}
        mean, std = self.metric.compute()
        if self.name == "patch_kid":
            return {"patch_kid": float(mean)}
        return {"kid": float(mean), "kid_std": float(std)}

    def settings(self) -> dict:
        out = super().settings()
        used = self.metric.effective_subset_size()
        out.update(kid_kernel="(x.y/d+1)^3, unbiased MMD^2", kid_subsets=self.metric.subsets,
                   kid_subset_size=used, kid_seed=self.metric.seed)
        if used < self.metric.subset_size:
            out["kid_note"] = (f"fewer samples than subset size {self.metric.subset_size}: "
                               f"subsets of {used} (all samples), std not informative")
        return out


class PatchKIDScorer(KIDScorer):
    name = "patch_kid"
    columns = ("patch_kid",)
    kind = "patches"
