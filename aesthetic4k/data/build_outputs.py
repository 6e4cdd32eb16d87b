"""The last stage of `a4k-data build`: what each kept image becomes, writing it, and the records.

The driver plans every output (name, encoding, the key that says which settings made it);
workers produce the files that are not already there with the same key; then the driver
writes the metadata.jsonl files, manifest.jsonl (merged from the stages' shards and the
decisions) and build.json, each atomically.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from aesthetic4k.data import build_work
from aesthetic4k.data.build_state import STATE_DIR, ShardStore
from aesthetic4k.data.distribute import RESUME_HINT, file_size, run_stage
from aesthetic4k.data.images import IMAGE_EXTENSIONS, ImageHeader, needs_normalisation
from aesthetic4k.data.metadata import METADATA_NAME, write_metadata
from aesthetic4k.data.paths import json_line
from aesthetic4k_metrics.files import display_path
from aesthetic4k.errors import UserError


def _train_action(item, options) -> dict:
    scan = item.scan
    header = ImageHeader(scan["width"], scan["height"], scan["format"], scan["mode"], scan["orientation"],
                         scan["icc"])
    if needs_normalisation(header):
        suffix = ".jpg" if options.train_format == "jpg" else ".png"
        item.notes.append("train image re-encoded (orientation / colour mode / profile normalised)")
        return {"output": f"train/images/{item.stem}{suffix}", "do": "encode",
                "key": f"{scan['sha256']}|train-{options.train_format}"}
    suffix = ".jpg" if scan["format"] == "JPEG" else ".png"
    return {"output": f"train/images/{item.stem}{suffix}", "do": "link" if options.link else "copy",
            "key": f"{scan['sha256']}|train-copy"}


def _eval_actions(item, options) -> list[dict]:
    suffix = ".jpg" if options.eval_format == "jpg" else ".png"
    actions = []
    for size in options.eval_sizes:
        if item.short_side < size:
            item.notes.append(f"not in eval@{size}: shorter side {item.short_side} < {size} (never upscaled)")
            continue
        actions.append({"output": f"eval/size_{size}/images/{item.stem}{suffix}", "size": size,
                        "do": options.eval_mode,
                        "key": f"{item.scan['sha256']}|eval-{size}-{options.eval_mode}-{options.eval_format}"})
    return actions


def plan_outputs(items: list, store: ShardStore, options) -> list[dict]:
    """Every kept image's outputs (recorded on the item); returns the jobs for outputs not yet written."""
    jobs = []
    for item in sorted((i for i in items if i.decision in ("train", "eval")), key=lambda i: i.stem):
        actions = [_train_action(item, options)] if item.decision == "train" else _eval_actions(item, options)
        item.outputs = [action["output"] for action in actions]
        todo = []
        for action in actions:
            done = store.get(action["output"])
            if not (done and done.get("key") == action["key"] and (options.out / action["output"]).is_file()):
                todo.append(action)
        if todo:
            jobs.append({"rel": item.rel, "source": os.fspath(item.path), "actions": todo})
    return jobs


def write_outputs(jobs: list[dict], items: list, store: ShardStore, options, pool) -> int:
    """Write the planned outputs on the distributor; a source gone bad since the scan is skipped."""
    by_rel = {item.rel: item for item in items}
    state, out = str(options.out / STATE_DIR), str(options.out)
    failures = []
    for results in run_stage(pool, "write", build_work.write_batch, jobs,
                             lambda group: (state, out, group, options.max_pixels), options,
                             name=lambda job: job["rel"], cost=lambda job: file_size(job["source"])):
        for result in results:
            item = by_rel[result["rel"]]
            if "write_error" in result:
                failures.append(result["write_error"])
            elif "error" in result:
                item.skip(f"{result['error']} (found when writing its outputs)")
                item.outputs = []
            store.update(result.get("written", []))
    if failures:
        raise UserError(f"cannot write {display_path(failures[0])}" + (f" (and {len(failures) - 1} more)"
                                                                if len(failures) > 1 else "") + f"; {RESUME_HINT}")
    return len(jobs)


def remove_temporaries(out: Path) -> None:
    """Temporary files left by a build that was killed (atomic writes that never finished)."""
    folders = [out / "train" / "images"] + sorted((out / "eval").glob("size_*/images"))
    folders += sorted(p for p in (out / STATE_DIR).glob("*") if p.is_dir())
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)


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


def manifest_line(item) -> dict:
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


def _settings(options, captioner_name: str, pool) -> dict:
    from dataclasses import asdict

    settings = asdict(options)
    settings["source"] = str(options.source.resolve())
    settings["out"] = str(options.out.resolve())
    settings["eval_sizes"] = list(options.eval_sizes)
    settings["workers"] = pool.workers
    caption = settings.pop("caption")
    settings["captioner"] = captioner_name
    if options.captioner.split(":")[0] == "openai":
        settings["caption_model"] = caption["model"]
        settings["caption_instruction"] = caption["instruction"]
    settings.pop("progress")
    return json.loads(json.dumps(settings, default=display_path))


def finish(items: list, options, captioner_name: str, notes: list, pool, work: dict) -> dict:
    """Metadata files, manifest and build.json for a build whose images are all written."""
    import aesthetic4k
    from aesthetic4k.atomic import write_atomic

    out = options.out
    kept = sorted((item for item in items if item.decision in ("train", "eval")), key=lambda item: item.stem)
    train = [(o.split("/", 1)[1], item.caption or "") for item in kept if item.decision == "train"
             for o in item.outputs]
    evals = {size: [] for size in options.eval_sizes}
    for item in kept:
        for output in item.outputs:
            if output.startswith("eval/"):
                size = int(output.split("/")[1][len("size_"):])
                evals[size].append((output.split("/", 2)[2], item.caption or ""))
    removed = remove_stale(out, {output for item in kept for output in item.outputs})
    if removed:
        notes.append(f"removed {len(removed)} image(s) left by an earlier build with other settings")
    splits = {"train": train, **{f"eval/size_{size}": entries for size, entries in evals.items()}}
    for split, entries in splits.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        if entries:
            write_metadata(out / split / METADATA_NAME, entries)
        else:  # a metadata.jsonl with no entry is not a dataset (a4k-data validate and a4k-eval refuse it)
            (out / split / METADATA_NAME).unlink(missing_ok=True)
            notes.append(f"{split}: no image, so no {METADATA_NAME}")

    ordered = sorted(items, key=lambda item: item.rel)
    write_atomic(out / "manifest.jsonl",
                 lambda handle: handle.writelines(json_line(manifest_line(item)) + "\n" for item in ordered))
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for item in items:
        counts[item.decision] = counts.get(item.decision, 0) + 1
        if item.decision in ("skipped", "ignored"):
            reasons[item.category] = reasons.get(item.category, 0) + 1
    written = {"train": len(train), **{f"eval@{size}": len(entries) for size, entries in evals.items()}}
    summary = {
        "toolkit_version": aesthetic4k.__version__,
        "settings": _settings(options, captioner_name, pool),
        "files": len(items),
        "decisions": dict(sorted(counts.items())),
        "skip_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "splits": {"train": counts.get("train", 0), "eval": counts.get("eval", 0)},
        "written": written,
        "train": len(train),
        "eval": {str(size): len(entries) for size, entries in evals.items()},
        "work": work,
        "notes": notes,
    }
    write_atomic(out / "build.json", lambda handle: handle.write(json.dumps(summary, indent=2) + "\n"))
    return summary
