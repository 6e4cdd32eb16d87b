"""metadata.jsonl, the published format: one JSON object a line with ``file_name`` and ``text``.

``file_name`` is relative to the folder holding the jsonl (e.g. ``images/1234.jpg``).
Reading is line by line (the train split has 12k entries and must stream); each line is
either an :class:`Entry` or a :class:`LineError` that carries its line number.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from aesthetic4k.data.paths import OutsidePath, inside
from aesthetic4k_metrics.files import display_path
from aesthetic4k.errors import UserError
from aesthetic4k_metrics.file_kinds import FileKindError, open_regular
from aesthetic4k_metrics.json_text import JSONProblem, parse

METADATA_NAME = "metadata.jsonl"
NO_ENTRIES = "no entries (the metadata file lists no image)"


@dataclass(frozen=True)
class Entry:
    line: int
    file_name: str
    text: str


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str


class CaptionRule:
    """The caption rule of every reader of a dataset (``a4k-data validate``, ``records()`` and so
    ``a4k-eval`` and ``a4k-train``, the streaming loader), kept in one place.

    A caption is text with a visible character: a missing, null or blank ``text`` is none (any
    other non-string is a malformed line, see :func:`parse_line`). Either every entry of a dataset
    has a caption, or none has (a prompt-free dataset, e.g. built with ``--captioner none``); an
    entry without one among entries with one is an error of its line. Feed the entries in order
    to :meth:`add`; streaming readers stop at the first problem it returns, validation lists
    :meth:`problems` at the end.
    """

    def __init__(self):
        self.first_with = 0          # line of the first entry with a caption (0: none yet)
        self.without: list[int] = []  # lines of the entries without one

    def add(self, line: int, text: str) -> Optional[tuple[int, str]]:
        """Record one entry; the first (line, problem) this entry reveals, if it reveals one."""
        if text.strip():
            if not self.first_with:
                self.first_with = line
                if self.without:
                    return self.without[0], self.problem(self.without[0])
            return None
        self.without.append(line)
        return (line, self.problem(line)) if self.first_with else None

    def problem(self, line: int) -> str:
        return (f"empty caption (\"text\" is missing, null or blank) while line {self.first_with} has one: "
                "every entry needs a caption, or none does (a prompt-free dataset)")

    def problems(self) -> list[tuple[int, str]]:
        """(line, problem) of every entry without a caption, once all entries were added."""
        return [(line, self.problem(line)) for line in self.without] if self.first_with else []

    @property
    def prompt_free(self) -> bool:
        return bool(self.without) and not self.first_with


def parse_line(raw: str, line: int) -> Union[Entry, LineError, None]:
    """One jsonl line -> Entry, LineError, or None for a blank line.

    A missing or null ``text`` becomes "" (no caption, see :class:`CaptionRule`); any other
    non-string is a malformed line.
    """
    raw = raw.strip()
    if not raw:
        return None
    try:
        obj = parse(raw)
    except JSONProblem as exc:
        return LineError(line, exc.message.replace(" at line 1 column ", " at column "))
    if not isinstance(obj, dict):
        return LineError(line, f"expected a JSON object, got {type(obj).__name__}")
    file_name = obj.get("file_name")
    if not isinstance(file_name, str) or not file_name.strip():
        return LineError(line, "no \"file_name\" string")
    text = obj.get("text", "")
    if text is None:
        text = ""
    if not isinstance(text, str):
        return LineError(line, f"\"text\" is a {type(text).__name__}, not a string")
    return Entry(line, file_name.strip(), text)


def read_lines(path: str | os.PathLike, storage=()) -> Iterator[Union[Entry, LineError]]:
    """Stream the entries of a metadata.jsonl (blank lines skipped, a UTF-8 BOM tolerated).

    The file itself must resolve inside its own folder (or ``storage``, a hub cache's blobs) like
    every path of a dataset, and be a regular file: a link out of the dataset, a FIFO or a
    device is refused unread.
    """
    path = Path(path)
    try:
        inside(path.parent, path.name, storage)
    except OutsidePath as exc:
        raise UserError(f"{display_path(path)}: the metadata file {exc.reason}; refused") from None
    try:
        handle = open_regular(path, "r", encoding="utf-8-sig")
    except FileKindError as exc:
        if exc.reason == "file not found":
            raise UserError(f"{display_path(path)}: metadata file not found") from None
        raise UserError(f"{display_path(path)}: cannot read the metadata file ({exc.reason})") from None
    with handle:
        number = 0
        try:
            for number, raw in enumerate(handle, start=1):
                item = parse_line(raw, number)
                if item is not None:
                    yield item
        except UnicodeDecodeError:
            raise UserError(f"{display_path(path)}: line {number + 1} is not UTF-8 text") from None
        except OSError as exc:
            raise UserError(f"{display_path(path)}: cannot read line {number + 1} ({exc.strerror or exc})") from None


def write_metadata(path: str | os.PathLike, entries) -> None:
    """Write ``(file_name, text)`` pairs as metadata.jsonl atomically (temp file + rename)."""
    from aesthetic4k.atomic import write_atomic

    def write(handle):
        for file_name, text in entries:
            handle.write(json.dumps({"file_name": file_name, "text": text}, ensure_ascii=False) + "\n")

    write_atomic(path, write)
