"""What a report folder keeps of its run, so a later command can re-draw or compare it.

Next to ``index.html`` and ``images/``, a report folder holds ``run.json`` (the results row, the
settings and one entry per image: stem, image paths made absolute, prompt, per-image values) and
``patches.npz`` (each image's grid of patch GLCM Scores). ``a4k-report`` reads runs back from a
report folder, or from a results.csv row whose ``settings.report`` names one; the leaderboard
uses ``find_report`` to link a row to its report.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aesthetic4k.errors import UserError
from aesthetic4k.json_files import read_json_object
from aesthetic4k_metrics.file_kinds import open_regular
from aesthetic4k_metrics.json_text import JSONProblem, parse

REPORT_FILE = "index.html"
RUN_FILE = "run.json"
PATCHES_FILE = "patches.npz"
FORMAT = "aesthetic4k run report"
FORMAT_VERSION = 1
PATH_KEYS = ("file", "reference")


@dataclass
class StoredRun:
    """A run as the report needs it; ``aesthetic4k.evaluate.RunResult`` has the same attributes."""

    row: dict
    per_image: list
    settings: dict = field(default_factory=dict)
    image_dir: Path | None = None
    origin: str = ""                       # where it was read from, for messages


def register_plugins(settings: dict) -> None:
    """The plugin metrics a run's settings declare, registered so that the report shows their values;
    a declaration that cannot be read only leaves its metric out of the report."""
    from aesthetic4k_metrics.plugin_metrics import register_declared

    try:
        register_declared(settings, "run settings")
    except UserError:
        pass


def run_settings(run) -> dict:
    """The run's settings dict: ``run.settings``, else the JSON of ``row["settings"]``."""
    settings = getattr(run, "settings", None)
    if settings:
        return dict(settings)
    text = (getattr(run, "row", None) or {}).get("settings")
    if isinstance(text, str) and text.strip():
        try:
            parsed = parse(text)
        except JSONProblem:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _plain(value):
    """A JSON-ready copy: numpy scalars to Python, non-finite floats to None, paths and others to text."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def save_run(run, folder: Path, grids: list) -> None:
    """Write ``run.json`` and ``patches.npz`` into ``folder``; ``grids[i]`` is image i's patch grid or None."""
    entries, arrays = [], {}
    for index, (entry, grid) in enumerate(zip(run.per_image, grids)):
        kept = {k: v for k, v in entry.items() if k != "glcm_patches"}
        for key in PATH_KEYS:
            if kept.get(key):
                kept[key] = os.path.abspath(str(kept[key]))
        if grid is not None:
            kept["patches_key"] = f"image{index:05d}"
            arrays[kept["patches_key"]] = np.asarray(grid, dtype=np.float64)
        entries.append(_plain(kept))
    row = {k: v for k, v in dict(run.row).items() if k != "settings"}
    document = {"format": FORMAT, "version": FORMAT_VERSION, "row": _plain(row),
                "settings": _plain(run_settings(run)), "per_image": entries}
    (folder / RUN_FILE).write_text(json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n",
                                   encoding="utf-8")
    # np.savez writes zip members with a fixed timestamp: same grids, same bytes
    np.savez_compressed(folder / PATCHES_FILE, **arrays)


def load_report_folder(folder) -> StoredRun:
    folder = Path(folder)
    if folder.is_file() and folder.name in (REPORT_FILE, RUN_FILE):
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{folder}: no such report folder")
    path = folder / RUN_FILE
    if not path.exists():
        raise UserError(f"{folder}: no {RUN_FILE} in this folder (not a report, or written by an older "
                        "a4k-eval; re-run with --report)")
    document = read_json_object(path, "run report", "an aesthetic4k run report (a JSON object)")
    if document.get("format") != FORMAT:
        raise UserError(f"{path}: not an aesthetic4k run report file")
    if document.get("version") != FORMAT_VERSION:
        raise UserError(f"{path}: report format version {document.get('version')!r}, this toolkit reads "
                        f"{FORMAT_VERSION}; re-run with --report")
    for key, kind in (("per_image", list), ("row", dict), ("settings", dict)):
        if document.get(key) is not None and not isinstance(document[key], kind):
            raise UserError(f"{path}: {key!r} must be a JSON {'array' if kind is list else 'object'}, "
                            f"got {type(document[key]).__name__}")
    per_image = [dict(e) for e in document.get("per_image") or [] if isinstance(e, dict)]
    keys = [e["patches_key"] for e in per_image if isinstance(e.get("patches_key"), str)]
    if keys:
        try:
            with open_regular(folder / PATCHES_FILE) as handle, np.load(handle, allow_pickle=False) as stored:
                grids = {k: stored[k] for k in keys if isinstance(k, str) and k in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{folder / PATCHES_FILE}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        for entry in per_image:
            key = entry.pop("patches_key", None)
            grid = grids.get(key) if isinstance(key, str) else None
            if grid is not None:
                entry["glcm_patches"] = grid
    row = dict(document.get("row") or {})
    settings = document.get("settings") if isinstance(document.get("settings"), dict) else {}
    return StoredRun(row=row, per_image=per_image, settings=settings, origin=str(folder))


def find_report(reported, results_file=None):
    """The report a results row names in ``settings["report"]``: a URL as given, else the folder if it exists.

    A relative folder is tried against the current folder, then against the results file's folder.
    Returns None when nothing is there.
    """
    if not isinstance(reported, str) or not reported.strip():
        return None
    reported = reported.strip()
    if reported.startswith(("http://", "https://")):
        return reported
    candidates = [Path(reported)]
    if results_file is not None and not Path(reported).is_absolute():
        candidates.append(Path(results_file).parent / reported)
    for candidate in candidates:
        if (candidate / REPORT_FILE).is_file():
            return candidate
    return None


def load_run(spec: str) -> StoredRun:
    """A run from a report folder, or from ``results.csv[:generator/dataset/size]`` whose row names its report."""
    from aesthetic4k.results_schema import load_results

    text = str(spec)
    path, _, key = text.rpartition(".csv:") if ".csv:" in text else (text, "", "")
    if key:
        path += ".csv"
    if not path.endswith(".csv"):
        return load_report_folder(path)
    rows = load_results(path)
    if key:
        rows = [r for r in rows if r.key == key]
        if not rows:
            raise UserError(f"{path}: no row {key}")
    elif len(rows) > 1:
        raise UserError(f"{path} has {len(rows)} rows; name one as {path}:GENERATOR/DATASET/SIZE "
                        f"(e.g. {path}:{rows[0].key})")
    row = rows[0]
    folder = find_report(row.settings.get("report"), path)
    if folder is None or isinstance(folder, str):
        where = row.settings.get("report")
        raise UserError(f"{row.where}: {row.key} has no report folder here"
                        + (f" ({where!r} not found)" if where else " (run a4k-eval with --report DIR)"))
    return load_report_folder(folder)
