"""The declared contract between a run and its metrics: what every metric class offers, built-in or plugin.

A run never probes a metric for methods: a metric registered with ``reads=FILE`` is a
:class:`FileMetric`, one with ``reads=PIXELS`` a :class:`FeatureMetric`, and both are
:class:`RunMetric`. ``tests/test_structure.py`` checks every registered class against them.

A third-party metric does not have to implement these: it implements the small
:class:`PixelScore` (a name, a direction and ``score(image) -> float``) and
``aesthetic4k_metrics.plugin_metrics`` adapts it (README, "Your own metric (plugin)").
"""
from __future__ import annotations

from typing import Any, Optional, Protocol, Union, runtime_checkable

Cell = Union[float, int, None]        # one results.csv cell a metric fills (None: empty)


@runtime_checkable
class RunMetric(Protocol):
    """What a run asks of every metric once the images are added."""

    name: str                          # its --metrics name, also its first results.csv column
    higher_is_better: bool

    def summary(self) -> dict[str, Cell]:
        """The results.csv cells it fills, its value first (every process's images, combined)."""

    def provenance(self) -> dict[str, Any]:
        """What its numbers depend on (weights, protocol, seeds), recorded in the row's settings."""

    def per_image_values(self) -> dict[str, list]:
        """Per-image column -> values, in the order the images were added (this process's)."""


@runtime_checkable
class FileMetric(RunMetric, Protocol):
    """A metric of the image files (``reads=FILE``): fed the measurements of ``detail.measure_files``."""

    def add(self, measurements: list) -> None:
        """Add the measurements of a batch of good images."""


@runtime_checkable
class FeatureMetric(RunMetric, Protocol):
    """A metric of decoded pixels (``reads=PIXELS``): a run takes each image's features once (in threads,
    from the in-memory image when it was just generated) and adds them batch by batch."""

    def feature_recipe(self) -> Optional[dict]:
        """What one image's features depend on (the cache key); None: never cached."""

    def prepare(self, image, key: Optional[str] = None) -> Any:
        """One H x W x 3 uint8 RGB image (``key``: its stem) -> its network input (run in a worker thread)."""

    def embed(self, inputs: list) -> list:
        """Prepared inputs of several images -> one (1 or P, D) float tensor of features per image."""

    def update(self, *, features, **inputs) -> None:
        """Add a batch's features (``real=`` for the reference side, ``texts=`` for prompts)."""


@runtime_checkable
class MetricClass(Protocol):
    """How a run builds a metric from the run's ``aesthetic4k_metrics.settings.MetricSettings``."""

    def from_settings(self, settings) -> RunMetric:
        """A metric ready to be fed (weights loaded on ``settings.device``)."""


@runtime_checkable
class PixelScore(Protocol):
    """The whole contract of a plugin metric: one number per image, the run's value is their mean.

    Optional attributes: ``title`` (tables and reports), ``description`` (``--list-metrics``),
    ``version`` (recorded in the results row; change it when the numbers change).
    """

    name: str
    higher_is_better: bool

    def score(self, image) -> float:
        """One H x W x 3 uint8 RGB numpy image -> its value."""
