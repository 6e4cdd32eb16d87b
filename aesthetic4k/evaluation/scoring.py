"""How a run feeds the metric classes: one path for the file metrics, one for the network metrics.

What a metric reads and needs comes from ``aesthetic4k_metrics.registry``; nothing here is specific to one
metric. File metrics (GLCM Score, Compression Ratio) get one decode per image through
``aesthetic4k_metrics.detail.measure_files``. Network metrics (FID family, CLIPScore, Aesthetics) get
features: computed once per image and recipe (FID and KID share theirs), from the in-memory
image when it was just generated, else from the cache or the file, and added to the metrics in
the run's fixed batches, so the same run gives the same bits however its images were obtained.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from aesthetic4k.errors import ImageError, UserError
from aesthetic4k.evaluation.features import FileFeatures, GeneratedFeatures, recipe_digest
from aesthetic4k.evaluation.intervals import FeatureKeeper
from aesthetic4k.evaluation.sources import Item
from aesthetic4k_metrics.files import display_path, sha256_file
from aesthetic4k_metrics.parallel import ordered_map
from aesthetic4k_metrics.registry import METRICS


class DetailScoring:
    """The file metrics of a run, fed from one decode per image (in ``workers`` threads)."""

    def __init__(self, metrics: dict, jpeg_mode: Optional[str], keep_patches: bool, workers: int, max_pixels: int):
        self.metrics = metrics
        self.jpeg_mode = jpeg_mode if "compression_ratio" in metrics else None
        self.keep_patches = keep_patches
        self.workers = workers
        self.max_pixels = max_pixels

    def measure(self, items: list[Item]) -> list:
        """One measurement per item, in order; ``error`` set for a file that cannot be used."""
        from aesthetic4k_metrics.detail import measure_files

        return list(measure_files([item.image_path for item in items], glcm="glcm_score" in self.metrics,
                                  jpeg_mode=self.jpeg_mode, keep_patches=self.keep_patches,
                                  workers=self.workers, max_pixels=self.max_pixels))

    def per_image(self, item: Item) -> dict:
        """The image's size as decoded (and its GLCM patch grid for the report); the metrics' own per-image
        values come from their ``per_image_values()`` when the run finishes, like every metric's."""
        m = item.detail
        row = {"width": m.width, "height": m.height}
        if self.keep_patches and m.glcm_patches is not None:
            row["glcm_patches"] = m.glcm_patches
        return row

    def add(self, items: list[Item]) -> None:
        """Add a batch (good items only); each process adds its own, ``compute`` combines them."""
        for metric in self.metrics.values():
            metric.add([item.detail for item in items])


