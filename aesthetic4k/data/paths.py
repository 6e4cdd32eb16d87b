"""Paths named inside a dataset: they must stay inside it, and odd names must not break anything.

A ``file_name`` in a metadata.jsonl (or a path in a manifest or a hub listing) is relative to
its dataset folder. :func:`inside` accepts it only when it resolves inside that folder after
every symlink is followed, so ``../secret.jpg``, ``/etc/passwd`` or a link pointing out of the
folder are refused before anything is opened. Hugging Face cache snapshots are links into the
repository's ``blobs/`` folder, so such a dataset names its storage folder as an allowed root.

File names are whatever the operating system allows: bytes that are not UTF-8 arrive as lone
surrogates (Python's ``surrogateescape``). ``aesthetic4k_metrics.files.display_path`` turns any name into printable text and
:func:`json_line` writes such a name into JSON without failing.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

from aesthetic4k_metrics.file_kinds import os_reason
from aesthetic4k_metrics.files import display_path


class OutsidePath(Exception):
    """A dataset path that is unusable: it leaves its folder, or the system cannot handle it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def shorten(value, limit: int = 120) -> str:
    """:func:`display_path`, cut in the middle when longer than ``limit`` characters."""
    text = display_path(value)
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]} ({len(text)} characters)"


def json_line(record: dict) -> str:
    """One JSON line, readable UTF-8 where possible; names with undecodable bytes are escaped."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a non-UTF-8 file name
        line = json.dumps(record, ensure_ascii=True)
    return line


def _is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def inside(root: Path, name: str, also: Iterable[Path] = ()) -> Path:
    """``root / name`` when it stays inside ``root`` (or one of ``also``) after symlinks; else OutsidePath.

    Nothing is opened: a name that leaves the folder by its text alone (absolute, ``..``) is
    refused without touching the disk; otherwise only the links on the way are read.
    """
    text = name.replace("\\", "/")  # judged with either separator: "..\\x" is refused too
    pure = PurePosixPath(text)
    if pure.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise OutsidePath(f"{shorten(name)} is an absolute path; dataset paths must be relative to the "
                          "dataset folder")
    depth = 0
    for part in pure.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise OutsidePath(f"{shorten(name)} leaves the dataset folder (..)")
    path = Path(root) / name
    try:
        resolved = path.resolve()
        real_roots = [Path(root).resolve()] + [Path(extra).resolve() for extra in also]
    except OSError as exc:
        raise OutsidePath(f"{shorten(name)}: {os_reason(exc)}") from None
    except ValueError:  # an embedded NUL byte
        raise OutsidePath(f"{shorten(name)}: file name contains a NUL byte") from None
    if not any(_is_inside(resolved, real) for real in real_roots):
        raise OutsidePath(f"{shorten(name)} resolves to {shorten(resolved)}, outside the dataset folder "
                          "(symlinks are followed)")
    return path


def is_file(path: Path) -> tuple[bool, Optional[str]]:
    """(exists as a regular file, reason when the system refuses to look: too long, loop, ...)."""
    try:
        return path.is_file(), None
    except OSError as exc:
        return False, os_reason(exc)
    except ValueError:  # an embedded NUL byte
        return False, "file name contains a NUL byte"
