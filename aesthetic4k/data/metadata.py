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
from typing import Iterator, Union

from aesthetic4k.errors import UserError

METADATA_NAME = "metadata.jsonl"


@dataclass(frozen=True)
class Entry:
    line: int
    file_name: str
    text: str


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str


def parse_line(raw: str, line: int) -> Union[Entry, LineError, None]:
    """One jsonl line -> Entry, LineError, or None for a blank line."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return LineError(line, f"not valid JSON ({exc.msg} at column {exc.colno})")
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


def read_lines(path: str | os.PathLike) -> Iterator[Union[Entry, LineError]]:
    """Stream the entries of a metadata.jsonl (blank lines skipped, a UTF-8 BOM tolerated)."""
    path = Path(path)
    try:
        handle = open(path, encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: metadata file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        number = 0
        try:
            for number, raw in enumerate(handle, start=1):
                item = parse_line(raw, number)
                if item is not None:
                    yield item
        except UnicodeDecodeError:
            raise UserError(f"{path}: line {number + 1} is not UTF-8 text") from None


def write_metadata(path: str | os.PathLike, entries) -> None:
    """Write ``(file_name, text)`` pairs as metadata.jsonl atomically (temp file + rename)."""
    from aesthetic4k.atomic import write_atomic

    def write(handle):
        for file_name, text in entries:
            handle.write(json.dumps({"file_name": file_name, "text": text}, ensure_ascii=False) + "\n")

    write_atomic(path, write)
