"""The log of a training run: ``train_log.csv`` (cut back to the resumed step), TensorBoard and the
progress bar, fed one finished step at a time by :class:`StepLog`."""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Optional

from aesthetic4k.atomic import atomic_path
from aesthetic4k.errors import UserError

LOG_NAME = "train_log.csv"


def open_log(out: Path, columns: list, step: int):
    """(handle, csv writer) appending to ``out/train_log.csv``, rows after ``step`` dropped first,
    so a resumed curve continues without duplicates."""
    path = out / LOG_NAME
    rows = []
    if step and path.is_file():
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("step", "").isdigit() and int(r["step"]) <= step]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    handle = open(path, "a", newline="", encoding="utf-8")
    return handle, csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")


def open_tensorboard(out: Path, enabled: Optional[bool], step: int):
    """A SummaryWriter in ``out/tensorboard`` (None when off, or unavailable and not asked for)."""
    if enabled is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        if enabled:
            raise UserError("--tensorboard needs the tensorboard package: pip install 'aesthetic4k[train]'") from None
        return None
    return SummaryWriter(str(out / "tensorboard"), purge_step=step + 1 if step else None)


class StepLog:
    """Where each finished step goes: a ``train_log.csv`` row and TensorBoard scalars (main process
    only) and the progress bar. A resumed run continues its curve from ``step``."""

    def __init__(self, accelerator, out: Path, columns: list, step: int, total: int, tensorboard: Optional[bool],
                 progress: bool):
        from tqdm.auto import tqdm

        self.handle = self.writer = self.board = None
        if accelerator.is_main_process:
            self.handle, self.writer = open_log(out, columns, step)
            self.board = open_tensorboard(out, tensorboard, step)
        self.bar = tqdm(total=total, initial=min(step, total), unit="step",
                        disable=not (progress and accelerator.is_main_process), dynamic_ncols=True)
        self.started = time.perf_counter()

    def record(self, step: int, logged: dict, scalars: dict, images_per_s: float, shown: dict) -> None:
        """``logged`` values as CSV cells (repr: exact floats), ``scalars`` to TensorBoard, ``shown`` on the bar."""
        if self.writer is not None:
            self.writer.writerow({**{k: repr(v) for k, v in logged.items()}, "step": step,
                                  "images_per_s": f"{images_per_s:.4g}",
                                  "elapsed_s": f"{time.perf_counter() - self.started:.3f}"})
            self.handle.flush()
        if self.board is not None:
            for key, value in scalars.items():
                self.board.add_scalar(key, value, step)
        self.bar.update(1)
        self.bar.set_postfix(**shown)

    def close(self) -> None:
        self.bar.close()
        if self.handle is not None:
            self.handle.close()
        if self.board is not None:
            self.board.close()


def say(accelerator, progress: bool, message: str) -> None:
    """A line above the progress bar, from the main process only."""
    if accelerator.is_main_process and progress:
        from tqdm.auto import tqdm

        tqdm.write(message)


def quiet_libraries(progress: bool) -> None:
    """Without our progress bar (``--quiet``), the libraries' own bars (loading and saving shards) go too."""
    if progress:
        return
    import diffusers  # noqa: F401 - imported now, so that their bars are switched off
    import transformers  # noqa: F401

    from aesthetic4k_metrics.network import silence_progress_bars

    silence_progress_bars()
