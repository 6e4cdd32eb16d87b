"""One evaluation run (``a4k-eval``): images from a folder or a generator, scored by every metric asked for.

- ``config``: what a run is asked to do, and what it produced;
- ``sources``: where the images come from (a folder, or a generator whose images are saved);
- ``scoring``: how the metric classes are fed (file metrics, network metrics);
- ``features``: the feature caches that make re-runs give the same bits;
- ``outputs``: checking and committing results.csv, the per-image CSV, the report, the statistics;
- ``ranks``: several processes;
- ``loop``: the run itself.
"""
from aesthetic4k.evaluation.config import EvalConfig, RunResult
from aesthetic4k.evaluation.loop import evaluate

__all__ = ["EvalConfig", "RunResult", "evaluate"]
