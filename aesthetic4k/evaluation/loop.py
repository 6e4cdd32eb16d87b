"""One evaluation run: dataset x images (a folder, or a generator) x metrics -> one results.csv row.

Read ``Run.execute`` top to bottom: ``plan`` decides everything before the first image (a
``Plan`` of plain dataclasses: source, sizes, settings, dataset, records, reference, metrics);
``scoring`` builds the two feeds of the metrics; ``batch`` runs the stages of one batch of
``metric_settings.batch_size`` records in the order the byte-identical-rows contract relies on
(obtain images, take features, save, measure the files, add to the metrics, make rows);
``finish`` gathers every process's rows and asks the metrics for their final values. Under
torchrun/accelerate the records are sharded across ranks, torchmetrics synchronises the
network metrics' states, and rank 0 alone writes.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

from aesthetic4k import __version__
from aesthetic4k.errors import MetricUnavailable, UserError, WeightUnavailable
from aesthetic4k.evaluation.config import EvalConfig, RunResult
from aesthetic4k.evaluation.features import FileFeatures, GeneratedFeatures
from aesthetic4k.evaluation.intervals import add_intervals
from aesthetic4k.evaluation.outputs import check_images_out
from aesthetic4k.evaluation.plan import Plan, Reference, Scoring, Sizes
from aesthetic4k.evaluation.ranks import Ranks, setup_ranks
from aesthetic4k.evaluation.scoring import DetailScoring, NetworkScoring
from aesthetic4k.evaluation.sources import FolderImages, GeneratedImages, Skipped, open_source
from aesthetic4k.generators.base import GeneratorHandle
from aesthetic4k.protocol import stamp
from aesthetic4k.results_schema import MIXED
from aesthetic4k_metrics import weights
from aesthetic4k_metrics.cache import cache_root
from aesthetic4k_metrics.defaults import EVAL_SIZE, JPEG_QUALITY
from aesthetic4k_metrics.files import display_path
from aesthetic4k_metrics.parallel import usable_cpus
from aesthetic4k_metrics.registry import FILE, METRICS, PUBLISHED
from aesthetic4k_metrics.settings import resolve_device

DEFAULT_SIZE = EVAL_SIZE
BENCHMARK = "aesthetic-4k"


BUILTIN_SAMPLE = "sample"   # --reference sample: the statistics of the sample set that ship with the package


def builtin_sample_stats(size: int, protocol: str) -> Path:
    """The shipped reference statistics of the offline sample set (``make sample-stats`` writes them)."""
    import aesthetic4k.data

    path = Path(aesthetic4k.data.__file__).parent / "sample_stats" / f"sample-{size}-{protocol}.npz"
    if not path.is_file():
        raise UserError(f"--reference sample: built-in statistics exist for --size 2048 --fid-protocol paper only; "
                        f"for size {size} / {protocol} use --dataset sample")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "generator"


def default_images_out(name: str, defaults: dict, dataset_name: str, size: int, seed: int) -> Path:
    """A cache folder keyed by generator, its settings, dataset, size and seed."""
    settings = json.dumps({"defaults": defaults, "seed": seed}, sort_keys=True, default=str)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
    return cache_root() / "generated" / f"{_slug(name)}-{digest}" / _slug(dataset_name) / str(size)


class Run:
    def __init__(self, config: EvalConfig):
        self.config = config
        self.notes: list[str] = []           # short, for the status column
        self.hints: list[str] = []           # how to fix, printed once on stderr
        self.ranks = Ranks()

    def say(self, message: str) -> None:
        """Announce a long step on stderr (rank 0, unless progress is off)."""
        if self.config.progress and self.ranks.main:
            print(f"a4k-eval: {message}", file=sys.stderr, flush=True)

    # -- the run: plan, batches, finish

    def execute(self) -> RunResult:
        plan = self.plan()
        scoring = self.scoring(plan)
        rows, skipped = [], []
        progress = _progress(len(plan.records), f"{plan.source.name} {plan.sizes.size}px",
                             self.config.progress and self.ranks.main)
        try:
            batch = max(1, plan.settings.batch_size)
            for start in range(0, len(plan.records), batch):
                records = plan.records[start:start + batch]
                done, bad = self.batch(plan, scoring, records)
                rows.extend(done)
                skipped.extend(bad)
                progress.update(len(records))
        finally:
            progress.close()
            plan.source.release()   # free the generator's device memory before the final metric work
        return self.finish(plan, scoring, rows, skipped)

    def plan(self) -> Plan:
        """Source, sizes, settings, dataset, records, reference and metrics, decided before any image."""
        config = self.config
        options = config.generator_options
        is_folder = config.generator.partition(":")[0] == "folder"
        if not is_folder:      # a generator runs on the device; a folder of files may never need torch
            options = replace(options, device=resolve_device(options.device))
        self.ranks = setup_ranks(options.device or "cpu")
        if not is_folder:
            from aesthetic4k.generators.registry import REGISTRY

            REGISTRY.check(config.generator)
            self.say(f"loading generator {config.generator} on {options.device}")
        component = open_source(config.generator, options)
        folder = component if isinstance(component, FolderImages) else None
        sizes = self._sizes(folder)
        # a generated image is saved with exactly the q95 encoder: its file size is its q95 size (the paper's CR)
        settings = replace(config.metric_settings, size=sizes.size,
                           cr_mode="file" if folder is None else config.metric_settings.cr_mode)
        dataset = self.ranks.first(lambda: self._dataset(folder, sizes.size))
        source = folder if folder is not None else self._generated(component, dataset, sizes.size)
        records, notes = source.records(dataset)
        self.notes.extend(notes)
        unreadable = [s for s in source.skipped if s.kind == "bad"]
        if unreadable and not config.skip_bad:
            first = unreadable[0]
            raise UserError(f"{display_path(source.image_dir / first.name)}: {first.reason} "
                            "(use --skip-bad to skip bad files)")
        if config.limit:
            records = records[:config.limit]
        if dataset is not None and dataset.is_sample:
            self.notes.append("sample set: smoke test, not a benchmark")
        reference = self._reference(dataset, sizes.size, settings.fid_protocol)
        metrics = self._metrics(reference, any(r.prompt for r in records), settings)
        return Plan(source, sizes, settings, dataset, records[self.ranks.rank::self.ranks.world], reference, metrics)

    def scoring(self, plan: Plan) -> Scoring:
        """The file metrics' and the network metrics' feeds; an unpaired real side is added now, once."""
        config = self.config
        file_metrics = {n: m for n, m in plan.metrics.items() if METRICS[n].reads == FILE}
        network_metrics = {n: m for n, m in plan.metrics.items() if METRICS[n].reads != FILE}
        workers = config.workers or usable_cpus()
        scoring = Scoring()
        if file_metrics:
            scoring.detail = DetailScoring(file_metrics, plan.settings.cr_mode, config.report is not None, workers,
                                           plan.settings.max_pixels)
        if network_metrics:
            generated = GeneratedFeatures(plan.source.image_dir) if not plan.folder else None
            use_cache = os.environ.get("A4K_FEATURE_CACHE", "1") != "0"
            scoring.network = NetworkScoring(
                network_metrics, generated, FileFeatures(cache_root() / "features" if use_cache else None),
                config.from_files, plan.settings.max_pixels,
                paired_reference=plan.reference is not None and plan.reference.kind == "paired",
                keep_reference_features=config.save_reference_stats is not None, workers=workers)
            self._add_unpaired_reference(scoring.network, plan.reference, plan.settings.batch_size)
        return scoring

    def batch(self, plan: Plan, scoring: Scoring, records: list) -> tuple[list[dict], list[Skipped]]:
        """One batch, in the order the byte-identical-rows contract needs; returns (rows, skipped files)."""
        network, detail = scoring.network, scoring.detail
        # 1. obtain the images: files found saved (or served), and new ones generated now, in memory
        items, new = plan.source.items(records)
        bad: list = []
        for chunk in ([] if plan.folder else plan.source.chunks(new)):
            made = plan.source.generate(chunk)
            if network and not self.config.from_files:
                # 2. features of a new image are taken from its in-memory pixels BEFORE its JPEG is saved:
                # a resumed run then reads these (kept beside the JPEG), not features of the decoded JPEG
                bad += network.generated_features(made, fresh=True)
            plan.source.save(made)          # 3. save: an interruption loses at most the images in flight
        fresh = {id(item) for _, item in new} if network and not self.config.from_files else set()
        if network:                         # 2. features of every other image: from the caches or the file
            bad += network.generated_features([item for item in items if id(item) not in fresh])
        if detail:                          # 4. measure the saved files (fine-detail metrics, one decode each)
            unreadable = {id(item) for item, _ in bad}          # a bad file is listed once, with its first reason
            readable = [item for item in items if id(item) not in unreadable]
            for item, measurement in zip(readable, detail.measure(readable)):
                item.detail = measurement
                if measurement.error:
                    bad.append((item, measurement.error))
        bad_ids = {id(item) for item, _ in bad}
        skipped = []
        for item, reason in bad:
            if not self.config.skip_bad:
                raise UserError(f"{display_path(item.image_path)}: {reason} (use --skip-bad to skip bad files)")
            skipped.append(Skipped(display_path(item.image_path.name), reason))
        good = [item for item in items if id(item) not in bad_ids]
        for feed in (network, detail):      # 5. add the good images to the metrics
            if feed:
                feed.add(good)
        rows = [self._row(item, detail, plan) for item in good]       # 6. their rows
        for item in items:
            item.image = item.jpeg = item.detail = None     # pixels are not kept beyond their batch
        return rows, skipped

    # -- planning

    def _generated(self, generator, dataset, size: int) -> GeneratedImages:
        config = self.config
        handle = GeneratorHandle(generator)
        dataset_name = dataset.name if dataset is not None else "none"
        image_dir = Path(config.images_out) if config.images_out else \
            default_images_out(handle.name, handle.defaults, dataset_name, size, config.seed)
        check_images_out(image_dir, dataset, config)
        try:
            image_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{display_path(image_dir)}: cannot create the images folder "
                            f"({exc.strerror or exc})") from None
        return GeneratedImages(handle, image_dir, size, config.seed, config.batch_size,
                               keep_pixels=not config.from_files)

    def _sizes(self, folder: Optional[FolderImages]) -> Sizes:
        asked = self.config.size
        if folder is None:
            size = asked or DEFAULT_SIZE
            return Sizes(size, size, {})
        shapes = sorted({shape for shape in folder.image_sizes().values() if shape})
        info = {}
        if len(shapes) == 1:
            width, height = shapes[0]
            cell = max(width, height)
            native = min(width, height)
            if width != height:
                info["image_size"] = f"{width}x{height}"
        else:
            cell, native = MIXED, None
            if shapes:
                widths, heights = [w for w, _ in shapes], [h for _, h in shapes]
                info["image_sizes"] = f"widths {min(widths)}-{max(widths)}, heights {min(heights)}-{max(heights)}"
        size = asked or native or DEFAULT_SIZE
        if asked and native and asked != native:
            self.notes.append(f"images are {shapes[0][0]}x{shapes[0][1]}; --size {asked} sets only the FID resize")
        return Sizes(size, cell, info)

    def _dataset(self, folder, size: int):
        spec = self.config.dataset
        if not spec and folder is None and not self.config.reference:
            spec = BENCHMARK
            self.say(f"no --dataset: using the benchmark's prompts, {BENCHMARK} eval at {size}px")
        if not spec:
            return None
        from aesthetic4k.data import open_dataset

        return open_dataset(spec, size=size, split="eval", progress=self.config.progress)

    def _reference(self, dataset, size: int, protocol: str) -> Optional[Reference]:
        spec = self.config.reference
        if spec == BUILTIN_SAMPLE:     # the row keeps saying "sample": where the package is installed is no setting
            spec = str(builtin_sample_stats(size, protocol))
        if spec:
            path = Path(spec)
            if path.is_dir():
                from aesthetic4k_metrics.folders import image_files

                return Reference("folder", files=image_files(path))
            if path.is_file():
                from aesthetic4k_metrics.reference_stats import ReferenceStats

                return Reference("stats", stats=ReferenceStats.load(path))
            raise UserError(f"--reference {display_path(spec)}: no such folder or statistics file")
        if dataset is not None:
            return Reference("paired")
        return None

    def _metrics(self, reference: Optional[Reference], has_prompts: bool, settings) -> dict:
        explicit = bool(self.config.metrics)
        names = list(self.config.metrics) if explicit else list(PUBLISHED)
        built = {}
        for name in names:
            info = METRICS[name]
            if "reference" in info.needs and reference is None:
                short, hint = "needs reference images", "give --dataset with reference images or --reference DIR|STATS.npz"
            elif "prompt" in info.needs and not has_prompts:
                short, hint = "needs prompts", "give --dataset whose entries have captions"
            else:
                try:
                    info.check_installed()                       # its extra, then its weights, then torch
                    for weight in info.weight_names(settings):   # before importing torch for the metric
                        weights.resolve(weight, settings.weights.get(weight), allow_download=settings.allow_download)
                    if info.reads != FILE:
                        settings.device = resolve_device(settings.device)
                        self.say(f"loading {info.title} on {settings.device}")
                    built[name] = info.load_class().from_settings(settings)
                    continue
                except (MetricUnavailable, WeightUnavailable, ImportError) as exc:
                    exc = MetricUnavailable.of(exc)
                    short, hint = exc.short, str(exc)
            if explicit:
                raise UserError(f"{name}: unavailable: {hint}")
            self.notes.append(f"{name}: {short}")
            self.hints.append(f"{name} not run: {hint}")
        if not built:
            raise UserError("no metric can run: " + "; ".join(self.hints))
        return built

    def _add_unpaired_reference(self, network: NetworkScoring, reference: Optional[Reference], batch: int) -> None:
        if reference is None or not reference.unpaired or not self.ranks.main:
            return                           # paired: per batch; unpaired: rank 0 alone adds the real side once
        if reference.kind == "stats":
            stats = reference.stats
            self.say(f"reference statistics from {display_path(stats.meta.get('path'))} ({stats.count} images)")
            network.add_reference_stats(stats)
            return
        self.say(f"reference features of {len(reference.files)} images in {display_path(self.config.reference)}")
        progress = _progress(len(reference.files), "reference", self.config.progress)
        try:
            network.add_reference_folder(reference.files, batch, progress.update)
        finally:
            progress.close()

    def _row(self, item, detail: Optional[DetailScoring], plan: Plan) -> dict:
        row = {"stem": display_path(item.stem), "file": display_path(item.image_path), "prompt": item.prompt,
               "reference": display_path(item.reference_path) if item.reference_path else None}
        if detail:
            row.update(detail.per_image(item))
        elif plan.folder:
            width, height = plan.source.image_sizes().get(item.stem) or (None, None)
            row.update(width=width, height=height)
        else:
            row.update(width=plan.sizes.size, height=plan.sizes.size)
        return row

    # -- finish: every process's rows together, then the metrics' final values (rank 0 writes)

    def finish(self, plan: Plan, scoring: Scoring, rows: list[dict], skipped: list[Skipped]) -> RunResult:
        config = self.config
        source, metrics, network = plan.source, plan.metrics, scoring.network
        for metric in metrics.values():      # every metric's per-image values, in the order rows were made
            for column, column_values in metric.per_image_values().items():
                for row, value in zip(rows, column_values):
                    row[column] = value
        gathered = self.ranks.gather((rows, skipped, dict(network.sources) if network else {}))
        rows = sorted((r for part in gathered for r in part[0]), key=lambda r: r["stem"])
        skipped = [s for part in gathered for s in part[1]] + list(source.skipped)
        if not rows:
            raise UserError("no image could be scored" + (f": {len(skipped)} file(s) skipped" if skipped else ""))

        self._skip_notes(skipped)

        row = {"generator": source.name, "dataset": plan.dataset_name, "size": plan.sizes.cell, "n_images": len(rows)}
        run_settings = {"generator": dict(source.defaults), "seed": config.seed, **plan.sizes.info}
        generated = not source.serves_files
        if generated:
            from aesthetic4k_metrics.compression import encoder_settings

            run_settings["image_encoder"] = encoder_settings(JPEG_QUALITY)     # how the generated JPEGs were written
        if config.report:
            run_settings["report"] = display_path(config.report)
        if config.reference:
            run_settings["reference"] = display_path(config.reference)
        if network:
            sources = {k: sum(part[2].get(k, 0) for part in gathered) for k in ("memory", "file")}
            run_settings["network_metric_pixels"] = sources
            if generated and sources["file"]:
                self.notes.append(f"{sources['file']} image(s) scored from their saved JPEG")
                self.hints.append("network metrics read some generated images back from their q95 JPEG because the "
                                  "run that made them did not keep their in-memory features; their values differ "
                                  "slightly from the in-memory ones (the paper protocol)")
        if metrics:
            self.say("computing the final values")
        for name, metric in metrics.items():
            row.update(metric.summary())
            run_settings.update(metric.provenance())
            if METRICS[name].plugin:     # read back by a4k-check, the leaderboard and the report
                run_settings.setdefault("metric_plugins", {})[name] = METRICS[name].declaration()
        run_settings["versions"] = _versions(metrics, source)
        per_image_data = add_intervals(row, run_settings, self.notes, rows, metrics, network, self.ranks,
                                       config.bootstrap, config.per_image)
        stamp(row, run_settings)                     # the protocol fingerprint, after every setting is known
        row["status"] = "; ".join(self.notes) if self.notes else "ok"
        row["settings"] = json.dumps(run_settings, sort_keys=True, default=str)
        row["toolkit_version"] = __version__
        row["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
        stats = self._reference_stats(network, plan.reference) if config.save_reference_stats else None
        return RunResult(row=row, per_image=rows, settings=run_settings, image_dir=source.image_dir,
                         skipped=skipped, notes=list(self.notes), hints=list(self.hints), reference_stats=stats,
                         per_image_data=per_image_data)

    def _skip_notes(self, skipped: list[Skipped]) -> None:
        bad = [s for s in skipped if s.kind == "bad"]
        ignored = [s for s in skipped if s.kind != "bad"]
        if not skipped:
            return
        counts = ", ".join(part for part in (f"skipped {len(bad)} bad file(s)" if bad else "",
                                             f"{len(ignored)} other file(s) not scored" if ignored else "") if part)
        if self.config.per_image:
            self.notes.append(f"{counts} (listed in {display_path(self.config.per_image.name)})")
        else:
            self.notes.append(f"{counts}: " + ", ".join(f"{s.name} ({s.reason})" for s in skipped))

    def _reference_stats(self, network, reference: Optional[Reference]):
        from aesthetic4k_metrics.reference_stats import ReferenceStats, new_meta

        if network is None or reference is None or reference.kind == "stats":
            raise UserError("--save-reference-stats needs FID-family metrics with reference images "
                            "(--dataset or --reference DIR)")
        parts = self.ranks.gather(network.reference_stats_arrays())
        arrays = {}
        for part in parts:
            for kind, (rows, recipe) in part.items():
                arrays.setdefault(kind, ([], recipe))[0].append(rows)
        if not arrays:
            raise UserError("--save-reference-stats needs at least one of fid, kid, patch_fid, patch_kid")
        import numpy as np

        features = {kind: np.concatenate(rows) for kind, (rows, _) in arrays.items()}
        full = arrays.get("full", arrays.get("patches"))[1]
        patches = arrays["patches"][1] if "patches" in arrays else None
        count = len(features["full"]) if "full" in features else len(features["patches"]) // patches["patch_count"]
        source = display_path(self.config.reference or self.config.dataset or "reference")
        return ReferenceStats(new_meta(full, count, source, patches), features)



def _versions(metrics: dict, source) -> dict:
    """The installed versions of every library that can move this run's numbers (aesthetic4k_metrics.versions)."""
    from aesthetic4k_metrics.versions import GENERATED_IMAGES, library_versions

    generator = () if source.serves_files else (*GENERATED_IMAGES, *source.handle.libraries)
    return library_versions(metrics, generator)


def _progress(total, desc, enabled):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def evaluate(config: EvalConfig) -> RunResult:
    """Check the outputs, run, and write all outputs together (rank 0)."""
    from aesthetic4k.evaluation.outputs import Outputs

    outputs = Outputs(config)
    run = Run(config)
    result = run.execute()
    if run.ranks.main:
        outputs.commit(result)
    run.ranks.close()          # after the last collective of every rank (the gathers of finish)
    return result
