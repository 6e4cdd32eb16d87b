"""results.csv: one row per (generator, dataset, size) run, replaced in place on re-runs.

Writes go to a temporary file in the same folder followed by an atomic rename, so a
crash or Ctrl-C never leaves a partial file and never loses the rows of earlier runs.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from aesthetic4k.atomic import atomic_path
from aesthetic4k.errors import UserError

KEY_COLUMNS = ["generator", "dataset", "size"]
# The columns DESIGN.md promises, in this order, first in every file.
CORE_COLUMNS = KEY_COLUMNS + ["n_images", "glcm_score", "compression_ratio", "fid", "clip_score", "aesthetics"]
EXTRA_COLUMNS = ["kid", "kid_std", "patch_fid", "patch_kid", "clip_truncated"]
INFO_COLUMNS = ["status", "settings", "toolkit_version", "date"]
COLUMNS = CORE_COLUMNS + EXTRA_COLUMNS + INFO_COLUMNS


def format_value(value) -> str:
    """CSV text for one cell: floats keep full precision, missing values are empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)
    return str(value)


def read_rows(path: str | os.PathLike) -> tuple[list[str], list[dict]]:
    """Read a results file; a missing file is empty, a file without the key columns is an error."""
    path = Path(path)
    if not path.exists():
        return [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = [dict(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read results file ({exc})") from None
    if not header:
        return [], []
    missing = [c for c in KEY_COLUMNS if c not in header]
    if missing:
        raise UserError(f"{path}: not a results file (missing column(s) {', '.join(missing)})")
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise UserError(f"{path}: line {number} has more cells than the header")
    return header, rows


def row_key(row: dict) -> tuple[str, str, str]:
    return tuple(str(row.get(c, "") or "") for c in KEY_COLUMNS)


def write_atomic(path: str | os.PathLike, write) -> None:
    """Call ``write(handle)`` on a temporary text file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{path}: folder {folder} does not exist")
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        write(handle)


def upsert_row(path: str | os.PathLike, row: dict) -> None:
    """Insert ``row`` into the results file, replacing a row with the same generator/dataset/size."""
    header, rows = read_rows(path)
    cells = {k: format_value(v) for k, v in row.items()}
    columns = list(COLUMNS)
    for name in list(header) + list(cells):
        if name not in columns:
            columns.append(name)
    key = row_key(cells)
    kept, placed = [], False
    for old in rows:
        if row_key(old) == key:
            if not placed:  # the new row takes the place of the first old one; duplicates go
                kept.append(cells)
                placed = True
            continue
        kept.append(old)
    if not placed:
        kept.append(cells)
    rows = kept

    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "") or "" for c in columns})

    try:
        write_atomic(path, write)
    except PermissionError as exc:
        raise UserError(f"{path}: cannot write results ({exc.strerror})") from None


def write_table(path: str | os.PathLike, columns: list[str], rows: list[dict]) -> None:
    """Write a whole CSV table atomically (per-image files)."""

    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: format_value(r.get(c)) for c in columns})

    try:
        write_atomic(path, write)
    except PermissionError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None
