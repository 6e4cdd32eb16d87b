"""How a run feeds metrics: the Scorer contract and the table of scorer factories.

A scorer wraps one torchmetrics ``Metric`` (from ``metrics/``) for ``a4k-eval``: it receives
batches of generated images with their prompt and reference, returns per-image values, and at
the end returns its results.csv cells. ``metric.compute()`` synchronises states across ranks, so
the same code runs on one process or under torchrun/accelerate.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from aesthetic4k.errors import MetricUnavailable, UserError


@dataclass
class Item:
    """One generated image on its way through the scorers."""

    stem: str
    prompt: Optional[str]
    reference_path: Optional[Path]
    image_path: Optional[Path] = None           # the saved q95 JPEG / the folder image
    image: Optional[np.ndarray] = None          # H x W x 3 uint8 RGB, set when a scorer needs pixels
    detail: dict = field(default_factory=dict)  # per-image detail values computed by the worker pool


@dataclass
class ScoringOptions:
    size: int = 2048
    device: str = "cpu"
    batch_size: int = 8
    weights: dict = field(default_factory=dict)   # weight name -> explicit path (CLI flags)
    cr_mode: str = "jpeg95"
    fid_protocol: str = "paper"
    patch_count: int = 8
    patch_seed: int = 0
    clip_model: str = "ViT-B-16"
    extra: dict = field(default_factory=dict)


class Scorer:
    """Base class: subclasses set ``name``/``columns`` and implement ``add`` and ``result``."""

    name: str = ""
    columns: tuple = ()
    needs_pixels: bool = True        # False: works from ``Item.detail`` alone (no decode in the main process)
    needs_reference: bool = False
    needs_prompt: bool = False

    def add(self, items: list[Item]) -> list[dict]:
        raise NotImplementedError

    def result(self) -> dict:
        raise NotImplementedError

    def settings(self) -> dict:
        return {}

    def close(self) -> None:
        """Free models (called once the scorer is no longer needed)."""


# metric name -> "module:factory"; a factory takes ScoringOptions and returns a Scorer
# (or raises MetricUnavailable). Imported lazily so that --help stays fast.
FACTORIES = {
    "glcm_score": "aesthetic4k.scorers.detail:GLCMScorer",
    "compression_ratio": "aesthetic4k.scorers.detail:CompressionScorer",
    "fid": "aesthetic4k.scorers.inception:FIDScorer",
    "kid": "aesthetic4k.scorers.inception:KIDScorer",
    "patch_fid": "aesthetic4k.scorers.inception:PatchFIDScorer",
    "patch_kid": "aesthetic4k.scorers.inception:PatchKIDScorer",
    "clip_score": "aesthetic4k.scorers.clip:CLIPScoreScorer",
    "aesthetics": "aesthetic4k.scorers.clip:AestheticsScorer",
}


def build_scorer(name: str, options: ScoringOptions) -> Scorer:
    module_name, attr = FACTORIES[name].split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(options)
