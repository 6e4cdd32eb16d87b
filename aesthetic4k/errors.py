"""The toolkit's exceptions. They live in ``aesthetic4k_metrics.errors`` (``aesthetic4k_metrics`` imports nothing from
``aesthetic4k``); this module is the name the rest of ``aesthetic4k`` imports them by."""
from aesthetic4k_metrics.errors import ImageError, MetricUnavailable, UserError, WeightUnavailable

__all__ = ["ImageError", "MetricUnavailable", "UserError", "WeightUnavailable"]
