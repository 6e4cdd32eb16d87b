"""The toolkit's exceptions. They live in ``metrics.errors`` (``metrics`` imports nothing from
``aesthetic4k``); this module is the name the rest of ``aesthetic4k`` imports them by."""
from metrics.errors import ImageError, MetricUnavailable, UserError, WeightUnavailable

__all__ = ["ImageError", "MetricUnavailable", "UserError", "WeightUnavailable"]
