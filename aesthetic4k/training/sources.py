"""Where the trainers' images come from: files on this machine, or a dataset streamed through a bounded cache.

Both trainers take records in the order of :class:`~aesthetic4k.training.data.RecordStream` and
ask an image source for each record's picture. Order, sharding between processes, resuming and
the handling of bad images are therefore the same for local and streamed data, and streaming a
folder gives the loss curve of reading that folder directly.

- :class:`LocalImages`: the records of a local dataset (:func:`~aesthetic4k.training.data.read_records`).
- :class:`StreamedImages`: ``aesthetic-4k``, ``aesthetic-train-v2``, a hub dataset ``owner/name`` or a
  folder in the hub layout, read with :class:`~aesthetic4k.data.streaming.StreamingDataset`: only
  ``train/metadata.jsonl`` up front, each image fetched into a cache of at most ``cache_limit``
  bytes when its turn comes, ``prefetch`` images ahead of the batch being decoded.
"""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from aesthetic4k.errors import ImageError, UserError


@dataclass(frozen=True)
class StreamSettings:
    cache_dir: str          # the streamed images' cache (one sub-folder per source)
    cache_limit: int        # bytes the cache may hold (plus the files of the prefetch window)
    prefetch: int = 8       # images fetched ahead of the batch being decoded


def default_stream_cache() -> Path:
    from aesthetic4k_metrics.cache import cache_root

    return cache_root() / "stream"


def check_stream_options(config) -> None:
    """The ``stream*`` settings a trainer's config shares with the other trainer's."""
    if config.stream_cache_limit <= 0:
        raise UserError(f"--stream-cache-limit must be positive, got {config.stream_cache_limit} bytes")
    if config.stream_prefetch < 0:
        raise UserError(f"--stream-prefetch cannot be negative, got {config.stream_prefetch}")


def stream_settings(config) -> Optional[StreamSettings]:
    """The streaming settings of a trainer's config, None when it reads local files."""
    if not config.stream:
        return None
    cache = Path(config.stream_cache).expanduser() if config.stream_cache else default_stream_cache()
    return StreamSettings(str(cache), int(config.stream_cache_limit), int(config.stream_prefetch))


def open_images(data: str, stream: Optional[StreamSettings] = None, images_only: bool = False):
    """The image source of ``data``: streamed when ``stream`` is given, else local files."""
    if stream is not None:
        return StreamedImages(data, stream)
    if _only_streamed(data):
        raise UserError(f"--data {data}: no such folder; to stream the hub dataset {data}, add --stream")
    from aesthetic4k.training.data import read_records

    return LocalImages(read_records(data, images_only))


def _only_streamed(data: str) -> bool:
    """A hub dataset name that is no local path (``aesthetic-4k`` alone is also downloaded whole)."""
    from aesthetic4k.data.datasets import HUB_SPEC
    from aesthetic4k.data.streaming import KNOWN

    if data == HUB_SPEC or data.endswith(".jsonl") or Path(data).expanduser().exists():
        return False
    return data.lower() in KNOWN or re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", data) is not None


class LocalImages:
    """Records whose images are files on this machine."""

    ahead = 0  # nothing to fetch ahead

    def __init__(self, records: list):
        self.records = records

    def describe(self, record) -> str:
        return str(record.image_path)

    def open(self, record, draft_size: int):
        """The record's image, decoded by the toolkit's rules (ImageError when unusable)."""
        from aesthetic4k.training.data import open_image_file

        return open_image_file(record.image_path, draft_size)

    def prefetch(self, records: Iterable) -> None:
        pass

    def close(self) -> None:
        pass


class StreamedImages:
    """Records of a streamed dataset; images come through the stream's bounded cache.

    ``prefetch(records)`` names the records coming next: their files are fetched on background
    threads (the cache holds each until it is decoded, or until it falls out of the window).
    """

    def __init__(self, data: str, settings: StreamSettings):
        from aesthetic4k.data.records import Record
        from aesthetic4k.data.streaming import StreamingDataset

        # index access only: the order and the share of each process are RecordStream's
        self.stream = StreamingDataset(data, cache_dir=settings.cache_dir, cache_limit=settings.cache_limit,
                                       shuffle=False, prefetch=0)
        self.records = [Record(stem=e.stem, prompt=e.caption, image_path=None, line=e.line)
                        for e in self.stream.entries]
        self.index = {e.stem: i for i, e in enumerate(self.stream.entries)}
        self.ahead = settings.prefetch
        self.pending: dict = {}   # stem -> future of the held local path
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(self.ahead, thread_name_prefix="a4k-fetch") if self.ahead else None

    def describe(self, record) -> str:
        return self.stream.store.describe(self.stream.entries[self.index[record.stem]].name)

    def prefetch(self, records: Iterable) -> None:
        """Fetch these records' files in the background; earlier ones not asked for again are let go."""
        if self.pool is None:
            return
        wanted = list(dict.fromkeys(record.stem for record in records))[:self.ahead]
        with self.lock:
            for stem in [s for s in self.pending if s not in wanted]:
                self._let_go(stem, self.pending.pop(stem))
            for stem in wanted:
                if stem not in self.pending:
                    self.pending[stem] = self.pool.submit(self.stream.local_path, self.index[stem])

    def _let_go(self, stem: str, future) -> None:
        if future.cancel():
            return
        index = self.index[stem]
        future.add_done_callback(lambda done: self.stream.release(index) if done.exception() is None else None)

    def open(self, record, draft_size: int):
        """The record's image (fetched unless prefetched), decoded exactly as a local file is."""
        from aesthetic4k.data.images import open_rgb
        from aesthetic4k.data.paths import OutsidePath
        from aesthetic4k.data.remote import MissingFile

        with self.lock:
            future = self.pending.pop(record.stem, None)
        index, where = self.index[record.stem], self.describe(record)
        try:
            path = future.result() if future is not None else self.stream.local_path(index)
        except MissingFile as exc:
            detail = str(exc).removeprefix(where + ": ")
            raise ImageError(where, "missing file" if detail == "not found" else f"missing file: {detail}") from None
        except OutsidePath as exc:
            raise ImageError(where, f"{exc.reason}; refused") from None
        try:
            return open_rgb(path, draft_size=draft_size)
        except ImageError as exc:
            raise ImageError(where, exc.reason) from None
        finally:
            self.stream.release(index)

    def close(self) -> None:
        """Stop fetching ahead (downloads in flight finish on their own; their files stay cached)."""
        if self.pool is not None:
            with self.lock:
                for stem in list(self.pending):
                    self._let_go(stem, self.pending.pop(stem))
            self.pool.shutdown(wait=False, cancel_futures=True)
