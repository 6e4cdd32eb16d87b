"""One evaluation run: dataset x generator x metrics -> one results.csv row.

Generated images are saved as Pillow JPEG q95 named ``<stem>.jpg`` (the paper's protocol) and a
re-run skips the images that already exist, so an interrupted run resumes. The fine-detail
metrics are computed from those files in worker processes (both cores); the model-based
metrics get the in-memory image. Everything streams in batches: memory does not grow with the
number of images. Under torchrun/accelerate the records are sharded across ranks, torchmetrics
synchronises the metric states, and only rank 0 writes files.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from aesthetic4k import __version__
from aesthetic4k.data.images import save_atomic
from aesthetic4k.errors import ImageError, UserError
from aesthetic4k.generators.base import GeneratorOptions
from aesthetic4k.scoring import Item, MetricUnavailable, ScoringOptions, build_scorer
from metrics.cache import cache_root
from metrics.registry import METRICS, PUBLISHED

JPEG_QUALITY = 95
SMALL_SET = 100  # below this FID/KID mostly measure the sample size (Aesthetic-Eval@4096 has 195)


@dataclass
class EvalConfig:
    generator: str
    out: Optional[Path] = None
    dataset: Optional[str] = None
    size: int = 2048
    metrics: Optional[list] = None          # None: the five published metrics, those that can run
    limit: Optional[int] = None
    seed: int = 0
    batch_size: int = 1
    workers: int = 0                        # detail-metric processes; 0: one per core
    cr_mode: str = "jpeg95"
    per_image: Optional[Path] = None
    images_out: Optional[Path] = None
    skip_bad: bool = False
    from_files: bool = False                # model-based metrics read the saved JPEGs, never the in-memory image
    report: Optional[Path] = None
    progress: bool = True
    generator_options: GeneratorOptions = field(default_factory=GeneratorOptions)
    scoring: ScoringOptions = field(default_factory=ScoringOptions)


@dataclass
class RunResult:
    row: dict                               # the results.csv row
    per_image: list                         # one dict per image (stem, file, width, height, metric values)
    settings: dict
    image_dir: Optional[Path] = None


# ---------------------------------------------------------------- distributed


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def first(self, work):
        """Run ``work`` on rank 0, then on the other ranks (which find its files in place)."""
        if self.world == 1:
            return work()
        import torch.distributed as dist

        result = work() if self.main else None
        dist.barrier()
        return result if self.main else work()

    def gather(self, obj) -> list:
        """Objects of every rank, in rank order (just ``[obj]`` on one process)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def setup_ranks(device: str) -> Ranks:
    """Join the process group that torchrun / accelerate launch describe in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


# ---------------------------------------------------------------- per-image detail work


def analyze_image(task) -> dict:
    """Worker: decode one image file, compute its GLCM Score and JPEG byte count.

    Returns a small dict (never the pixels) or ``{"error": reason}`` for a bad file.
    """
    path, want_glcm, jpeg_mode, keep_patches = task
    from metrics.compression import jpeg_bytes_of_rgb
    from metrics.glcm import glcm_patch_scores
    from metrics.image_input import read_image, to_gray

    try:
        decoded = read_image(path)
        height, width = decoded.bgr.shape[:2]
        out = {"width": width, "height": height, "file_bytes": decoded.file_bytes}
        if want_glcm:
            patches = glcm_patch_scores(to_gray(decoded.bgr))
            out["glcm_score"] = float(np.mean(patches))
            if keep_patches:  # the HTML report draws heat maps and crops from them
                out["glcm_patches"] = patches
        if jpeg_mode == "jpeg95":
            out["jpeg_bytes"] = jpeg_bytes_of_rgb(decoded.rgb, JPEG_QUALITY)
        elif jpeg_mode == "file":
            out["jpeg_bytes"] = decoded.file_bytes
        return out
    except ImageError as exc:
        return {"error": exc.reason}
    except MemoryError:
        return {"error": "out of memory while decoding"}


def _init_worker():
    # each worker is single-threaded: the pool itself spreads the images over the cores
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:
        pass


class DetailPool:
    """Runs ``analyze_image`` over batches of files in worker processes (or inline with 1 worker)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None
        if workers > 1:
            import multiprocessing

            self.pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker)

    def map(self, tasks: list) -> list:
        if self.pool is None:
            return [analyze_image(t) for t in tasks]
        return self.pool.map(analyze_image, tasks, chunksize=1)

    def close(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


# ---------------------------------------------------------------- images on disk


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "generator"


def default_images_out(generator, dataset_name: str, size: int, seed: int) -> Path:
    """A cache folder keyed by generator, its settings, dataset, size and seed."""
    settings = json.dumps({"defaults": getattr(generator, "defaults", {}), "seed": seed}, sort_keys=True, default=str)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
    return cache_root() / "generated" / f"{_slug(generator.name)}-{digest}" / _slug(dataset_name) / str(size)


def _check_generated(images, count: int, size: int, name: str) -> list:
    from PIL import Image

    if images is None or len(images) != count:
        got = "nothing" if images is None else f"{len(images)} images"
        raise UserError(f"generator {name} returned {got} for {count} prompts")
    checked = []
    for image in images:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        if not isinstance(image, Image.Image):
            raise UserError(f"generator {name} returned {type(image).__name__}, expected PIL images")
        if image.size != (size, size):
            raise UserError(f"generator {name} returned a {image.width}x{image.height} image, expected {size}x{size}")
        checked.append(image.convert("RGB"))
    return checked


# ---------------------------------------------------------------- the run


class Run:
    def __init__(self, config: EvalConfig):
        self.config = config
        self.notes: list[str] = []           # goes to the status column
        self.pixel_sources = {"memory": 0, "file": 0}  # where the model-based metrics got their pixels
        self.ranks = Ranks()

    # -- setup

    def _metric_names(self) -> tuple[list, bool]:
        if self.config.metrics:
            return list(self.config.metrics), True
        return list(PUBLISHED), False

    def _open_dataset(self):
        spec = self.config.dataset
        if not spec:
            return None
        from aesthetic4k.data import open_dataset

        return open_dataset(spec, size=self.config.size, split="eval")

    def _records(self, dataset, generator) -> list:
        if dataset is not None:
            records = list(dataset.records())
            if not records:
                raise UserError(f"dataset {dataset.name}: no entries")
        elif hasattr(generator, "own_records"):
            records = generator.own_records()
        else:
            raise UserError(f"generator {generator.name} needs prompts: give --dataset (aesthetic-4k, sample or a folder)")
        if hasattr(generator, "match") and dataset is not None:
            records, missing, extra = generator.match(records)
            if missing:
                self.notes.append(f"missing {len(missing)} image(s) for dataset entries: {_short(missing)}")
            if extra:
                self.notes.append(f"{len(extra)} image(s) not in the dataset ignored: {_short(extra)}")
            if not records:
                raise UserError(f"no image in {generator.folder} matches a stem of dataset {dataset.name}")
        if self.config.limit:
            records = records[: self.config.limit]
        return records

    def _scorers(self, names, explicit, dataset, has_prompts):
        scorers = {}
        for name in names:
            info = METRICS[name]
            reason = None
            if "reference" in info.needs and dataset is None:
                reason = "unavailable: needs reference images (--dataset)"
            elif "prompt" in info.needs and not has_prompts:
                reason = "unavailable: needs prompts (--dataset)"
            if reason is None:
                try:
                    scorers[name] = build_scorer(name, self.config.scoring)
                    continue
                except MetricUnavailable as exc:
                    reason = str(exc)
            if explicit:
                raise UserError(f"{name}: {reason}")
            self.notes.append(f"{name}: {reason}")
        if not scorers:
            raise UserError("no metric can run: " + "; ".join(self.notes))
        return scorers

    # -- main loop

    def execute(self) -> RunResult:
        config = self.config
        from aesthetic4k.generators.registry import create

        self.ranks = setup_ranks(config.scoring.device)
        dataset = self.ranks.first(self._open_dataset)  # rank 0 downloads / renders, the others reuse
        generator = create(config.generator, config.generator_options)
        records = self._records(dataset, generator)
        has_prompts = dataset is not None and any(r.prompt for r in records)
        names, explicit = self._metric_names()
        scorers = self._scorers(names, explicit, dataset, has_prompts)
        dataset_name = dataset.name if dataset is not None else "none"
        if getattr(dataset, "is_sample", False):
            self.notes.append("sample set: smoke test, not a benchmark")

        in_place = hasattr(generator, "image_path")
        image_dir = None
        if not in_place:
            image_dir = Path(config.images_out) if config.images_out else \
                default_images_out(generator, dataset_name, config.size, config.seed)
            image_dir.mkdir(parents=True, exist_ok=True)
        elif hasattr(generator, "folder"):
            image_dir = generator.folder

        shard = records[self.ranks.rank::self.ranks.world]
        want_glcm = "glcm_score" in scorers
        jpeg_mode = "none"
        if "compression_ratio" in scorers:
            # A generated image is saved with exactly the jpeg95 encoder, so its file size is the jpeg95 size.
            jpeg_mode = "file" if (config.cr_mode == "file" or not in_place) else "jpeg95"
        needs_pixels = any(s.needs_pixels for s in scorers.values())
        keep_patches = config.report is not None
        workers = config.workers or min(os.cpu_count() or 1, 4)
        pool = DetailPool(workers if (want_glcm or jpeg_mode == "jpeg95") else 1)
        per_image, bad = [], []
        progress = _progress(len(shard), f"{generator.name} {config.size}px", config.progress and self.ranks.main)
        try:
            batch = max(1, config.batch_size) if not in_place else max(2 * workers, config.batch_size)
            for start in range(0, len(shard), batch):
                chunk = shard[start:start + batch]
                items = self._materialise(generator, chunk, image_dir, in_place)
                tasks = [(str(it.image_path), want_glcm, jpeg_mode, keep_patches) for it in items]
                rows = self._score_batch(items, pool.map(tasks), scorers, needs_pixels, bad)
                per_image.extend(rows)
                progress.update(len(chunk))
        finally:
            progress.close()
            pool.close()
            if hasattr(generator, "release"):  # free the generator's device memory before the final metric work
                generator.release()

        return self._finish(generator, dataset_name, scorers, per_image, bad, image_dir)

    def _score_batch(self, items, details, scorers, needs_pixels, bad) -> list[dict]:
        """Per-image rows of one batch: the worker's detail values, then every scorer's."""
        good = []
        for item, detail in zip(items, details):
            if "error" in detail:
                if not self.config.skip_bad:
                    raise UserError(f"{item.image_path}: {detail['error']} (use --skip-bad to skip bad files)")
                bad.append(f"{item.image_path.name} ({detail['error']})")
                continue
            item.detail = detail
            good.append(item)
        if needs_pixels:
            self._load_pixels(good)
        rows = [{"stem": it.stem, "file": str(it.image_path), "prompt": it.prompt,
                 "reference": str(it.reference_path) if it.reference_path else None,
                 **{k: v for k, v in it.detail.items() if k != "file_bytes"}} for it in good]
        for scorer in scorers.values():
            for row, values in zip(rows, scorer.add(good) or [{}] * len(good)):
                row.update(values)
        for item in good:
            item.image = None  # pixels are not kept beyond their batch
        return rows

    def _materialise(self, generator, records, image_dir, in_place) -> list[Item]:
        """Items whose image file exists: served in place, already saved, or generated now."""
        if in_place:
            return [Item(r.stem, r.prompt, r.image_path, image_path=generator.image_path(r)) for r in records]
        items = [Item(r.stem, r.prompt, r.image_path, image_path=image_dir / f"{r.stem}.jpg") for r in records]
        todo = [(r, it) for r, it in zip(records, items) if not it.image_path.exists()]
        if todo:
            todo_records = [r for r, _ in todo]
            try:
                if hasattr(generator, "generate_records"):
                    images = generator.generate_records(todo_records, self.config.size, self.config.seed)
                else:
                    images = generator.generate([r.prompt for r in todo_records], self.config.size, self.config.seed)
            except (UserError, KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # a plugin's bug: name the generator, keep the one-line contract
                if type(exc).__name__ == "OutOfMemoryError":
                    raise
                raise UserError(f"generator {generator.name} failed: {type(exc).__name__}: {exc}") from None
            images = _check_generated(images, len(todo), self.config.size, generator.name)
            for (_, item), image in zip(todo, images):
                save_atomic(image, item.image_path, quality=JPEG_QUALITY)
                if not self.config.from_files:
                    item.image = np.array(image)   # paper protocol: model-based metrics see the in-memory image
        return items

    def _load_pixels(self, items):
        from metrics.image_input import read_rgb

        for item in items:
            if item.image is None:
                item.image = read_rgb(item.image_path)
                self.pixel_sources["file"] += 1
            else:
                self.pixel_sources["memory"] += 1

    def _finish(self, generator, dataset_name, scorers, per_image, bad, image_dir) -> RunResult:
        config = self.config
        gathered = self.ranks.gather((per_image, bad))
        per_image = [row for rows, _ in gathered for row in rows]
        bad = [b for _, bs in gathered for b in bs]
        if not per_image:
            raise UserError("no image could be scored" + (f": {len(bad)} bad file(s)" if bad else ""))
        if bad:
            self.notes.append(f"skipped {len(bad)} bad file(s): {_short(bad)}")
        distribution_metrics = [n for n in ("fid", "kid", "patch_fid", "patch_kid") if n in scorers]
        if distribution_metrics and len(per_image) < SMALL_SET:
            self.notes.append(f"{'/'.join(distribution_metrics)} on {len(per_image)} images: dominated by the "
                              "sample size, compare only runs of the same set")

        row = {"generator": generator.name, "dataset": dataset_name, "size": config.size,
               "n_images": len(per_image)}
        settings = {"generator": dict(getattr(generator, "defaults", {}) or {}), "seed": config.seed}
        if config.report:
            settings["report"] = str(config.report)
        sources = {k: sum(r.get(k, 0) for r in self.ranks.gather(self.pixel_sources)) for k in self.pixel_sources}
        if sources["memory"] or sources["file"]:
            settings["model_metric_pixels"] = sources
            if sources["memory"] and sources["file"]:
                # JPEG q95 changes Inception/CLIP features a little: a resumed run is not bit-comparable
                self.notes.append(f"model-based metrics saw {sources['memory']} in-memory and {sources['file']} "
                                  "saved-JPEG images (resumed run); use --from-files for resume-stable numbers")
        for name, scorer in scorers.items():
            try:
                row.update(scorer.result())
            except MetricUnavailable as exc:
                self.notes.append(f"{name}: {exc}")
            settings.update(scorer.settings())
            scorer.close()
        row["status"] = "; ".join(self.notes) if self.notes else "ok"
        row["settings"] = json.dumps(settings, sort_keys=True, default=str)
        row["toolkit_version"] = __version__
        row["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
        per_image.sort(key=lambda r: r["stem"])
        return RunResult(row=row, per_image=per_image, settings=settings, image_dir=image_dir)


def _short(items, limit=5) -> str:
    items = list(items)
    text = ", ".join(items[:limit])
    return text + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _progress(total, desc, enabled):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


PER_IMAGE_COLUMNS = ["stem", "file", "width", "height", "glcm_score", "jpeg_bytes"]


def write_outputs(config: EvalConfig, result: RunResult) -> None:
    """Write results.csv (row replaced in place), the per-image table and the report; rank 0 only."""
    from aesthetic4k import results

    if config.out:
        results.upsert_row(config.out, result.row)
    if config.per_image:
        extra = sorted({k for r in result.per_image for k in r} - set(PER_IMAGE_COLUMNS) - {"glcm_patches"})
        results.write_table(config.per_image, PER_IMAGE_COLUMNS + extra, result.per_image)
    if config.report:
        from aesthetic4k.report import write_report

        write_report(result, config.report)


def evaluate(config: EvalConfig) -> RunResult:
    """Run and write the outputs (on rank 0)."""
    run = Run(config)
    result = run.execute()
    if run.ranks.main:
        write_outputs(config, result)
    return result
