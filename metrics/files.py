"""Small helpers for files a user names: how a path is shown, and the sha256 of a file's content.

What kind of thing a path is (regular file, FIFO, folder, link loop) is ``file_kinds``' job,
beside this module.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20          # bytes read at a time: a 4K PNG or a weight file is never held whole to hash it


def display_path(value) -> str:
    """A path (or any value) as text that can always be printed and written to UTF-8 files.

    The bytes the name really has are kept; bytes that are not UTF-8 become ``\\xNN`` escapes,
    and a lone surrogate from JSON text a ``\\udNNN`` escape.
    """
    if not isinstance(value, (str, bytes, os.PathLike)):
        return str(value)
    raw = os.fspath(value)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    try:
        return raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:   # a surrogate that is no escaped byte
        return raw.encode("utf-8", "backslashreplace").decode("utf-8")


def sha256_update(digest, path) -> None:
    """Feed a file's content to ``digest`` in chunks."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)


def sha256_file(path) -> str:
    """Hex sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    sha256_update(digest, Path(path))
    return digest.hexdigest()
