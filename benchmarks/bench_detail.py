"""Fine-detail metrics (GLCM Score, Compression Ratio) on real pictures, against the upstream loop.

Everything is measured in the same run, on photographs and digital art from Debian's wallpaper
packages (benchmarks/wallpapers.py: sets of 2048 x 2048 and 4096 x 4096 JPEG q95 crops):

1. Whole processes, wall time: the upstream loop (benchmarks/upstream_eval.py: cv2.imread,
   OpenCV grey // 4, scikit-image per 64 x 64 patch, CR from file sizes), ``a4k-eval --generator
   folder --metrics glcm_score,compression_ratio --cr-mode file``, and a plain script calling
   ``measure_files`` (benchmarks/detail_script.py). The upstream loop is timed on a subset of the
   64-image 4096 set and scaled (its start-up, timed on an empty folder, counted once).
2. In one process, per image, decoding included: the scikit-image loop (timed on some patch
   rows, scaled to the image) against ``measure_image`` on one thread and ``measure_files`` on
   every usable core.
3. Start-up: import times and the wall time of a new process that scores one image.
4. How the parallel work is spread: threads (what ``measure_files`` uses) against warm forked
   workers, same images.

Environment: ``A4K_BENCH_OUT`` (default bench-out/), ``A4K_BENCH_REPEATS`` (whole-process runs
of the short cases, best kept; default 3), ``A4K_BENCH_UPSTREAM_4096`` (images of the 4096 set
the upstream loop is timed on; default 2).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REPEATS = int(os.environ.get("A4K_BENCH_REPEATS", "3"))
UPSTREAM_4096 = int(os.environ.get("A4K_BENCH_UPSTREAM_4096", "2"))


class Timed(float):
    """Wall seconds of a process run, with the CPU seconds (user + system) it used as ``cpu``."""

    cpu = 0.0

    def __str__(self) -> str:
        return f"{float(self):.2f} ({self.cpu:.1f} cpu)"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process(args: list, repeats: int = 1) -> tuple[Timed, dict | None]:
    """Best wall time of a command run as a new process (with its CPU time), and its last JSON line."""
    best, out = Timed("inf"), None
    for _ in range(repeats):
        cpu = _children_cpu()
        start = time.perf_counter()
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
        elapsed = Timed(time.perf_counter() - start)
        elapsed.cpu = _children_cpu() - cpu
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args[:4]))} ... failed: {done.stderr.strip()[-400:]}")
        best = min(best, elapsed)
        lines = done.stdout.strip().splitlines()
        try:
            out = json.loads(lines[-1]) if lines else None
        except ValueError:
            out = None
    return best, out


def _a4k_eval() -> list:
    script = Path(sys.executable).parent / "a4k-eval"
    return [str(script)] if script.exists() else [sys.executable, "-m", "aesthetic4k.cli.eval"]


def _subset(folder: Path, count: int) -> Path:
    """A folder holding the first ``count`` images of ``folder`` (hard links, or copies)."""
    target = folder.parent / f"{folder.name}-first{count}"
    if len(list(target.glob("*.jpg"))) != count:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for path in sorted(folder.glob("*.jpg"))[:count]:
            try:
                os.link(path, target / path.name)
            except OSError:
                shutil.copy(path, target / path.name)
    return target


def _read_csv_row(path: Path) -> dict:
    import csv

    with open(path, newline="") as file:
        return next(csv.DictReader(file))


def whole_process(sets: dict, out_dir: Path) -> None:
    upstream = [sys.executable, "-m", "benchmarks.upstream_eval"]
    script = [sys.executable, "-m", "benchmarks.detail_script"]
    empty = out_dir / "empty"
    empty.mkdir(exist_ok=True)
    startup, _ = _process([*upstream, str(empty), "2048"], REPEATS)
    print(f"\nWhole process, wall seconds (CPU seconds of the process), same run; upstream loop start-up "
          f"alone: {startup}")
    print("| work | upstream loop | a4k-eval | measure_files script | a4k-eval speed-up | script speed-up "
          "| script speed-up in CPU time |")
    print("|---|---|---|---|---|---|---|")
    cases = [("1 image @2048", sets["one"], 2048, REPEATS, None),
             ("8 images @2048", sets["eight"], 2048, 1, None),
             ("64 images @4096", sets["big"], 4096, 1, UPSTREAM_4096)]
    for label, folder, size, repeats, timed_on in cases:
        n = len(list(folder.glob("*.jpg")))
        if timed_on and timed_on < n:
            part, up = _process([*upstream, str(_subset(folder, timed_on)), str(size)], repeats)
            up_time = Timed(startup + (part - startup) * n / timed_on)
            up_time.cpu = startup.cpu + (part.cpu - startup.cpu) * n / timed_on
            note = f" (upstream timed on {timed_on}, scaled)"
        else:
            up_time, up = _process([*upstream, str(folder), str(size)], repeats)
            note = ""
        csv_path = out_dir / f"a4k-{size}-{n}.csv"
        csv_path.unlink(missing_ok=True)
        a4k_time, _ = _process([*_a4k_eval(), "--generator", "folder", "--images", str(folder), "--metrics",
                                "glcm_score,compression_ratio", "--cr-mode", "file", "--out", str(csv_path)], repeats)
        script_time, ours = _process([*script, str(folder)], repeats)
        row = _read_csv_row(csv_path)
        print(f"| {label}{note} | {up_time} | {a4k_time} | {script_time} | {up_time / a4k_time:.1f}x | "
              f"{up_time / script_time:.1f}x | {up_time.cpu / script_time.cpu:.1f}x |")
        if not timed_on or timed_on >= n:
            same = (abs(float(row["glcm_score"]) - up["glcm_score"]), abs(ours["glcm_score"] - up["glcm_score"]),
                    abs(float(row["compression_ratio"]) - up["compression_ratio"]))
            print(f"|  same numbers? | GLCM {up['glcm_score']:.6f} | GLCM diff {same[0]:.1e}, CR diff {same[2]:.1e} "
                  f"| GLCM diff {same[1]:.1e} | | | |")


def in_process(sets: dict, workers: int) -> None:
    import cv2

    from aesthetic4k_metrics.detail import measure_files, measure_image
    from aesthetic4k_metrics.glcm import glcm_patch_scores
    from tests.glcm_reference import reference_patches

    print(f"\nIn one process, per image, decoding included (scikit-image timed on some patch rows, scaled); "
          f"{workers} usable cores")
    print("| images | scikit-image loop | ours, 1 thread | ours, all cores | speed-up 1 thread | speed-up all cores |"
          " speed-up 1 thread, CPU time | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for label, folder, rows in (("8 @2048", sets["eight"], 4), ("4 @4096", _subset(sets["big"], 4), 2)):
        paths = sorted(folder.glob("*.jpg"))
        reference, reference_cpu, worst = 0.0, 0.0, 0.0
        for path in paths:
            start, cpu = time.perf_counter(), time.process_time()
            grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
            decode, decode_cpu = time.perf_counter() - start, time.process_time() - cpu
            start, cpu = time.perf_counter(), time.process_time()
            part = reference_patches(grey, rows=rows)
            scale = (grey.shape[0] // 64) / rows
            reference += decode + (time.perf_counter() - start) * scale
            reference_cpu += decode_cpu + (time.process_time() - cpu) * scale
            worst = max(worst, float(np.abs(glcm_patch_scores(grey)[:rows] - part).max()))
        start, cpu = time.perf_counter(), time.process_time()
        for path in paths:
            measure_image(path, jpeg_mode=None)
        single, single_cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        list(measure_files(paths, jpeg_mode=None, workers=workers))
        threaded = time.perf_counter() - start
        n = len(paths)
        print(f"| {label} | {reference / n:.3f} s | {single / n * 1000:.0f} ms | {threaded / n * 1000:.0f} ms | "
              f"{reference / single:.0f}x | {reference / threaded:.0f}x | {reference_cpu / single_cpu:.0f}x | "
              f"{worst:.1e} |")


def _fork_measure(path):
    from aesthetic4k_metrics.detail import measure_image

    return measure_image(path, jpeg_mode="jpeg95").glcm_score


def parallelism(sets: dict, workers: int) -> None:
    import multiprocessing

    from aesthetic4k_metrics.detail import measure_files

    paths = sorted(sets["eight"].glob("*.jpg")) * 2
    timings = {}
    for name, run in (
            ("inline (workers=1)", lambda: list(measure_files(paths, workers=1))),
            (f"threads (workers={workers})", lambda: list(measure_files(paths, workers=workers))),
            (f"warm forked processes ({workers})",
             lambda: multiprocessing.get_context("fork").Pool(workers).map(_fork_measure, paths, chunksize=1))):
        start = time.perf_counter()
        run()
        timings[name] = time.perf_counter() - start
    print(f"\nSpreading the work: {len(paths)} images @2048, GLCM + JPEG q95 re-encode, images per second")
    print("| " + " | ".join(timings) + " |")
    print("|" + "---|" * len(timings))
    print("| " + " | ".join(f"{len(paths) / t:.1f}" for t in timings.values()) + " |")


def start_up(sets: dict) -> None:
    image = str(sorted(sets["one"].glob("*.jpg"))[0])
    timer = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    rows = [("interpreter alone (python -c pass)", _process([sys.executable, "-c", "pass"], REPEATS)[0])]
    for module in ("aesthetic4k_metrics", "aesthetic4k.cli.eval"):
        best = min(float(subprocess.run([sys.executable, "-c", timer.format(module)], cwd=REPO, capture_output=True,
                                        text=True).stdout) for _ in range(REPEATS))
        rows.append((f"import {module} (in-process)", best))
    load = ("import time; t = time.perf_counter(); import numpy as np; "
            "from aesthetic4k_metrics import glcm_kernels, native_kernels; "
            "k = native_kernels.load(glcm_kernels, prefer='{}'); glcm_kernels.self_test(k); "
            "print(time.perf_counter() - t)")
    for prefer, label in (("native", "machine code from its cache file"), ("numba", "numba's own on-disk cache")):
        best = min(float(subprocess.run([sys.executable, "-c", load.format(prefer)], cwd=REPO, capture_output=True,
                                        text=True).stdout) for _ in range(REPEATS))
        rows.append((f"GLCM kernels ready in a new process: {label} (in-process)", best))
    first = ("import sys; from aesthetic4k_metrics.detail import measure_files; "
             "print(next(measure_files([sys.argv[1]], jpeg_mode='file')).glcm_score)")
    rows.append(("new process, first image scored (whole process)",
                 _process([sys.executable, "-c", first, image], REPEATS)[0]))
    print("\nStart-up, seconds (best of %d)" % REPEATS)
    print("| what | seconds |\n|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} |")


def properties(sets: dict) -> None:
    import cv2

    from aesthetic4k_metrics.glcm import PROPERTIES, glcm_patch_properties
    from tests.glcm_reference import reference_patches

    path = sorted(sets["eight"].glob("*.jpg"))[0]
    grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
    rows = 2
    start = time.perf_counter()
    reference = [reference_patches(grey, prop, rows=rows) for prop in PROPERTIES]
    reference_time = (time.perf_counter() - start) * (grey.shape[0] // 64) / rows
    start = time.perf_counter()
    ours = [glcm_patch_properties(grey, prop) for prop in PROPERTIES]
    ours_time = time.perf_counter() - start
    worst = max(float(np.abs(o[:rows] - r).max()) for o, r in zip(ours, reference))
    print(f"\nClassic GLCM properties, all six on one 2048 image: scikit-image {reference_time:.1f} s "
          f"(timed on {rows} patch rows, scaled), ours {ours_time:.2f} s, {reference_time / ours_time:.0f}x; "
          f"max abs diff {worst:.1e}")


def run() -> None:
    from benchmarks.wallpapers import PACKAGES, Unavailable, square_set
    from aesthetic4k_metrics.detail import usable_cpus
    from aesthetic4k_metrics.glcm import kernels

    try:
        sets = {"one": square_set(2048, 1, 1600), "eight": square_set(2048, 8, 1600),
                "big": square_set(4096, 64, 2000)}
    except Unavailable as exc:
        print(f"fine-detail benchmark skipped: real images unavailable ({exc})")
        return
    out_dir = sets["one"].parent.parent / "runs"
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = usable_cpus()
    loaded = kernels()
    print(f"Fine-detail metrics on real pictures (Debian {' and '.join(PACKAGES)});"
          f" {workers} usable cores; GLCM kernels: {loaded.source} {loaded.reason}".rstrip())
    whole_process(sets, out_dir)
    in_process(sets, workers)
    start_up(sets)
    parallelism(sets, workers)
    properties(sets)


if __name__ == "__main__":
    run()
