"""`a4k-data build`: from a folder of raw photographs to a dataset in the published layout.

Stages (each with a progress bar, each resumable through :mod:`aesthetic4k.data.build_state`):

1. find   every file under --source (symlinks followed, loops detected, the output folder skipped);
2. scan   sha256, header, full decode check (EXIF orientation, colour mode, bomb guard), pHash;
3. filter unreadable files, exact copies, shorter side < --min-short-side, near-duplicates
          (pHash distance <= --dup-threshold, the largest image of a group is kept), and the optional
          quality thresholds (--min-glcm, --min-aesthetics);
4. caption through the chosen captioner (sidecar, openai, none, plugins);
5. split  kept images into eval (--eval-count, seeded) and train;
6. write  train/images, eval/size_<S>/images (shorter side resized to S, center crop), the
          metadata.jsonl files, manifest.jsonl (one line per source file: every decision and its
          reason) and build.json (settings and counts).

Decisions depend only on the files' contents and the options, never on the order files are
found, so a build is reproducible.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from aesthetic4k.atomic import atomic_path
from aesthetic4k.data.build_state import STATE_DIR, BuildLock, Journal
from aesthetic4k.data.captioning import CaptionerOptions, CaptionRejected, captioner_key, clean_caption, create_captioner
from aesthetic4k.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from aesthetic4k.data.metadata import METADATA_NAME, write_metadata
from aesthetic4k.data.phash import DEFAULT_THRESHOLD
from aesthetic4k.data.validation import MAX_CAPTION_WORDS
from aesthetic4k.errors import ImageError, UserError

SCAN_VERSION = 1
HASH_DRAFT = 256     # JPEGs are decoded at >= 256 px for the decode check and the hash: 8-64x faster
QUALITY_SIZE = 2048  # quality metrics see the image as Eval@2048 would (capped at its own short side)


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
    progress: bool = True


@dataclass
class SourceFile:
    rel: str                         # path relative to --source, "/" separated
    path: Path
    decision: str = ""               # train, eval, skipped, ignored
    reason: str = ""
    scan: dict = field(default_factory=dict)
    stem: str = ""
    caption: Optional[str] = None
    scores: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def skip(self, reason: str, decision: str = "skipped") -> None:
        self.decision, self.reason = decision, reason


def _bar(items, desc: str, enabled: bool, total: Optional[int] = None):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="image", total=total, dynamic_ncols=True)


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
                          + " ".join(IMAGE_EXTENSIONS), "ignored")
            files.append(item)

    walk(source, "")
    return files


def _unreadable(path: Path, rel: str, reason: str, decision: str = "skipped") -> SourceFile:
    item = SourceFile(rel or ".", path)
    item.skip(reason, decision)
    return item


# ---------------------------------------------------------------- 2. scan

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_file(path: Path, max_pixels: int) -> dict:
    """Hash, header and decode check of one file; ``error`` set instead when it cannot be used."""
    import numpy as np

    from aesthetic4k.data.images import open_rgb, read_header
    from aesthetic4k.data.phash import phash

    result: dict = {"scan_version": SCAN_VERSION}
    try:
        stat = path.stat()
        result.update(bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)
        header = read_header(path, max_pixels)  # zero-byte, non-image and bomb checks first
        result["sha256"] = _sha256(path)
        image = open_rgb(path, max_pixels, draft_size=HASH_DRAFT)
        result.update(width=header.width, height=header.height, format=header.format, mode=header.mode,
                      orientation=header.orientation, icc=header.icc,
                      phash=format(phash(np.asarray(image)), "016x"))
    except ImageError as exc:
        result["error"] = exc.reason
    except PermissionError:
        result["error"] = "permission denied"
    except OSError as exc:
        result["error"] = f"cannot read ({exc.strerror or exc})"
    return result


def scan_all(items: list[SourceFile], journal: Journal, options: BuildOptions) -> None:
    todo = [item for item in items if not item.decision]
    for item in _bar(todo, "scan", options.progress):
        try:
            stat = item.path.stat()
            cached = journal.get(item.rel)
            if (cached and cached.get("bytes") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns
                    and cached.get("scan_version") == SCAN_VERSION):
                item.scan = cached
                continue
        except OSError:
            pass  # scan_file reports it
        item.scan = {"rel": item.rel, **scan_file(item.path, options.max_pixels)}
        if "sha256" in item.scan or "bytes" in item.scan:  # don't remember errors from unreadable paths
            journal.add(item.scan)


# ---------------------------------------------------------------- 3. filter

def apply_filters(items: list[SourceFile], options: BuildOptions) -> None:
    from aesthetic4k.data.phash import near_duplicate_groups

    candidates = [item for item in items if not item.decision]
    for item in candidates:
        if item.scan.get("error"):
            item.skip(item.scan["error"])
    by_sha: dict[str, SourceFile] = {}
    for item in candidates:
        if item.decision:
            continue
        first = by_sha.setdefault(item.scan["sha256"], item)
        if first is not item:
            item.skip(f"identical file to {first.rel}")
    for item in candidates:
        if item.decision:
            continue
        width, height = item.scan["width"], item.scan["height"]
        if min(width, height) < options.min_short_side:
            item.skip(f"too small: {width}x{height}, shorter side below --min-short-side {options.min_short_side}")
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
                            f"--dup-threshold {options.dup_threshold}; the larger image is kept)")


def _quality_image(item: SourceFile, options: BuildOptions):
    import numpy as np

    from aesthetic4k.data.images import open_rgb, resize_center_crop

    side = min(QUALITY_SIZE, item.scan["width"], item.scan["height"])
    image = open_rgb(item.path, options.max_pixels, draft_size=side)
    return np.asarray(resize_center_crop(image, side))


def _glcm_function():
    try:
        from metrics import glcm_score
    except ImportError as exc:
        raise UserError(f"--min-glcm needs metrics.glcm_score, which this installation lacks ({exc})") from None
    return glcm_score


class _AestheticsScorer:
    """The Aesthetics metric on one image at a time; ``unavailable`` says why when it cannot run."""

    def __init__(self, device: str):
        self.unavailable = ""
        try:
            from metrics import Aesthetics

            self.metric = Aesthetics().to(device)
            self.device = device
        except Exception as exc:  # weights not resolvable, metric not installed, ...
            self.unavailable = f"{type(exc).__name__}: {exc}".splitlines()[0]

    def __call__(self, rgb) -> float:
        import torch

        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].to(self.device)
        self.metric.reset()
        self.metric.update(tensor)
        return float(self.metric.compute())


def apply_quality(items: list[SourceFile], journal: Journal, options: BuildOptions, notes: list) -> None:
    if options.min_glcm is None and options.min_aesthetics is None:
        return
    glcm = _glcm_function() if options.min_glcm is not None else None
    aesthetics = None
    if options.min_aesthetics is not None:
        aesthetics = _AestheticsScorer(options.device)
        if aesthetics.unavailable:
            notes.append(f"aesthetics filter skipped: {aesthetics.unavailable}")
            aesthetics = None
    todo = [item for item in items if not item.decision]
    for item in _bar(todo, "quality", options.progress):
        sha = item.scan["sha256"]
        wanted = {"glcm_score": glcm, "aesthetics": aesthetics}
        scores = {}
        for name, function in wanted.items():
            if function is None:
                continue
            cached = journal.get(sha, name)
            if cached:
                scores[name] = cached["value"]
        missing = [name for name, fn in wanted.items() if fn is not None and name not in scores]
        if missing:
            try:
                rgb = _quality_image(item, options)
            except ImageError as exc:
                item.skip(exc.reason)
                continue
            for name in missing:
                scores[name] = float(wanted[name](rgb))
                journal.add({"sha256": sha, "metric": name, "value": scores[name]})
        item.scores = scores
        if glcm is not None and scores["glcm_score"] < options.min_glcm:
            item.skip(f"GLCM Score {scores['glcm_score']:.4f} below --min-glcm {options.min_glcm}")
        elif aesthetics is not None and scores["aesthetics"] < options.min_aesthetics:
            item.skip(f"Aesthetics {scores['aesthetics']:.3f} below --min-aesthetics {options.min_aesthetics}")


# ---------------------------------------------------------------- 4. caption

def apply_captions(items: list[SourceFile], journal: Journal, options: BuildOptions) -> str:
    captioner = create_captioner(options.captioner, options.caption)
    key = captioner_key(captioner, options.caption)
    persist = getattr(captioner, "persist", key not in ("sidecar", "none"))  # cheap captioners are re-read
    allows_empty = bool(getattr(captioner, "allows_empty", False))
    todo = [item for item in items if not item.decision]
    for item in _bar(todo, f"caption ({key})", options.progress):
        sha = item.scan["sha256"]
        cached = journal.get(sha, key) if persist else None
        if cached:
            text = cached["caption"]
        else:
            try:
                text = clean_caption(captioner.caption(item.path))
            except CaptionRejected as exc:
                item.skip(f"no caption: {exc}")
                continue
            except UserError:
                raise
            except Exception as exc:  # a plugin's own failure: stop, keeping what is done
                raise UserError(f"captioner {key} failed on {item.rel} ({type(exc).__name__}: {exc}); finished "
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
    return key


# ---------------------------------------------------------------- 5. split and names

def split_eval(items: list[SourceFile], options: BuildOptions, notes: list) -> None:
    kept = sorted((item for item in items if not item.decision), key=lambda item: item.scan["sha256"])
    count = options.eval_count
    if kept and count > len(kept) // 2:
        count = len(kept) // 2
        notes.append(f"--eval-count {options.eval_count} lowered to {count}: only {len(kept)} images kept, "
                     "at least half of them stay in train")
    chosen = set(random.Random(options.seed).sample(range(len(kept)), count)) if count > 0 else set()
    for index, item in enumerate(kept):
        item.decision = "eval" if index in chosen else "train"
        item.reason = f"seeded split (--seed {options.seed})"


def _safe_stem(name: str) -> str:
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


# ---------------------------------------------------------------- 6. write

def _output_key(item: SourceFile, kind: str) -> str:
    return f"{item.scan['sha256']}|{kind}"


def _write_output(target: Path, item: SourceFile, kind: str, produce, journal: Journal) -> None:
    """Create ``target`` unless the journal says this exact output is already there."""
    done = journal.get(str(target))
    if done and done.get("key") == _output_key(item, kind) and target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    produce(target)
    journal.add({"output": str(target), "key": _output_key(item, kind)})


def _copy_atomic(source: Path, target: Path, link: bool) -> None:
    with atomic_path(target) as tmp:
        if link:
            try:
                os.link(source, tmp)
                return
            except OSError:
                pass
        shutil.copyfile(source, tmp)


def write_train(items: list[SourceFile], out: Path, journal: Journal, options: BuildOptions) -> list:
    from aesthetic4k.data.images import ImageHeader, needs_normalisation, open_rgb, save_atomic

    entries = []
    train = sorted((item for item in items if item.decision == "train"), key=lambda item: item.stem)
    for item in _bar(train, "write train", options.progress):
        scan = item.scan
        header = ImageHeader(scan["width"], scan["height"], scan["format"], scan["mode"], scan["orientation"],
                             scan["icc"])
        if needs_normalisation(header):
            suffix = ".jpg" if options.train_format == "jpg" else ".png"
            name = f"images/{item.stem}{suffix}"
            _write_output(out / "train" / name, item, f"train-{options.train_format}",
                          lambda target: save_atomic(open_rgb(item.path, options.max_pixels), target), journal)
            item.notes.append("train image re-encoded (orientation / colour mode / profile normalised)")
        else:
            suffix = ".jpg" if scan["format"] == "JPEG" else ".png"
            name = f"images/{item.stem}{suffix}"
            _write_output(out / "train" / name, item, "train-copy",
                          lambda target: _copy_atomic(item.path, target, options.link), journal)
        item.outputs.append(f"train/{name}")
        entries.append((name, item.caption or ""))
    return entries


def write_eval(items: list[SourceFile], out: Path, journal: Journal, options: BuildOptions) -> dict:
    from aesthetic4k.data.images import open_rgb, resize_center_crop, save_atomic

    suffix = ".jpg" if options.eval_format == "jpg" else ".png"
    entries: dict[int, list] = {size: [] for size in options.eval_sizes}
    chosen = sorted((item for item in items if item.decision == "eval"), key=lambda item: item.stem)
    for item in _bar(chosen, "write eval", options.progress):
        decoded = {}

        def image():
            if "rgb" not in decoded:
                decoded["rgb"] = open_rgb(item.path, options.max_pixels)
            return decoded["rgb"]

        for size in options.eval_sizes:
            short = min(item.scan["width"], item.scan["height"])
            if short < size:
                item.notes.append(f"not in eval@{size}: shorter side {short} < {size} (never upscaled)")
                continue
            name = f"images/{item.stem}{suffix}"
            target = out / "eval" / f"size_{size}" / name
            if options.eval_mode == "crop":
                produce = (lambda t, s=size: save_atomic(resize_center_crop(image(), s), t))
            else:
                produce = (lambda t: save_atomic(image(), t))
            _write_output(target, item, f"eval-{size}-{options.eval_mode}-{options.eval_format}", produce, journal)
            item.outputs.append(f"eval/size_{size}/{name}")
            entries[size].append((name, item.caption or ""))
    return entries


def remove_stale(out: Path, expected: set[str]) -> list[str]:
    """Delete image files a previous build wrote that this build no longer lists (other splits/settings)."""
    removed = []
    folders = [out / "train" / "images"] + sorted((out / "eval").glob("size_*/images"))
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            rel = path.relative_to(out).as_posix()
            if path.is_file() and rel not in expected and path.suffix.lower() in IMAGE_EXTENSIONS:
                path.unlink()
                removed.append(rel)
    return removed


def _manifest_line(item: SourceFile) -> dict:
    scan = item.scan
    line = {"source": item.rel, "decision": item.decision, "reason": item.reason}
    for key in ("sha256", "bytes", "width", "height", "format", "mode", "orientation", "icc"):
        if key in scan:
            line[key] = scan[key]
    if item.stem:
        line["stem"] = item.stem
    if item.caption is not None:
        line["caption"] = item.caption
    if item.scores:
        line["scores"] = item.scores
    if item.outputs:
        line["outputs"] = item.outputs
    if item.notes:
        line["notes"] = item.notes
    return line


def _check_options(options: BuildOptions) -> None:
    if not options.source.is_dir():
        raise UserError(f"--source {options.source}: no such folder")
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


def _settings(options: BuildOptions, captioner_name: str) -> dict:
    settings = asdict(options)
    settings["source"] = str(options.source.resolve())
    settings["out"] = str(options.out.resolve())
    settings["eval_sizes"] = list(options.eval_sizes)
    caption = settings.pop("caption")
    settings["captioner"] = captioner_name
    if options.captioner.split(":")[0] == "openai":
        settings["caption_model"] = caption["model"]
        settings["caption_instruction"] = caption["instruction"]
    settings.pop("progress")
    return settings


def build(options: BuildOptions) -> dict:
    """Run the whole pipeline; returns the summary that is also written to ``<out>/build.json``."""
    import aesthetic4k
    from aesthetic4k.atomic import write_atomic

    options.source = Path(options.source).expanduser()
    options.out = Path(options.out).expanduser()
    options.eval_sizes = tuple(sorted(set(int(s) for s in options.eval_sizes)))
    _check_options(options)
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {options.out}: cannot create ({exc.strerror or exc})") from None
    state = options.out / STATE_DIR
    notes: list[str] = []
    with BuildLock(state):
        journals = {name: Journal(state / f"{name}.jsonl", keys, durable=(name == "captions"))
                    for name, keys in [("scan", ("rel",)), ("quality", ("sha256", "metric")),
                                       ("captions", ("sha256", "captioner")), ("outputs", ("output",))]}
        try:
            items = find_files(options.source, options.out)
            if not items:
                raise UserError(f"--source {options.source}: no files found")
            scan_all(items, journals["scan"], options)
            apply_filters(items, options)
            apply_quality(items, journals["quality"], options, notes)
            captioner_name = apply_captions(items, journals["captions"], options)
            split_eval(items, options, notes)
            assign_stems(items)
            train_entries = write_train(items, options.out, journals["outputs"], options)
            eval_entries = write_eval(items, options.out, journals["outputs"], options)
        finally:
            for journal in journals.values():
                journal.close()

        expected = {output for item in items for output in item.outputs}
        removed = remove_stale(options.out, expected)
        if removed:
            notes.append(f"removed {len(removed)} image(s) left by an earlier build with other settings")
        (options.out / "train").mkdir(exist_ok=True)
        write_metadata(options.out / "train" / METADATA_NAME, train_entries)
        for size, entries in eval_entries.items():
            (options.out / "eval" / f"size_{size}").mkdir(parents=True, exist_ok=True)
            write_metadata(options.out / "eval" / f"size_{size}" / METADATA_NAME, entries)

        lines = [_manifest_line(item) for item in sorted(items, key=lambda item: item.rel)]

        def write_manifest(handle):
            for line in lines:
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")

        write_atomic(options.out / "manifest.jsonl", write_manifest)
        counts: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for item in items:
            counts[item.decision] = counts.get(item.decision, 0) + 1
            if item.decision in ("skipped", "ignored"):
                category = item.reason.split(":")[0].split(" (")[0]
                reasons[category] = reasons.get(category, 0) + 1
        summary = {
            "toolkit_version": aesthetic4k.__version__,
            "settings": _settings(options, captioner_name),
            "files": len(items),
            "decisions": dict(sorted(counts.items())),
            "skip_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "train": len(train_entries),
            "eval": {str(size): len(entries) for size, entries in eval_entries.items()},
            "notes": notes,
        }
        write_atomic(options.out / "build.json", lambda handle: handle.write(json.dumps(summary, indent=2) + "\n"))
    return summary
