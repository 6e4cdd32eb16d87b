"""Aesthetic-4K data: load the published benchmark, build new datasets, statistics, the offline sample.

Importing this package is light (no torch, no image decoding); heavy work happens on use.
"""
from aesthetic4k.data.datasets import MetadataDataset, open_dataset
from aesthetic4k.data.records import Dataset, Record
from aesthetic4k.data.validation import Problem, validate

__all__ = ["Dataset", "MetadataDataset", "Problem", "Record", "open_dataset", "validate"]
