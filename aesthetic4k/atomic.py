"""Files that appear whole or not at all: write a temporary sibling, then rename it into place.

Every output of the toolkit (results, per-image tables, images, caches, checkpoints' small
files) goes through ``atomic_path`` so that a crash, Ctrl-C or full disk never leaves a partial
file and never damages the previous version.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if tmp.exists():
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # the usual permissions, whatever created the temporary file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_atomic(path: str | os.PathLike, write) -> None:
    """Call ``write(handle)`` on a temporary UTF-8 text file beside ``path``, then rename it over ``path``."""
    from aesthetic4k.errors import UserError

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{path}: folder {folder} does not exist")
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        write(handle)
