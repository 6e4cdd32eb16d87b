"""Datasets backed by a metadata.jsonl, and ``open_dataset`` that finds one from a spec string.

A spec is ``aesthetic-4k`` (the hub dataset), ``sample`` (the built-in smoke-test set) or a
path: a folder in the published layout (``eval/size_<size>/metadata.jsonl``,
``train/metadata.jsonl``), a folder holding a ``metadata.jsonl`` directly, or that file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Optional

from aesthetic4k.data.metadata import METADATA_NAME, NO_ENTRIES, CaptionRule, Entry, LineError, read_lines
from aesthetic4k.data.paths import OutsidePath, inside
from aesthetic4k_metrics.files import display_path
from aesthetic4k.data.records import Record
from aesthetic4k.errors import UserError
from aesthetic4k_metrics.errors import did_you_mean
from aesthetic4k_metrics.file_kinds import file_problem

SPLITS = ("eval", "train")
HUB_SPEC = "aesthetic-4k"
SAMPLE_SPEC = "sample"


class MetadataDataset:
    """Records of one metadata.jsonl, read lazily in file order; no image is decoded."""

    def __init__(self, metadata_path: str | os.PathLike, name: str, size: int, split: str = "eval",
                 is_sample: bool = False, description: str = ""):
        from aesthetic4k.data.hub import cache_storage

        self.metadata_path = Path(metadata_path)
        self.root = self.metadata_path.parent
        self.storage = cache_storage(self.root)  # a hub cache snapshot's files link into its blobs/ folder
        self.name = name
        self.size = int(size)
        self.split = split
        self.is_sample = is_sample
        self.description = description
        self._length: Optional[int] = None

    def __repr__(self) -> str:
        return f"MetadataDataset({self.name!r}, size={self.size}, split={self.split!r}, path={str(self.root)!r})"

    def entries(self) -> Iterator[Entry | LineError]:
        """Raw lines, malformed ones included (validation uses this)."""
        return read_lines(self.metadata_path, self.storage)

    def image_path(self, entry: Entry) -> Path:
        """The image of an entry, refused (OutsidePath) when it would lie outside the dataset folder."""
        return inside(self.root, entry.file_name, self.storage)

    def records(self) -> Iterator[Record]:
        """Stream records; stops with a one-line message on a malformed line, a caption that breaks
        the :class:`CaptionRule` (``a4k-data validate`` applies the same), a path outside the
        dataset folder, a stem collision, or a file with no entry at all. No image is opened."""
        seen: dict[str, int] = {}
        captions = CaptionRule()
        for item in self.entries():
            found = (item.line, item.reason) if isinstance(item, LineError) else captions.add(item.line, item.text)
            if found:
                raise UserError(f"{display_path(self.metadata_path)}: line {found[0]}: {found[1]} "
                                f"(run `a4k-data validate {display_path(self.root)}` for all problems)")
            try:
                path = self.image_path(item)
            except OutsidePath as exc:
                raise UserError(f"{display_path(self.metadata_path)}: line {item.line}: {exc.reason}; refused") from None
            stem = Path(item.file_name).stem
            if stem in seen:
                # generated images are named <stem>.jpg, so two entries with one stem would overwrite each other
                raise UserError(f"{display_path(self.metadata_path)}: line {item.line}: file stem {display_path(stem)!r} already "
                                f"used on line {seen[stem]}; stems must be unique")
            seen[stem] = item.line
            yield Record(stem=stem, prompt=item.text, image_path=path, line=item.line)
        if not seen:
            raise UserError(f"{display_path(self.metadata_path)}: {NO_ENTRIES}")

    def __len__(self) -> int:
        if self._length is None:
            self._length = sum(1 for _ in self.entries())
        return self._length


def _local_metadata(folder: Path, size: int, split: str) -> Path:
    """The metadata.jsonl of ``split`` (and ``size``) inside a local folder, or a UserError."""
    if not folder.is_dir():
        problem = file_problem(folder)      # a FIFO or a device is named, never opened
        if problem:
            raise UserError(f"dataset {display_path(folder)}: {problem}; expected a folder or a .jsonl file")
    if folder.is_file():
        if folder.name.endswith(".jsonl"):
            return folder
        raise UserError(f"dataset {folder}: expected a folder or a .jsonl file")
    direct = folder / METADATA_NAME
    if direct.is_file():
        return direct
    if split == "train":
        candidate = folder / "train" / METADATA_NAME
    else:
        candidate = folder / "eval" / f"size_{size}" / METADATA_NAME
    if candidate.is_file():
        return candidate
    if split == "eval":
        sizes = sorted(p.parent.name for p in (folder / "eval").glob(f"size_*/{METADATA_NAME}"))
        if sizes:
            raise UserError(f"dataset {folder}: no eval set at size {size} (found {', '.join(sizes)}); "
                            "pick one with --size")
    raise UserError(f"dataset {folder}: no {candidate.relative_to(folder)} and no {METADATA_NAME}; expected "
                    "the published layout (eval/size_2048/metadata.jsonl, train/metadata.jsonl) or a folder "
                    "with a metadata.jsonl")


BENCHMARK_FOLDER_ENV = "A4K_AESTHETIC_4K"   # a local copy of the published dataset, used for ``aesthetic-4k``


def open_dataset(spec: str, size: int = 2048, split: str = "eval", progress: bool = True) -> MetadataDataset:
    """Open a dataset by spec: ``aesthetic-4k``, ``sample`` or a local path (see module docstring).

    ``aesthetic-4k`` is the folder named by ``$A4K_AESTHETIC_4K`` when set, else the Hugging Face
    cache (downloading the split when online).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UserError(f"size must be a whole number of pixels, got {size!r}") from None
    if size <= 0:
        raise UserError(f"size must be positive, got {size}")
    spec = str(spec)
    if spec == SAMPLE_SPEC:
        from aesthetic4k.data.sample import SAMPLE_NOTE, materialise_sample

        # both splits of the sample set are the same 8 images
        return MetadataDataset(materialise_sample(size, progress) / METADATA_NAME, SAMPLE_SPEC, size, split,
                               is_sample=True, description=SAMPLE_NOTE)
    if spec == HUB_SPEC:
        local = os.environ.get(BENCHMARK_FOLDER_ENV)
        if local:
            if not Path(local).expanduser().is_dir():
                raise UserError(f"{BENCHMARK_FOLDER_ENV}={local}: no such folder (a local copy of {HUB_SPEC})")
            return MetadataDataset(_local_metadata(Path(local).expanduser(), size, split), HUB_SPEC, size, split)
        from aesthetic4k.data.hub import hub_folder

        folder = hub_folder(split, size)
        return MetadataDataset(_local_metadata(folder, size, split), HUB_SPEC, size, split)
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"dataset {spec!r}: no such folder{did_you_mean(spec, (HUB_SPEC, SAMPLE_SPEC))} "
                        f"(use {HUB_SPEC}, {SAMPLE_SPEC} or a path to a folder in the published layout)")
    metadata = _local_metadata(path, size, split)
    return MetadataDataset(metadata, _folder_name(path), size, split)


def dataset_folder(path: Path) -> Path:
    """The whole dataset a path belongs to (resolved): the top of the published layout for a split
    folder or its metadata.jsonl (``X/eval/size_2048`` -> ``X``), else the folder itself."""
    folder = Path(path).resolve()
    if folder.is_file():
        folder = folder.parent
    if re.fullmatch(r"size_\d+", folder.name) and folder.parent.name == "eval":
        folder = folder.parent.parent
    elif folder.name in ("train", "eval") and (folder.parent / "eval").is_dir():
        folder = folder.parent
    return folder


def _folder_name(path: Path) -> str:
    """The name recorded in results.csv: the dataset folder's name, not that of a split inside it."""
    return dataset_folder(path).name or str(path)
