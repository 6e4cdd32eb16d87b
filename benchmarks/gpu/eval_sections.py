"""Sections on whole a4k-eval runs: generation through the diffusers path, and two processes against one."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from benchmarks.gpu import assets
from benchmarks.gpu.common import CheckFailed, Context, Outcome, finite, mib, peak_memory, relative, timed
from benchmarks.gpu.metric_sections import clip_weights_option

ROOT = Path(__file__).resolve().parents[2]
ROW_AGREEMENT = 1e-6     # relative, per metric cell: two processes batch the network inputs differently


def _eval_arguments(ctx: Context, metrics: str, size: int, limit: int) -> list:
    p = ctx.profile
    argv = ["--no-progress", "--generator", f"flux:{assets.flux_pipeline(ctx)}", "--dataset", "sample",
            "--limit", str(limit), "--size", str(size), "--steps", str(p.gen_steps), "--device", ctx.device,
            "--metrics", metrics, "--metric-batch-size", str(p.batch)]
    if "clip_score" in metrics:
        argv += ["--clip-model", p.clip_model, "--weights", clip_weights_option(ctx)]
    return argv


def _eval_here(argv: list) -> None:
    """a4k-eval in this process, its report kept off the check's output; a failure is its one line."""
    from aesthetic4k.cli.eval import main

    said = io.StringIO()
    with redirect_stdout(said), redirect_stderr(said):
        status = main([str(a) for a in argv])
    if status != 0:
        lines = [line for line in said.getvalue().splitlines() if line.strip()]
        raise CheckFailed(f"a4k-eval exited with {status}: {lines[-1] if lines else 'no message'}")


def _row(path: Path, size: int) -> dict:
    from aesthetic4k.results import read_rows

    rows = [row for row in read_rows(path)[1] if row.get("size") == str(size)]
    if len(rows) != 1:
        raise CheckFailed(f"{path}: {len(rows)} rows at size {size}, expected 1")
    return rows[0]


def _metric_cells(row: dict, metrics: str) -> dict:
    from aesthetic4k_metrics.registry import METRICS

    return {column: row.get(column, "") for name in metrics.split(",") for column in METRICS[name].columns}


def generation(ctx: Context) -> Outcome:
    from aesthetic4k.generators.base import GeneratorOptions
    from aesthetic4k.generators.registry import create

    p = ctx.profile
    generator = create(f"flux:{assets.flux_pipeline(ctx)}", GeneratorOptions(device=ctx.device, steps=p.gen_steps))
    generator.load().set_progress_bar_config(disable=True)
    seconds, memory = {}, {}
    for size in p.gen_sizes:
        generator.generate([assets.CAPTIONS[0]], size, seed=0)      # warm-up: kernels for this size, allocator
        with peak_memory(ctx) as peak, timed(ctx) as t:
            generator.generate([assets.CAPTIONS[1]], size, seed=0)
        seconds[size], memory[size] = t["s"], peak["peak"]
    generator.release()
    figures, texts, problems = {"steps": p.gen_steps, "sizes": {}}, [], []
    for size in p.gen_sizes:
        images, out = ctx.work / f"generated-{size}", ctx.work / "generation.csv"
        with timed(ctx) as run:
            _eval_here(_eval_arguments(ctx, p.gen_metrics, size, p.gen_images)
                       + ["--images-out", images, "--out", out])
        row = _row(out, size)
        saved = sorted(images.glob("*.jpg"))
        cells = _metric_cells(row, p.gen_metrics)
        figures["sizes"][size] = {"seconds_per_image": seconds[size], "peak_mib": memory[size],
                                  "eval_seconds": run["s"], "saved": len(saved), "row": cells}
        texts.append(f"{size} px {seconds[size]:.2f} s/image" + (f" (peak {mib(memory[size])})" if ctx.cuda else ""))
        if len(saved) != p.gen_images or row.get("n_images") != str(p.gen_images):
            problems.append(f"{size} px: {len(saved)} images saved, {row.get('n_images')} scored, "
                            f"expected {p.gen_images}")
        elif any(_image_size(path) != (size, size) for path in saved):
            problems.append(f"{size} px: a saved image has the wrong size")
        if not finite(*(float(v) if v not in ("", None) else float("nan") for v in cells.values())):
            problems.append(f"{size} px: a metric cell is empty or not finite: {cells}")
    summary = (f"flux pipeline (F16 VAE, {p.gen_steps} steps): " + ", ".join(texts)
               + f"; {p.gen_images} images per size saved and scored ({p.gen_metrics})")
    return Outcome(summary, figures, problems)