class NetworkScoring:
    """The network metrics of a run: features per image and recipe, cached, added in fixed batches."""

    def __init__(self, metrics: dict, generated: Optional[GeneratedFeatures], files: FileFeatures,
                 from_files: bool, max_pixels: int, paired_reference: bool, keep_reference_features: bool = False,
                 workers: int = 1):
        self.metrics = metrics
        self.generated = generated
        self.files = files
        self.from_files = from_files
        self.max_pixels = max_pixels
        self.paired_reference = paired_reference
        self.digests: dict[str, Optional[str]] = {}
        self.extractors: dict[str, object] = {}      # digest -> one metric that computes those features
        for name, metric in metrics.items():
            recipe = metric.feature_recipe()
            digest = recipe_digest(recipe) if recipe is not None else f"uncached-{name}"
            self.digests[name] = digest
            self.extractors.setdefault(digest, metric)
        self.sources: Counter = Counter()             # where generated features came from
        self.real_features: dict[str, list] = {}      # digest -> real features, kept for --save-reference-stats
        self.keep_reference_features = keep_reference_features
        self._sha: dict = {}                          # image path -> sha256 of the saved JPEG
        self.workers = workers                        # threads that decode and prepare images
        self.kept = FeatureKeeper(self.digests)       # per-image features for the row's bootstrap intervals

    def _reference_digests(self) -> list[str]:
        return list(dict.fromkeys(self.digests[n] for n in self.metrics if "reference" in METRICS[n].needs))

    # -- features of one batch

    def generated_features(self, items: list[Item], fresh: bool = False) -> list[tuple[Item, str]]:
        """Set ``item.features`` for every network metric; return the (item, reason) that cannot be read.

        ``fresh``: the items were just generated and are not saved yet: their features come from their
        in-memory pixels and are kept beside the JPEG about to be written (never looked up in a cache).
        """
        jobs = []                                            # (item, stem, pixels or path, digests to compute)
        for item in items:
            missing, kinds = [], set()
            for digest in self.extractors:
                cached, kind = (None, None) if fresh else self._cached_generated(item, digest)
                if cached is None:
                    missing.append(digest)
                else:
                    item.features[digest] = cached
                    kinds.add(kind)
            from_memory = item.image is not None and not self.from_files
            if missing:
                kinds.add("memory" if from_memory else "file")
                jobs.append((item, item.stem, item.image if from_memory else item.image_path, missing))
            # an image counts as "memory" only when every feature of it came from its in-memory pixels
            self.sources["file" if "file" in kinds else "memory"] += 1
        bad = []
        for item, features in self._compute(jobs, bad):
            for digest, value in features.items():
                item.features[digest] = value
                self._store_generated(item, digest, value.numpy(), fresh)
        return bad

    def _compute(self, jobs: list, bad: list):
        """Features of jobs ``(key, stem, pixels or path, digests)``: images decoded and prepared in threads (one
        decoded image per thread at a time), each network run once per batch; returns [(key, {digest: features})],
        and puts (key, reason) of unreadable images in ``bad``."""
        def prepare(job):
            _, stem, source, digests = job
            try:
                pixels = source if isinstance(source, np.ndarray) else _read(source, self.max_pixels)
            except ImageError as exc:
                return None, exc.reason
            return {d: self.extractors[d].prepare(pixels, stem) for d in digests}, None

        prepared = ordered_map(prepare, jobs, self.workers)
        ready = []
        for job, (inputs, error) in zip(jobs, prepared):
            if error is None:
                ready.append((job[0], inputs))
            else:
                bad.append((job[0], error))
        results = [(item, {}) for item, _ in ready]
        for digest, extractor in self.extractors.items():
            chosen = [(index, inputs[digest]) for index, (_, inputs) in enumerate(ready) if digest in inputs]
            for (index, _), value in zip(chosen, extractor.embed([x for _, x in chosen])):
                results[index][1][digest] = value
        return results

    def _cached_generated(self, item: Item, digest: str):
        """(features, "memory" or "file") from a cache, or (None, None)."""
        import torch

        if digest.startswith("uncached"):
            return None, None
        if self.generated is not None and not self.from_files:
            if item.image_path not in self._sha:
                self._sha[item.image_path] = _file_sha256(item.image_path)
            found = self.generated.load(digest, item.stem, self._sha[item.image_path])
            if found is not None:
                return torch.from_numpy(found), "memory"
        found = self.files.load(digest, item.image_path, item.stem)
        return (None, None) if found is None else (torch.from_numpy(found), "file")

    def _store_generated(self, item: Item, digest: str, features: np.ndarray, fresh: bool) -> None:
        if digest.startswith("uncached"):
            return
        if not fresh:
            self.files.save(digest, item.image_path, item.stem, features)
        elif self.generated is not None and not self.from_files:   # keyed by the JPEG about to be written
            self.generated.save(digest, item.stem, hashlib.sha256(item.jpeg).hexdigest(), features)

    def reference_features(self, items: list[Item]) -> dict:
        """Features of the batch's paired reference images: digest -> list in item order."""
        import torch

        digests = self._reference_digests()
        out = {digest: [None] * len(items) for digest in digests}
        jobs = []
        for index, item in enumerate(items):
            if item.reference_path is None:
                raise UserError(f"{item.stem}: no reference image in the dataset (FID-like metrics compare with "
                                "references; give a dataset with images or --reference)")
            missing = []
            for digest in digests:
                cached = None if digest.startswith("uncached") else \
                    self.files.load(digest, item.reference_path, item.stem)
                if cached is None:
                    missing.append(digest)
                else:
                    out[digest][index] = torch.from_numpy(cached)
            if missing:
                jobs.append((index, item.stem, item.reference_path, missing))
        bad = []
        for index, features in self._compute(jobs, bad):
            for digest, value in features.items():
                out[digest][index] = value
                if not digest.startswith("uncached"):
                    self.files.save(digest, items[index].reference_path, items[index].stem, value.numpy())
        if bad:
            index, reason = bad[0]
            raise UserError(f"reference image {display_path(items[index].reference_path)}: {reason}")
        return out

    def add_reference_folder(self, files: list[Path], batch: int, progress) -> None:
        """An unpaired real side: every image of a folder, added to the reference metrics once."""
        for start in range(0, len(files), batch):
            chunk = [Item(path.stem, None, path, path) for path in files[start:start + batch]]
            real = self.reference_features(chunk)
            self._add_real(real)
            self.kept.keep_fixed(real)
            progress(len(chunk))

    def add_reference_stats(self, stats) -> None:
        recipes = {digest: extractor.feature_recipe() for digest, extractor in self.extractors.items()}
        self.kept.keep_stats(stats, recipes)
        for name, metric in self.metrics.items():
            if "reference" in METRICS[name].needs:
                metric.add_reference(stats)

    def _add_real(self, real: dict) -> None:
        import torch

        for name, metric in self.metrics.items():
            if "reference" in METRICS[name].needs:
                metric.update(features=torch.cat(real[self.digests[name]]), real=True)
        if self.keep_reference_features:
            for digest, values in real.items():
                self.real_features.setdefault(digest, []).extend(v.numpy() for v in values)

    # -- adding a batch to the metrics

    def add(self, items: list[Item]) -> None:
        """Add a batch (good items only) to every network metric, real side first for paired references."""
        import torch

        if not items:
            return
        real = None
        if self.paired_reference and self._reference_digests():
            real = self.reference_features(items)
            self._add_real(real)
        self.kept.keep(items, real)
        for name, metric in self.metrics.items():
            features = torch.cat([item.features[self.digests[name]] for item in items])
            needs = METRICS[name].needs
            if "reference" in needs:
                metric.update(features=features, real=False)
            elif "prompt" in needs:
                missing = [item.stem for item in items if not item.prompt]
                if missing:
                    raise UserError(f"{name} needs a prompt for every image; none for {', '.join(missing[:5])}")
                metric.update(features=features, texts=[item.prompt for item in items])
            else:
                metric.update(features=features)

    def reference_stats_arrays(self) -> dict:
        """``{"full": ..., "patches": ...}`` real features collected for --save-reference-stats."""
        out = {}
        for digest, rows in self.real_features.items():
            recipe = self.extractors[digest].feature_recipe() or {}
            out["patches" if recipe.get("patch_count") else "full"] = (np.concatenate(rows), recipe)
        return out


def _read(path: Path, max_pixels: int) -> np.ndarray:
    from aesthetic4k_metrics.pixel_input import read_pil_rgb

    return read_pil_rgb(path, max_pixels)


def _file_sha256(path: Path) -> Optional[str]:
    try:
        return sha256_file(path)
    except OSError:
        return None
