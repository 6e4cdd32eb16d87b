"""The optional quality filters of `a4k-data build`: --min-glcm and --min-aesthetics.

The GLCM Score runs on the distributor like the other per-image work; the aesthetic predictor
runs in the driver on --device (one CLIP model, not one per worker). Scores are stored per image
content (sha256) and metric, so a re-run, or a build with other thresholds, computes nothing twice.
"""
from __future__ import annotations

import os

from aesthetic4k.data import build_work
from aesthetic4k.data.build_state import STATE_DIR, ShardStore, write_shard
from aesthetic4k.data.distribute import Progress, run_stage
from aesthetic4k.errors import ImageError


class _AestheticsScorer:
    """The Aesthetics metric on one image at a time; ``unavailable`` says why when it cannot run."""

    def __init__(self, device: str):
        self.unavailable = ""
        try:
            from aesthetic4k_metrics import Aesthetics

            self.metric = Aesthetics().to(device)
            self.device = device
        except Exception as exc:  # weights not resolvable, metric not installed, ...
            self.unavailable = f"{type(exc).__name__}: {exc}".splitlines()[0]

    def __call__(self, rgb) -> float:
        import torch

        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].to(self.device)
        self.metric.reset()
        self.metric.update(tensor)
        return float(self.metric.compute())


def _glcm_scores(todo: list, store: ShardStore, options, pool) -> int:
    """GLCM Scores of images not scored before, on the distributor; unreadable images are skipped."""
    missing = [item for item in todo if not store.get(item.scan["sha256"], "glcm_score")]
    by_sha = {item.scan["sha256"]: item for item in missing}
    state = str(options.out / STATE_DIR)
    for results in run_stage(pool, "quality (GLCM)", build_work.glcm_batch, missing,
                             lambda group: (state, [(i.scan["sha256"], os.fspath(i.path), i.scan["width"],
                                                     i.scan["height"]) for i in group], options.max_pixels),
                             options, cost=lambda item: item.scan["width"] * item.scan["height"]):
        for result in results:
            if "error" in result:
                by_sha[result["sha256"]].skip(result["error"])
        store.update(r for r in results if "value" in r)
    return len(missing)


def _aesthetics_scores(todo: list, store: ShardStore, options, scorer) -> None:
    """Aesthetics in the driver (one model on --device, not one per worker), saved in small shards."""
    done: list = []
    state = options.out / STATE_DIR / "quality"
    bar = Progress("quality (aesthetics)", len(todo), options.progress)
    try:
        for item in todo:
            bar.update(1)
            if item.decision or store.get(item.scan["sha256"], "aesthetics"):
                continue
            try:
                rgb = build_work.quality_image(item.path, item.scan["width"], item.scan["height"], options.max_pixels)
            except ImageError as exc:
                item.skip(exc.reason)
                continue
            record = {"sha256": item.scan["sha256"], "metric": "aesthetics", "value": float(scorer(rgb))}
            store.update([record])
            done.append(record)
            if len(done) >= 32:
                write_shard(state, done)
                done = []
    finally:
        write_shard(state, done)
        bar.close()


def apply_quality(items: list, store: ShardStore, options, notes: list, pool) -> int:
    if options.min_glcm is None and options.min_aesthetics is None:
        return 0
    todo = sorted((item for item in items if not item.decision), key=lambda item: item.rel)
    computed = 0
    if options.min_glcm is not None:
        build_work.glcm_function()  # a clear message before any work when the metric is missing
        computed = _glcm_scores(todo, store, options, pool)
    aesthetics = None
    if options.min_aesthetics is not None:
        aesthetics = _AestheticsScorer(options.device)
        if aesthetics.unavailable:
            notes.append(f"aesthetics filter skipped: {aesthetics.unavailable}")
            aesthetics = None
        else:
            _aesthetics_scores(todo, store, options, aesthetics)
    for item in todo:
        if item.decision:
            continue
        sha = item.scan["sha256"]
        wanted = [name for name, on in (("glcm_score", options.min_glcm is not None),
                                        ("aesthetics", aesthetics is not None)) if on]
        item.scores = {name: store.get(sha, name)["value"] for name in wanted}
        if "glcm_score" in item.scores and item.scores["glcm_score"] < options.min_glcm:
            item.skip(f"GLCM Score {item.scores['glcm_score']:.4f} below --min-glcm {options.min_glcm}")
        elif "aesthetics" in item.scores and item.scores["aesthetics"] < options.min_aesthetics:
            item.skip(f"Aesthetics {item.scores['aesthetics']:.3f} below --min-aesthetics {options.min_aesthetics}")
    return computed
