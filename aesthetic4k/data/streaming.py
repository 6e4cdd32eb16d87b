"""Training data streamed from a dataset larger than the local disk, through a bounded cache.

    from aesthetic4k.data.streaming import StreamingDataset

    stream = StreamingDataset("aesthetic-train-v2", cache_dir="/scratch/a4k-stream",
                              cache_limit=200 * 2**30, rank=rank, world_size=world, seed=0)
    for image, caption in stream.epoch(0):          # this rank's share, shuffled, PIL RGB images
        ...
    for image, caption in stream.epoch(1, start=n):  # resume after n samples of epoch 1

The source is ``aesthetic-4k`` or ``aesthetic-train-v2`` (their hub repositories), any hub
dataset ``owner/name`` in the same layout, or a folder in that layout (a network mount; tests use
a local folder). Only ``train/metadata.jsonl`` is read up front; images are fetched when their
turn comes (``prefetch`` ahead, on threads) into ``cache_dir``, which never holds much more than
``cache_limit`` bytes: least recently used files are dropped, and fetched again in a later epoch.

Sharding: the epoch's order is a permutation seeded by (seed, epoch), the same in every process;
rank ``r`` of ``world_size`` takes positions r, r + world_size, ...; inside a torch DataLoader
worker the rank's share is split again between the loader's workers. Decoding is the toolkit's
(:func:`aesthetic4k.data.images.open_rgb`: EXIF orientation, sRGB, 8-bit RGB, bomb guard).
Images that are missing or cannot be decoded are skipped and listed in ``skipped``.
"""
from __future__ import annotations

import os
import re
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

from aesthetic4k.data.metadata import CaptionRule, LineError, parse_line
from aesthetic4k.data.paths import OutsidePath, shorten
from aesthetic4k.data.remote import FileCache, FolderStore, HubStore, MissingFile, clean_name
from aesthetic4k.errors import ImageError, UserError

KNOWN = {"aesthetic-4k": "zhang0jhon/Aesthetic-4K", "aesthetic-train-v2": "zhang0jhon/Aesthetic-Train-V2"}
TRAIN_METADATA = "train/metadata.jsonl"   # both published training sets use the same layout
DEFAULT_CACHE_LIMIT = 50 * 2**30


@dataclass(frozen=True)
class StreamEntry:
    stem: str            # file stem (unique): what the trainer's caches are keyed by
    caption: str
    name: str            # path of the image inside the store, "/" separated
    line: int            # line of the metadata file, for messages


def open_store(source: str, revision: str = "main", endpoint: Optional[str] = None):
    """A FolderStore for an existing folder, else a HubStore for a known name or ``owner/name``."""
    path = Path(os.path.expanduser(str(source)))
    if path.is_dir():
        return FolderStore(path)
    repo = KNOWN.get(str(source).lower(), str(source))
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo):
        raise UserError(f"streaming source {shorten(source)!r}: not a folder, not {', '.join(KNOWN)} and not a hub "
                        "dataset id owner/name")
    return HubStore(repo, revision=revision, endpoint=endpoint)


def read_entries(store, metadata: str) -> list[StreamEntry]:
    """The metadata lines as entries; a malformed line, a path leaving the dataset or a repeated stem stops."""
    folder = PurePosixPath(clean_name(metadata)).parent
    where = store.describe(metadata)
    entries, stems, captions = [], {}, CaptionRule()
    for number, raw in enumerate(store.read_text(metadata).splitlines(), start=1):
        item = parse_line(raw, number)
        if item is None:
            continue
        found = (number, item.reason) if isinstance(item, LineError) else captions.add(number, item.text)
        if found:
            raise UserError(f"{where}: line {found[0]}: {found[1]}")
        try:  # relative to the metadata's folder, and never above it
            name = clean_name(str(folder / clean_name(item.file_name)))
        except OutsidePath as exc:
            raise UserError(f"{where}: line {number}: {exc.reason}; refused") from None
        stem = PurePosixPath(name).stem
        if stem in stems:
            raise UserError(f"{where}: line {number}: file stem {shorten(stem)!r} already used on line {stems[stem]}")
        stems[stem] = number
        entries.append(StreamEntry(stem, item.text, name, number))
    if not entries:
        raise UserError(f"{where}: no entries")
    return entries


def _loader_worker() -> tuple[int, int]:
    """(index, count) of the torch DataLoader worker running this code, (0, 1) outside one."""
    torch = sys.modules.get("torch")  # never imported here: only a process that uses torch can be a worker
    info = torch.utils.data.get_worker_info() if torch is not None else None
    return (info.id, info.num_workers) if info is not None else (0, 1)