def _image_size(path: Path) -> tuple:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_ranks(argv: list, timeout: int) -> float:
    """Run a4k-eval as ranks 0 and 1 of a torchrun-style group; wall seconds."""
    import time

    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "LOCAL_WORLD_SIZE": "2", "PYTHONPATH": path}
    start = time.perf_counter()
    ranks = [subprocess.Popen([sys.executable, "-m", "aesthetic4k.cli.eval", *map(str, argv)], cwd=ROOT,
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in range(2)]
    try:
        errors = [rank.communicate(timeout=timeout)[1] for rank in ranks]
    except subprocess.TimeoutExpired:
        for rank in ranks:
            rank.kill()
            rank.communicate()
        raise CheckFailed(f"the two processes did not finish within {timeout} s") from None
    for number, (rank, error) in enumerate(zip(ranks, errors)):
        if rank.returncode != 0:
            lines = [line for line in error.splitlines() if line.strip()]
            raise CheckFailed(f"rank {number} exited with {rank.returncode}: {lines[-1] if lines else 'no message'}")
    return time.perf_counter() - start


def two_processes(ctx: Context) -> Outcome:
    import torch

    from aesthetic4k.evaluation.ranks import process_group_backend

    p = ctx.profile
    size, metrics = p.two_process_size, p.two_process_metrics
    argv = _eval_arguments(ctx, metrics, size, p.two_process_images)
    backend = process_group_backend(ctx.device, 2, torch.cuda.device_count() if ctx.cuda else 0)
    two_seconds = _two_ranks(argv + ["--images-out", ctx.work / "two-images", "--out", ctx.work / "two.csv"],
                             timeout=p.section_timeout - 60)
    with timed(ctx) as one:
        _eval_here(argv + ["--images-out", ctx.work / "one-images", "--out", ctx.work / "one.csv"])
    two, one_row = _row(ctx.work / "two.csv", size), _row(ctx.work / "one.csv", size)
    two_cells, one_cells = _metric_cells(two, metrics), _metric_cells(one_row, metrics)
    gaps = {column: relative(float(two_cells[column]), float(one_cells[column]))
            for column in one_cells if one_cells[column] not in ("", None) and two_cells[column] not in ("", None)}
    identical = two_cells == one_cells
    largest = max(gaps.values(), default=0.0)
    figures = {"size": size, "images": p.two_process_images, "backend": backend, "two_seconds": two_seconds,
               "one_seconds": one["s"], "two_row": two_cells, "one_row": one_cells, "largest_gap": largest}
    summary = (f"{p.two_process_images} images at {size} px ({metrics}), ranks on {ctx.device} over {backend}: "
               f"{two_seconds:.1f} s for two processes, {one['s']:.1f} s for one; rows "
               + ("identical" if identical else f"differ by at most {largest:.1e} relative"))
    problems = []
    if two.get("n_images") != one_row.get("n_images"):
        problems.append(f"two processes scored {two.get('n_images')} images, one process {one_row.get('n_images')}")
    one_sided = [c for c in one_cells if (one_cells[c] in ("", None)) != (two_cells[c] in ("", None))]
    if one_sided:
        problems.append(f"empty in one row only: {', '.join(one_sided)}")
    if largest > ROW_AGREEMENT:
        worst = max(gaps, key=gaps.get)
        problems.append(f"{worst}: two processes {two_cells[worst]}, one process {one_cells[worst]}")
    return Outcome(summary, figures, problems)
