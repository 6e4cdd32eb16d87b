"""Checked reading of results.csv files for the leaderboard and ``a4k-check``.

``aesthetic4k.results`` reads and writes the file; this module says whether what was read can be
trusted: known columns only, a complete key on every row, sizes that are integers, metric cells
that are finite numbers (or empty: the metric did not run), settings that are JSON, no key twice.
Every problem is a one-line ``UserError`` naming the file, the line and the cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.json_files import parse_json
from aesthetic4k_metrics.registry import METRICS


@dataclass(frozen=True)
class ResultRow:
    """One validated results row: metric values are finite floats; a metric that did not run is absent."""

    generator: str
    dataset: str
    size: int | str          # pixels, or "mixed" (a folder of images of several sizes)
    values: dict = field(default_factory=dict)      # metric name -> float
    texts: dict = field(default_factory=dict)       # metric name -> the cell text as written (for display)
    n_images: int | None = None
    status: str = ""
    settings: dict = field(default_factory=dict)
    toolkit_version: str = ""
    date: str = ""
    source: str = ""                                # where a reported (not measured) number comes from
    intervals: dict = field(default_factory=dict)   # metric name -> (low, high): its bootstrap interval, if written
    protocol: str = ""                              # the protocol fingerprint (aesthetic4k.protocol), if written
    path: str = ""
    line: int = 0

    @property
    def key(self) -> str:
        return format_key(self.generator, self.dataset, self.size)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def format_key(generator: str, dataset: str, size) -> str:
    return f"{generator}/{dataset}/{size}"


MIXED = "mixed"   # the size cell of a folder run whose images differ in size


def parse_size(cell: str, where: str) -> int | str:
    if cell == MIXED:
        return MIXED
    try:
        size = int(cell)
    except ValueError:
        raise UserError(f"{where}: size {cell!r} is not a whole number of pixels (or {MIXED!r})") from None
    if size <= 0:
        raise UserError(f"{where}: size {cell!r} must be positive")
    return size


def parse_metric_cell(cell: str, where: str) -> float | None:
    """A metric cell: empty means "not measured"; anything else must be a finite number."""
    text = (cell or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: {text!r} is not a finite number (NaN/infinity cannot be compared)")
    return value


def measured_columns() -> list[str]:
    """Columns ``a4k-eval`` may write: the results.py layout plus every registered metric (plugins too)."""
    from aesthetic4k.results import current_columns

    return list(dict.fromkeys(current_columns() + list(METRICS)))


def _register_plugins(path, rows: list[dict]) -> None:
    """The plugin metrics the rows' settings declare, registered before the columns are checked."""
    from aesthetic4k_metrics.plugin_metrics import register_declared

    for line, cells in enumerate(rows, start=2):
        text = (cells.get("settings") or "").strip()
        if '"metric_plugins"' not in text:
            continue
        settings = parse_json(text, f"{path}:{line}", "settings")
        if isinstance(settings, dict):
            register_declared(settings, f"{path}:{line}")


def load_results(path, allowed_columns=None, what: str = "results file") -> list[ResultRow]:
    """Read and validate a results file; raises ``UserError`` on the first problem found."""
    from aesthetic4k.results import KEY_COLUMNS, PROTOCOL_COLUMN, interval_columns, read_rows

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such {what}")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a {what} (.csv)")
    header, rows = read_rows(path)
    if not header:
        raise UserError(f"{path}: empty {what} (no header); write it with a4k-eval --out {path}")
    _register_plugins(path, rows)
    allowed = measured_columns() if allowed_columns is None else list(allowed_columns)
    unknown = [c for c in header if c not in allowed]
    if unknown:
        raise UserError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
                        f"expected only {', '.join(allowed)}")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise UserError(f"{path}: column(s) {', '.join(duplicated)} appear more than once in the header")
    if not rows:
        raise UserError(f"{path}: {what} has a header but no rows")

    results = []
    first_line = {}
    for line, cells in enumerate(rows, start=2):
        where = f"{path}:{line}"
        for column in KEY_COLUMNS:
            if not (cells.get(column) or "").strip():
                raise UserError(f"{where}: empty {column}")
        size = parse_size(cells["size"].strip(), where)
        values, texts = {}, {}
        for name in METRICS:
            if name in cells:
                value = parse_metric_cell(cells[name], f"{where}: {name}")
                if value is not None:
                    values[name] = value
                    texts[name] = cells[name].strip()
        intervals = {}
        for name in values:
            low, high = (parse_metric_cell(cells.get(column, ""), f"{where}: {column}")
                         for column in interval_columns(name))
            if low is not None and high is not None:
                intervals[name] = (low, high)
        n_images = None
        if (cells.get("n_images") or "").strip():
            try:
                n_images = int(cells["n_images"])
            except ValueError:
                raise UserError(f"{where}: n_images {cells['n_images']!r} is not a whole number") from None
        settings = {}
        if (cells.get("settings") or "").strip():
            settings = parse_json(cells["settings"], where, "settings")
            if not isinstance(settings, dict):
                raise UserError(f"{where}: settings must be a JSON object")
        row = ResultRow(
            generator=cells["generator"].strip(), dataset=cells["dataset"].strip(), size=size,
            values=values, texts=texts, n_images=n_images, status=(cells.get("status") or "").strip(),
            settings=settings, toolkit_version=(cells.get("toolkit_version") or "").strip(),
            date=(cells.get("date") or "").strip(), source=(cells.get("source") or "").strip(),
            intervals=intervals, protocol=(cells.get(PROTOCOL_COLUMN) or "").strip(), path=str(path), line=line)
        identity = (row.key, row.source)
        if identity in first_line:
            raise UserError(f"{where}: {row.key} already on line {first_line[identity]}; "
                            "keep one row per generator/dataset/size")
        first_line[identity] = line
        results.append(row)
    return results
