"""What a run decided before its first image, as plain data: ``Run.plan`` (evaluation/loop.py) builds it.

Nothing here acts: the run reads these fields, and no stage signals another through them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from aesthetic4k.evaluation.scoring import DetailScoring, NetworkScoring
from aesthetic4k_metrics.settings import MetricSettings


@dataclass
class Sizes:
    """The sizes of a run: what FID resizes to (a generator's image side), the results.csv size cell
    (an int, or ``mixed`` for a folder of several sizes) and settings about the images' sizes."""

    size: int
    cell: object
    info: dict


@dataclass
class Reference:
    """The real side of the FID family: the dataset's paired images, a folder, or saved statistics."""

    kind: str                                     # "paired", "folder" or "stats"
    files: list = field(default_factory=list)     # "folder": its image files
    stats: object = None                          # "stats": aesthetic4k_metrics.reference_stats.ReferenceStats

    @property
    def unpaired(self) -> bool:
        return self.kind != "paired"


@dataclass
class Plan:
    """Everything a run decided before its first image: read top to bottom in ``Run.plan``."""

    source: object                                # FolderImages or GeneratedImages
    sizes: Sizes
    settings: MetricSettings                      # the run's metric settings (size and CR mode resolved)
    dataset: object                               # a MetadataDataset, or None (a folder scored alone)
    records: list                                 # this process's share of the dataset records, in order
    reference: Optional[Reference]
    metrics: dict                                 # name -> metric (aesthetic4k_metrics.protocol)

    @property
    def dataset_name(self) -> str:
        return self.dataset.name if self.dataset is not None else "none"

    @property
    def folder(self) -> bool:
        return self.source.serves_files


@dataclass
class Scoring:
    """The two ways a run feeds its metrics: file metrics per batch, network metrics from features."""

    detail: Optional[DetailScoring] = None
    network: Optional[NetworkScoring] = None
