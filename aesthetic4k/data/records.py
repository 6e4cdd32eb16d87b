"""The unit every part of a run passes around: one benchmark entry (prompt + reference image)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Protocol


@dataclass(frozen=True)
class Record:
    stem: str                         # file stem of the reference image; generated images are named <stem>.jpg
    prompt: str                       # the caption (may be "" for prompt-free folders)
    image_path: Optional[Path]        # reference image, decoded lazily by whoever needs it
    line: int = 0                     # line number in metadata.jsonl, for messages


class Dataset(Protocol):
    name: str                         # recorded in results.csv ("aesthetic-4k-eval", "sample", a folder name)
    size: int                         # evaluation size (2048 or 4096)

    def records(self) -> Iterator[Record]: ...

    def __len__(self) -> int: ...
