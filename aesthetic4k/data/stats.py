"""`a4k-data stats`: image size and caption statistics per split (the paper's Table 9 and Figure 13).

Sizes come from image headers (no pixels decoded) with EXIF orientation applied, so a 12k-image
4K split takes seconds. Histograms are drawn with matplotlib's Agg canvas directly (no global
backend switch, no display needed).
"""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from aesthetic4k.atomic import atomic_path
from aesthetic4k.data.metadata import METADATA_NAME, Entry, read_lines
from aesthetic4k.errors import ImageError, UserError


@dataclass
class SplitStats:
    split: str
    metadata: Path
    heights: list = field(default_factory=list)
    widths: list = field(default_factory=list)
    caption_words: list = field(default_factory=list)
    caption_chars: list = field(default_factory=list)
    entries: int = 0
    malformed: int = 0
    missing: int = 0
    unreadable: int = 0
    outside: int = 0          # paths leaving the dataset folder: refused, never opened

    def summary(self) -> dict:
        def describe(values):
            if not values:
                return {"median": None, "mean": None, "min": None, "max": None}
            return {"median": float(statistics.median(values)), "mean": float(statistics.fmean(values)),
                    "min": min(values), "max": max(values)}

        return {
            "split": self.split, "entries": self.entries, "images": len(self.heights),
            "malformed_lines": self.malformed, "missing_images": self.missing, "unreadable_images": self.unreadable,
            "outside_paths": self.outside,
            "height": describe(self.heights), "width": describe(self.widths),
            "caption_words": describe(self.caption_words), "caption_chars": describe(self.caption_chars),
            "empty_captions": sum(1 for n in self.caption_words if n == 0),
        }


def find_splits(folder: Path) -> list[tuple[str, Path]]:
    """(label, metadata.jsonl) for every split of a published-layout folder, or the folder's own file."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".jsonl":
        return [(folder.parent.name, folder)]
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    if (folder / METADATA_NAME).is_file():
        return [(folder.name or str(folder), folder / METADATA_NAME)]
    splits = []
    if (folder / "train" / METADATA_NAME).is_file():
        splits.append(("train", folder / "train" / METADATA_NAME))
    evals = []
    for path in (folder / "eval").glob(f"size_*/{METADATA_NAME}"):
        match = re.fullmatch(r"size_(\d+)", path.parent.name)
        if match:
            evals.append((int(match.group(1)), path))
    splits += [(f"eval@{size}", path) for size, path in sorted(evals)]
    if not splits:
        raise UserError(f"{folder}: no metadata.jsonl, train/metadata.jsonl or eval/size_*/metadata.jsonl found")
    return splits


def split_stats(label: str, metadata: Path, progress: bool = False) -> SplitStats:
    from aesthetic4k.data.hub import cache_storage
    from aesthetic4k.data.images import read_header
    from aesthetic4k.data.paths import OutsidePath, inside, is_file

    result = SplitStats(label, metadata)
    storage = cache_storage(metadata.parent)
    items = read_lines(metadata, storage)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"stats {label}", unit="image")
    for item in items:
        result.entries += 1
        if not isinstance(item, Entry):
            result.malformed += 1
            continue
        result.caption_words.append(len(item.text.split()))
        result.caption_chars.append(len(item.text))
        try:
            path = inside(metadata.parent, item.file_name, storage)
        except OutsidePath:
            result.outside += 1
            continue
        exists, refused = is_file(path)
        if refused:
            result.unreadable += 1
            continue
        if not exists:
            result.missing += 1
            continue
        try:
            header = read_header(path)
        except ImageError:
            result.unreadable += 1
            continue
        result.heights.append(header.height)
        result.widths.append(header.width)
    return result


def format_table(summaries: list[dict]) -> str:
    """Plain-text table in the layout of the paper's Table 9, then caption statistics."""
    def number(value, digits=0):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [f"{'split':<12} {'images':>7} {'median H':>9} {'median W':>9} {'mean H':>8} {'mean W':>8}"]
    for s in summaries:
        lines.append(f"{s['split']:<12} {s['images']:>7} {number(s['height']['median']):>9} "
                     f"{number(s['width']['median']):>9} {number(s['height']['mean']):>8} "
                     f"{number(s['width']['mean']):>8}")
    lines.append("")
    lines.append(f"{'split':<12} {'captions':>8} {'words mean':>10} {'median':>7} {'min':>5} {'max':>5} {'empty':>6}")
    for s in summaries:
        words = s["caption_words"]
        lines.append(f"{s['split']:<12} {s['entries'] - s['malformed_lines']:>8} {number(words['mean'], 1):>10} "
                     f"{number(words['median'], 1):>7} {number(words['min']):>5} {number(words['max']):>5} "
                     f"{s['empty_captions']:>6}")
    problems = [f"{s['split']}: {s['malformed_lines']} malformed line(s), {s['missing_images']} missing and "
                f"{s['unreadable_images']} unreadable image(s), {s['outside_paths']} path(s) outside the dataset "
                "folder (refused)" for s in summaries
                if s["malformed_lines"] or s["missing_images"] or s["unreadable_images"] or s["outside_paths"]]
    if problems:
        lines.append("")
        lines += problems + ["(run `a4k-data validate` for details)"]
    return "\n".join(lines)


def _save_figure(figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def plot_histograms(stats: list[SplitStats], out_dir: Path) -> list[Path]:
    """One PNG per split with the height and width histograms (Figure 13 of the paper)."""
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--plots {out_dir}: cannot create ({exc.strerror or exc})") from None
    written = []
    for split in stats:
        if not split.heights:
            continue
        figure = Figure(figsize=(10, 4))
        for axis, values, label in zip(figure.subplots(1, 2), (split.heights, split.widths), ("height", "width")):
            axis.hist(values, bins=min(50, max(5, len(values) // 4)), color="#4c72b0", edgecolor="white")
            axis.set_xlabel(f"{label} (px)")
            axis.set_ylabel("images")
            axis.set_title(f"{split.split}: {label}, median {statistics.median(values):.0f} px")
        figure.tight_layout()
        path = out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', split.split)}_sizes.png"
        _save_figure(figure, path)
        written.append(path)
    return written
