"""What one evaluation run is asked to do (``EvalConfig``) and what it produced (``RunResult``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from aesthetic4k.evaluation.intervals import BootstrapSettings
from aesthetic4k.generators.base import GeneratorOptions
from aesthetic4k_metrics.settings import MetricSettings


@dataclass
class EvalConfig:
    generator: str
    out: Optional[Path] = None
    dataset: Optional[str] = None
    size: Optional[int] = None              # None: 2048 when generating; a folder's own image size
    metrics: Optional[list] = None          # None: the five published metrics, those that can run
    limit: Optional[int] = None
    seed: int = 0
    batch_size: int = 1                     # prompts per generation call
    workers: int = 0                        # threads for the fine-detail metrics; 0: one per core
    per_image: Optional[Path] = None
    images_out: Optional[Path] = None
    skip_bad: bool = False
    from_files: bool = False                # network metrics read the saved JPEGs, never the in-memory image
    report: Optional[Path] = None
    reference: Optional[str] = None         # FID family: a folder of real images or a .npz of statistics
    save_reference_stats: Optional[Path] = None
    progress: bool = True
    generator_options: GeneratorOptions = field(default_factory=GeneratorOptions)
    metric_settings: MetricSettings = field(default_factory=MetricSettings)
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)   # the row's intervals


@dataclass
class RunResult:
    row: dict                               # the results.csv row
    per_image: list                         # one dict per scored image (stem, file, sizes, metric values)
    settings: dict
    image_dir: Optional[Path] = None
    skipped: list = field(default_factory=list)   # sources.Skipped: every file not scored, with its reason
    notes: list = field(default_factory=list)     # short notes (the status column)
    hints: list = field(default_factory=list)     # longer advice, printed once on stderr
    reference_stats: Optional[object] = None      # aesthetic4k_metrics.reference_stats.ReferenceStats to save
    per_image_data: Optional[object] = None       # evaluation.intervals.PerImageData, saved beside --per-image
