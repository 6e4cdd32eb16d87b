"""`a4k-data build`: from a folder of raw photographs to a dataset in the published layout.

Stages (each with a progress bar, each resumable through :mod:`aesthetic4k.data.build_state`):

1. find   every file under --source (symlinks followed, loops detected, the output folder skipped);
2. scan   sha256, header, full decode check (EXIF orientation, colour mode, bomb guard), pHash;
3. filter unreadable files, exact copies, shorter side < --min-short-side, near-duplicates
          (pHash distance <= --dup-threshold, the largest image of a group is kept), and the optional
          quality thresholds (--min-glcm, --min-aesthetics);
4. caption through the chosen captioner (sidecar, openai, none, plugins);
5. split  kept images that fit an eval size into eval (--eval-count, seeded); the others are train;
6. write  train/images, eval/size_<S>/images (shorter side resized to S, center crop), the
          metadata.jsonl files, manifest.jsonl (one line per source file: every decision and its
          reason) and build.json (settings and counts).

The per-image work of scan, GLCM filter and write runs on a distributor (this process, local
worker processes, or Ray: :mod:`aesthetic4k.data.distribute`, the work itself in
:mod:`aesthetic4k.data.build_work`). Every decision is taken here, in the driver, from sorted
results that depend only on the files' contents and the options, never on the order files are
found or finish, so a build is reproducible byte for byte whatever the workers.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from aesthetic4k.data import build_work
from aesthetic4k.data.build_state import STATE_DIR, BuildLock, Journal, ShardStore
from aesthetic4k.data.captioning import CaptionerOptions, CaptionRejected, captioner_key, clean_caption, create_captioner
from aesthetic4k.data.distribute import Progress, file_size, run_stage
from aesthetic4k.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from aesthetic4k_metrics.files import display_path
from aesthetic4k.data.phash import DEFAULT_THRESHOLD
from aesthetic4k.data.validation import MAX_CAPTION_WORDS
from aesthetic4k.errors import UserError



@dataclass
class BuildOptions:
    source: Path
    out: Path
    min_short_side: int = 2048
    dup_threshold: int = DEFAULT_THRESHOLD
    min_glcm: Optional[float] = None
    min_aesthetics: Optional[float] = None
    captioner: str = "sidecar"
    caption: CaptionerOptions = field(default_factory=CaptionerOptions)
    max_caption_words: int = MAX_CAPTION_WORDS
    eval_count: int = 195
    seed: int = 0
    eval_sizes: tuple = (2048, 4096)
    eval_mode: str = "crop"          # crop: short side -> S and center crop; keep: full image as in the hub set
    eval_format: str = "png"         # png (lossless) or jpg (quality 95)
    train_format: str = "png"        # for train images that must be re-encoded; others are copied as is
    link: bool = False               # hard-link unchanged train images instead of copying
    max_pixels: int = DEFAULT_MAX_PIXELS
    device: str = "cpu"              # for the aesthetics filter
    workers: Optional[int] = None    # None: one per core (local) or the local Ray instance's CPUs
    distributor: str = "local"       # local or ray
    ray_address: Optional[str] = None  # a running Ray cluster; None starts a local Ray instance
    progress: bool = True


@dataclass
class SourceFile:
    rel: str                         # path relative to --source, "/" separated
    path: Path
    decision: str = ""               # train, eval, skipped, ignored
    reason: str = ""
    category: str = ""               # the reason without names or numbers, for the summary
    scan: dict = field(default_factory=dict)
    stem: str = ""
    caption: Optional[str] = None
    scores: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def skip(self, reason: str, decision: str = "skipped", category: str = "") -> None:
        self.decision, self.reason = decision, reason
        self.category = category or reason.split(":")[0].split(" (")[0]

    @property
    def short_side(self) -> int:
        return min(self.scan["width"], self.scan["height"])


# ---------------------------------------------------------------- 1. find

def find_files(source: Path, out: Path) -> list[SourceFile]:
    """Every file below ``source`` in sorted order; directory symlink loops and ``out`` are skipped."""
    files: list[SourceFile] = []
    visited: set = set()
    out_resolved = out.resolve()

    def walk(folder: Path, rel: str):
        try:
            info = folder.stat()
        except OSError as exc:
            files.append(_unreadable(folder, rel, f"cannot open folder ({exc.strerror or exc})"))
            return
        if (info.st_dev, info.st_ino) in visited:
            files.append(_unreadable(folder, rel, "symlink loop: folder already visited", "ignored"))
            return
        visited.add((info.st_dev, info.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            files.append(_unreadable(folder, rel, f"cannot list folder ({exc.strerror or exc})"))
            return
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue  # hidden files and our own state folder
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if path.resolve() == out_resolved:
                    continue
                walk(path, child_rel)
                continue
            if path.suffix.lower() == ".txt":
                continue  # sidecar captions
            item = SourceFile(child_rel, path)
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                item.skip(f"not an image file type ({path.suffix or 'no extension'}); supported: "
                          + " ".join(IMAGE_EXTENSIONS), "ignored", "not an image file type")
            files.append(item)

    walk(source, "")
    return files


def _unreadable(path: Path, rel: str, reason: str, decision: str = "skipped") -> SourceFile:
    item = SourceFile(rel or ".", path)
    item.skip(reason, decision)
    return item


# ---------------------------------------------------------------- 2. scan

def scan_all(items: list[SourceFile], store: ShardStore, options: BuildOptions, pool) -> dict:
    """Scan every undecided file, reusing stored scans of unchanged files; returns work counts."""
    todo = []
    for item in items:
        if item.decision:
            continue
        try:
            stat = item.path.stat()
            cached = store.get(item.rel)
            if (cached and cached.get("bytes") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns
                    and cached.get("scan_version") == build_work.SCAN_VERSION):
                item.scan = cached
                continue
        except OSError:
            pass  # the scan reports it
        todo.append(item)
    by_rel = {item.rel: item for item in todo}
    state = str(options.out / STATE_DIR)
    for results in run_stage(pool, "scan", build_work.scan_batch, todo,
                             lambda group: (state, [(i.rel, os.fspath(i.path)) for i in group], options.max_pixels),
                             options, cost=lambda item: file_size(item.path)):
        for result in results:
            by_rel[result["rel"]].scan = result
        store.update(r for r in results if "sha256" in r or "bytes" in r)
    return {"reused": sum(1 for item in items if item.scan) - len(todo), "done": len(todo)}


# ---------------------------------------------------------------- 3. filter

def apply_filters(items: list[SourceFile], options: BuildOptions) -> None:
    from aesthetic4k.data.near_duplicates import near_duplicate_groups

    candidates = sorted((item for item in items if not item.decision), key=lambda item: item.rel)
    for item in candidates:
        if item.scan.get("error"):
            item.skip(item.scan["error"])
    by_sha: dict[str, SourceFile] = {}
    for item in candidates:
        if item.decision:
            continue
        first = by_sha.setdefault(item.scan["sha256"], item)
        if first is not item:
            item.skip(f"identical file to {first.rel}", category="identical file")
    for item in candidates:
        if item.decision:
            continue
        width, height = item.scan["width"], item.scan["height"]
        if min(width, height) < options.min_short_side:
            item.skip(f"too small: {width}x{height}, shorter side below --min-short-side {options.min_short_side}",
                      category=f"too small (shorter side below {options.min_short_side})")
    remaining = [item for item in candidates if not item.decision]
    hashes = [int(item.scan["phash"], 16) for item in remaining]
    for group in near_duplicate_groups(hashes, options.dup_threshold):
        members = [remaining[i] for i in group]
        # keep the most pixels, then the largest file, then the first path: independent of scan order
        keeper = min(members, key=lambda m: (-m.scan["width"] * m.scan["height"], -m.scan["bytes"], m.rel))
        keeper_hash = int(keeper.scan["phash"], 16)
        for member in members:
            if member is not keeper:
                distance = bin(int(member.scan["phash"], 16) ^ keeper_hash).count("1")
                member.skip(f"near-duplicate of {keeper.rel} (pHash distance {distance} <= "
                            f"--dup-threshold {options.dup_threshold}; the larger image is kept)",
                            category="near-duplicate")


# ---------------------------------------------------------------- 4. caption

def apply_captions(items: list[SourceFile], journal: Journal, options: BuildOptions) -> str:
    captioner = create_captioner(options.captioner, options.caption)
    key = captioner_key(captioner, options.caption)
    persist = getattr(captioner, "persist", key not in ("sidecar", "none"))  # cheap captioners are re-read
    allows_empty = bool(getattr(captioner, "allows_empty", False))
    todo = sorted((item for item in items if not item.decision), key=lambda item: item.rel)
    bar = Progress(f"caption ({key})", len(todo), options.progress)
    try:
        for item in todo:
            bar.update(1)
            _caption_one(item, captioner, key, persist, allows_empty, journal, options)
    finally:
        bar.close()
    return key


def _caption_one(item: SourceFile, captioner, key: str, persist: bool, allows_empty: bool, journal: Journal,
                 options: BuildOptions) -> None:
    sha = item.scan["sha256"]
    cached = journal.get(sha, key) if persist else None
    if cached:
        text = cached["caption"]
    else:
        try:
            text = clean_caption(captioner.caption(item.path))
        except CaptionRejected as exc:
            item.skip(f"no caption: {exc}")
            return
        except UserError:
            raise
        except Exception as exc:  # a plugin's own failure: stop, keeping what is done
            raise UserError(f"captioner {key} failed on {display_path(item.rel)} ({type(exc).__name__}: {exc}); finished "
                            "captions are saved, re-run to resume") from None
        if persist:
            journal.add({"sha256": sha, "captioner": key, "caption": text, "source": item.rel})
    words = len(text.split())
    if not text and not allows_empty:
        item.skip("empty caption")
    elif words > options.max_caption_words:
        item.skip(f"caption too long ({words} words > --max-caption-words {options.max_caption_words})")
    else:
        item.caption = text


# ---------------------------------------------------------------- 5. split and names

def split_eval(items: list[SourceFile], options: BuildOptions, notes: list) -> None:
    """Draw the eval images, with --seed, from the kept images that fit at least one eval size.

    An image too small for every eval size would be written nowhere if it were drawn, so it
    stays in train; when no kept image fits, the build stops and says which sizes would work.
    """
    kept = sorted((item for item in items if not item.decision), key=lambda item: item.scan["sha256"])
    smallest = min(options.eval_sizes)
    eligible = [item for item in kept if item.short_side >= smallest]
    count = options.eval_count
    if count > 0 and kept and not eligible:
        largest = max(item.short_side for item in kept)
        suggestion = max(64, largest // 64 * 64) if largest >= 64 else largest
        raise UserError(f"no kept image is large enough for an eval set: --eval-sizes "
                        f"{','.join(map(str, options.eval_sizes))} needs a shorter side of at least {smallest}, and "
                        f"the largest kept image's is {largest}; pass --eval-sizes {suggestion} (or --eval-count 0 "
                        "for a train-only dataset)")
    limit = min(len(kept) // 2, len(eligible))
    if count > limit:
        why = (f"only {len(eligible)} of the {len(kept)} kept images have a shorter side >= {smallest} "
               "(the smallest --eval-sizes)" if len(eligible) <= len(kept) // 2
               else f"only {len(kept)} images kept, at least half of them stay in train")
        notes.append(f"--eval-count {options.eval_count} lowered to {limit}: {why}")
        count = limit
    chosen = {id(eligible[i]) for i in random.Random(options.seed).sample(range(len(eligible)), count)} \
        if count > 0 else set()
    for item in kept:
        item.decision = "eval" if id(item) in chosen else "train"
        item.reason = f"seeded split (--seed {options.seed})"


def _safe_stem(name: str) -> str:
    import re

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "image"
    return stem[:100]


def assign_stems(items: list[SourceFile]) -> None:
    """Output stems from source names; names used twice get the first 8 hex digits of the sha256."""
    kept = [item for item in items if item.decision in ("train", "eval")]
    counts: dict[str, int] = {}
    for item in kept:
        base = _safe_stem(item.path.name).lower()
        counts[base] = counts.get(base, 0) + 1
    for item in kept:
        stem = _safe_stem(item.path.name)
        if counts[stem.lower()] > 1:  # case-insensitive: the dataset may land on a case-insensitive disk
            stem = f"{stem}-{item.scan['sha256'][:8]}"
            item.notes.append("renamed: another source file has the same name")
        item.stem = stem


# ---------------------------------------------------------------- the whole build

def _check_options(options: BuildOptions) -> None:
    if not options.source.is_dir():
        raise UserError(f"--source {display_path(options.source)}: no such folder")
    if options.out.resolve() == options.source.resolve():
        raise UserError("--out must differ from --source (the source folder is never modified)")
    if options.min_short_side < 1:
        raise UserError(f"--min-short-side must be positive, got {options.min_short_side}")
    if not 0 <= options.dup_threshold <= 63:
        raise UserError(f"--dup-threshold must be between 0 and 63 bits, got {options.dup_threshold}")
    if options.eval_count < 0:
        raise UserError(f"--eval-count must be >= 0, got {options.eval_count}")
    if options.eval_mode not in ("crop", "keep"):
        raise UserError(f"--eval-mode must be crop or keep, got {options.eval_mode}")
    for name in ("eval_format", "train_format"):
        if getattr(options, name) not in ("png", "jpg"):
            raise UserError(f"--{name.replace('_', '-')} must be png or jpg, got {getattr(options, name)}")
    if not options.eval_sizes or any(size < 1 for size in options.eval_sizes):
        raise UserError(f"--eval-sizes must be positive sizes, got {options.eval_sizes}")
    if options.max_caption_words < 1:
        raise UserError("--max-caption-words must be >= 1")


def build(options: BuildOptions) -> dict:
    """Run the whole pipeline; returns the summary that is also written to ``<out>/build.json``."""
    from aesthetic4k.data import distribute
    from aesthetic4k.data.build_outputs import finish, plan_outputs, remove_temporaries, write_outputs
    from aesthetic4k.data.build_quality import apply_quality

    options.source = Path(options.source).expanduser()
    options.out = Path(options.out).expanduser()
    options.eval_sizes = tuple(sorted(set(int(s) for s in options.eval_sizes)))
    _check_options(options)
    from aesthetic4k_metrics.extras import require

    require("a4k-data build", "data", ("scipy",))      # the near-duplicate groups
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {display_path(options.out)}: cannot create ({exc.strerror or exc})") from None
    state = options.out / STATE_DIR
    notes: list[str] = []
    work: dict = {}
    with BuildLock(state):
        remove_temporaries(options.out)
        stores = {name: ShardStore(state / name, keys) for name, keys in build_work.STAGES.items()}
        captions = Journal(state / "captions.jsonl", ("sha256", "captioner"), durable=True)
        items = find_files(options.source, options.out)
        if not items:
            raise UserError(f"--source {display_path(options.source)}: no files found")
        pool = distribute.create(options.distributor, options.workers, options.ray_address)
        try:
            pool.prepare(glcm=options.min_glcm is not None)
            work["scan"] = scan_all(items, stores["scan"], options, pool)
            apply_filters(items, options)
            work["quality"] = {"done": apply_quality(items, stores["quality"], options, notes, pool)}
            captioner_name = apply_captions(items, captions, options)
            split_eval(items, options, notes)
            assign_stems(items)
            jobs = plan_outputs(items, stores["outputs"], options)
            work["write"] = {"done": write_outputs(jobs, items, stores["outputs"], options, pool)}
        finally:
            captions.close()
            pool.close()
        summary = finish(items, options, captioner_name, notes, pool, work)
        for store in stores.values():
            store.compact()
    return summary
