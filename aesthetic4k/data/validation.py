"""Check a dataset before a long run: every problem with the metadata line it comes from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from aesthetic4k.data.metadata import NO_ENTRIES, CaptionRule, Entry, LineError
from aesthetic4k.data.paths import OutsidePath, inside, is_file, shorten
from aesthetic4k.errors import ImageError

# Captions average ~30 words; CLIP reads 77 tokens. Far beyond that is a broken caption, not a long one.
MAX_CAPTION_WORDS = 300


@dataclass(frozen=True)
class Problem:
    kind: str              # malformed, outside, duplicate, duplicate-stem, missing, unreadable, empty-caption,
    #                        long-caption, small, empty (no entries), no-captions
    line: int
    message: str
    path: Optional[str] = None
    severity: str = "error"  # "error" breaks an evaluation; "warning" is worth a look

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{self.severity}: {where}{self.message}"


def _check_caption(text: str, line: int, problems: list) -> None:
    if text.strip():                     # missing captions: the CaptionRule, at the end
        words = len(text.split())
        if words > MAX_CAPTION_WORDS:
            problems.append(Problem("long-caption", line,
                                    f"caption has {words} words (more than {MAX_CAPTION_WORDS}): probably broken",
                                    severity="warning"))


def _check_image(path: Path, line: int, size: Optional[int], decode: bool, problems: list) -> None:
    from aesthetic4k.data.images import open_rgb, read_header

    name = shorten(path)
    exists, refused = is_file(path)
    if refused:
        problems.append(Problem("unreadable", line, f"unusable path {name}: {refused}", name))
        return
    if not exists:
        problems.append(Problem("missing", line, f"image not found: {name}", name))
        return
    try:
        header = read_header(path)
        if decode:
            open_rgb(path).close()
    except ImageError as exc:
        problems.append(Problem("unreadable", line, f"unreadable image {name}: {exc.reason}", name))
        return
    if size and header.short_side < size:
        problems.append(Problem("small", line, f"{shorten(path.name)} is {header.width}x{header.height}, shorter "
                                               f"side below the evaluation size {size} (it will be upscaled)", name,
                                "warning"))


def validate(dataset, images: bool = True, decode: bool = True, progress: bool = False) -> list[Problem]:
    """All problems of ``dataset``: malformed lines, duplicates, missing/unreadable images, bad captions.

    ``images=False`` checks the metadata only; ``decode=False`` reads image headers without
    decoding pixels (fast, but misses truncated files).
    """
    problems: list[Problem] = []
    if hasattr(dataset, "entries"):
        items = list(dataset.entries())
        root = dataset.root
        storage = getattr(dataset, "storage", ())
    else:  # any other Dataset: only what its records expose (its own loader checked the paths)
        items = [Entry(r.line, str(r.image_path) if r.image_path else "", r.prompt) for r in dataset.records()]
        root = None
        storage = ()
    size = getattr(dataset, "size", None) if getattr(dataset, "split", "eval") == "eval" else None
    seen_files: dict[str, int] = {}
    seen_stems: dict[str, int] = {}
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="validating", unit="entry")
    entries = 0
    captions = CaptionRule()            # the rule records() (a4k-eval, a4k-train) applies too
    for item in items:
        entries += 1
        if isinstance(item, LineError):
            problems.append(Problem("malformed", item.line, item.reason))
            continue
        try:  # a path that leaves the dataset folder is never opened
            path = inside(root, item.file_name, storage) if root is not None else Path(item.file_name)
        except OutsidePath as exc:
            problems.append(Problem("outside", item.line, f"{exc.reason}; refused"))
            path = None
        key = item.file_name.replace("\\", "/")
        name = shorten(item.file_name)
        if key in seen_files:
            problems.append(Problem("duplicate", item.line, f"{name} already listed on line {seen_files[key]}"))
            continue
        seen_files[key] = item.line
        stem = Path(key).stem
        if stem in seen_stems:
            problems.append(Problem("duplicate-stem", item.line, f"file stem {shorten(stem)!r} of {name} already "
                                                                 f"used on line {seen_stems[stem]}"))
        seen_stems.setdefault(stem, item.line)
        _check_caption(item.text, item.line, problems)
        captions.add(item.line, item.text)
        if images and path is not None:
            _check_image(path, item.line, size, decode, problems)
    problems += [Problem("empty-caption", line, message) for line, message in captions.problems()]
    if captions.prompt_free:
        problems.append(Problem("no-captions", 0, "no entry has a caption: a prompt-free dataset (generators "
                                                  "and CLIPScore need captions)", severity="warning"))
    if not entries:
        problems.append(Problem("empty", 0, NO_ENTRIES))
    return sorted(problems, key=lambda problem: problem.line)