class StreamingDataset:
    """An iterable of ``(image, caption)`` for one rank, streamed through a bounded local cache."""

    def __init__(self, source: str, cache_dir: str | os.PathLike, cache_limit: int = DEFAULT_CACHE_LIMIT,
                 rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True,
                 size: Optional[int] = None, prefetch: int = 8, metadata: str = TRAIN_METADATA,
                 revision: str = "main", endpoint: Optional[str] = None, strict: bool = False):
        if world_size < 1 or not 0 <= rank < world_size:
            raise UserError(f"rank {rank} of world size {world_size}: need 0 <= rank < world_size")
        if prefetch < 0:
            raise UserError(f"prefetch must be >= 0, got {prefetch}")
        self.store = open_store(source, revision, endpoint)
        self.cache = FileCache(Path(cache_dir) / self.store.key, cache_limit)
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.size, self.prefetch, self.strict = size, prefetch, strict
        self.entries = read_entries(self.store, metadata)
        self.skipped: list[tuple[str, str]] = []   # (image name, reason) of samples left out
        self.current_epoch = 0

    def __len__(self) -> int:
        """Samples this rank reads per epoch."""
        return len(range(self.rank, len(self.entries), self.world_size))

    def set_epoch(self, epoch: int) -> None:
        self.current_epoch = epoch

    def __iter__(self) -> Iterator[tuple]:
        return self.epoch(self.current_epoch)

    def order(self, epoch: int) -> list[int]:
        """The epoch's order of entry indices, the same in every process."""
        if not self.shuffle:
            return list(range(len(self.entries)))
        import numpy as np

        return np.random.default_rng([self.seed, epoch]).permutation(len(self.entries)).tolist()

    def indices(self, epoch: int, start: int = 0) -> list[int]:
        """This process's entry indices for ``epoch``, skipping the first ``start`` of them."""
        mine = self.order(epoch)[self.rank::self.world_size]
        worker, workers = _loader_worker()
        return mine[start:][worker::workers]

    def local_path(self, index: int) -> Path:
        """Fetch entry ``index`` into the cache; the caller must ``release(index)`` when done with the file."""
        return self.cache.get(self.entries[index].name, self.store.fetch)

    def release(self, index: int) -> None:
        self.cache.release(self.entries[index].name)

    def image(self, index: int):
        """Entry ``index`` decoded (PIL RGB, center-cropped to ``size`` when set).

        Raises MissingFile (not in the store), OutsidePath (a link leaving the folder) or ImageError."""
        path = self.local_path(index)
        try:
            return self._decode(path)
        finally:
            self.release(index)

    def _decode(self, path: Path):
        from aesthetic4k.data.images import load_center_crop, open_rgb

        if self.size:
            from PIL import Image

            return Image.fromarray(load_center_crop(path, self.size))
        return open_rgb(path)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple]:
        """``(image, caption)`` for this process's share of ``epoch``, from its ``start``-th sample on."""
        todo = self.indices(epoch, start)
        if self.prefetch == 0:
            for index in todo:
                sample = self._sample(index, lambda i=index: self.local_path(i))
                if sample is not None:
                    yield sample
            return
        with ThreadPoolExecutor(self.prefetch, thread_name_prefix="a4k-stream") as pool:
            window: deque = deque()
            queue = iter(todo)
            try:
                for index in queue:
                    window.append((index, pool.submit(self.local_path, index)))
                    if len(window) > self.prefetch:
                        sample = self._take(window)
                        if sample is not None:
                            yield sample
                while window:
                    sample = self._take(window)
                    if sample is not None:
                        yield sample
            finally:
                for index, future in window:  # an abandoned iteration releases what it fetched
                    if future.cancel():
                        continue
                    try:
                        future.result()
                        self.release(index)
                    except BaseException:
                        pass

    def _take(self, window: deque):
        index, future = window.popleft()
        return self._sample(index, future.result)

    def _sample(self, index: int, fetched) -> Optional[tuple]:
        entry = self.entries[index]
        try:
            path = fetched()
        except MissingFile as exc:
            return self._skip(entry, str(exc))
        except OutsidePath as exc:
            return self._skip(entry, f"{exc.reason}; refused")
        try:
            image = self._decode(path)
        except ImageError as exc:
            return self._skip(entry, exc.reason)
        finally:
            self.release(index)
        return image, entry.caption

    def _skip(self, entry: StreamEntry, reason: str):
        if self.strict:
            raise UserError(f"{self.store.describe(entry.name)} (metadata line {entry.line}): {reason}")
        self.skipped.append((entry.name, reason))
        return None
