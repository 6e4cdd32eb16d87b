"""results.csv: one row per run, replaced in place on re-runs; safe under concurrent writers.

A row is keyed by (generator, dataset, size); folder runs name their folder in the generator
cell (``folder:gen``), so two folders keep two rows. Every update is a read-merge-write under an
exclusive lock (``.<name>.lock`` beside the file), written to a temporary file and renamed, so
concurrent runs never lose each other's rows and a crash never leaves a partial file.
"""
from __future__ import annotations

import csv
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

from aesthetic4k.atomic import atomic_path
from aesthetic4k.errors import UserError
from aesthetic4k_metrics.file_kinds import named_output, open_regular, output_problem
from aesthetic4k_metrics.registry import METRICS, PUBLISHED, result_columns

KEY_COLUMNS = ["generator", "dataset", "size"]
# The columns docs/design.md promises, in this order, first in every file; then the extras.
CORE_COLUMNS = KEY_COLUMNS + ["n_images"] + PUBLISHED
INFO_COLUMNS = ["status", "settings", "toolkit_version", "date"]
PROTOCOL_COLUMN = "protocol"    # the protocol fingerprint (aesthetic4k.protocol): rows with equal ones compare
LOCK_WAIT_NOTICE = 2.0   # seconds before saying that another run holds the lock


def interval_columns(name: str) -> tuple[str, str]:
    """The cells of a metric's bootstrap interval (aesthetic4k.evaluation.intervals)."""
    return f"{name}_low", f"{name}_high"


def current_columns() -> list[str]:
    """Every column of a results file, in order: the core ones, the other metrics' (plugin metrics registered
    in this process included), each metric's interval, the protocol fingerprint, then the info columns."""
    extra = [c for c in result_columns() if c not in CORE_COLUMNS]
    intervals = [column for name in dict.fromkeys(PUBLISHED + list(METRICS)) for column in interval_columns(name)]
    return CORE_COLUMNS + extra + intervals + [PROTOCOL_COLUMN] + INFO_COLUMNS


COLUMNS = current_columns()   # those of the built-in metrics


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
    """Read a results file; a missing file is empty, a file without the key columns is an error.

    Only a regular file is opened (a FIFO, a device or a folder is refused unread); a UTF-8
    byte-order mark at its start (spreadsheet exports) is accepted.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return [], []
    try:
        with open_regular(path, "r", encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = [dict(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot read results file ({getattr(exc, 'strerror', None) or exc})") from None
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


def check_writable(path: Path, what: str) -> None:
    """Fail now, before any work, if ``path`` cannot be written: its folder missing or read-only, or
    something other than a regular file there (a folder, FIFO, device, socket, link loop).

    Give it the path :func:`named_output` returned, so that a link is judged by its target.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{path}: folder {folder} does not exist")
    problem = output_problem(path)
    if problem:
        raise UserError(f"{path}: {problem}, expected a {what} file; refused")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{path}: {what} file is read-only; refusing to replace it")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{path}: cannot write in {folder} (permission denied)")


@contextmanager
def locked(path: str | os.PathLike):
    """Hold an exclusive lock on the results file ``path`` (a ``.<name>.lock`` file beside it; beside the
    target of a link, so that writers through the link and through the target exclude each other)."""
    import fcntl

    path = named_output(path)
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        handle = open(lock_path, "a+")
    except OSError as exc:
        raise UserError(f"{path}: cannot create the lock file {lock_path} ({exc.strerror or exc})") from None
    try:
        started = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and time.monotonic() - started > LOCK_WAIT_NOTICE:
                    import sys

                    print(f"waiting for another run writing {path} ...", file=sys.stderr, flush=True)
                    told = True
                time.sleep(0.05)
            except OSError as exc:
                raise UserError(f"{path}: the file system cannot lock files ({exc.strerror or exc}); write results "
                                "on a local disk so that concurrent runs cannot lose rows") from None
        yield
    finally:
        handle.close()   # releases the lock


def merge_row(path: str | os.PathLike, row: dict) -> tuple[list[str], list[dict]]:
    """The file's columns and rows with ``row`` put in place of the row with its key (or appended)."""
    header, rows = read_rows(path)
    cells = {k: format_value(v) for k, v in row.items()}
    columns = current_columns()
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
    return columns, kept


def write_csv(path: str | os.PathLike, columns: list[str], rows: list[dict], format_cells: bool = False) -> None:
    """Write a whole CSV table to ``path`` (a temporary file the caller renames, or via write_table)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: format_value(r.get(c)) if format_cells else (r.get(c, "") or "") for c in columns})


def upsert_row(path: str | os.PathLike, row: dict) -> None:
    """Insert ``row`` into the results file under its lock, replacing the row with the same key.

    A link is followed: its target is locked and replaced, the link stays."""
    path = named_output(path)
    check_writable(path, "results")
    with locked(path):
        columns, rows = merge_row(path, row)
        try:
            with atomic_path(path) as tmp:
                write_csv(tmp, columns, rows)
        except OSError as exc:
            raise UserError(f"{path}: cannot write results ({exc.strerror or exc})") from None


def write_table(path: str | os.PathLike, columns: list[str], rows: list[dict]) -> None:
    """Write a whole CSV table atomically (per-image files); a link is followed to its target."""
    path = named_output(path)
    check_writable(path, "CSV")
    try:
        with atomic_path(path) as tmp:
            write_csv(tmp, columns, rows, format_cells=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
