"""Adapters between ``a4k-eval`` and the metric classes of ``metrics/`` (see aesthetic4k.scoring)."""
