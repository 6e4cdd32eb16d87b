"""The log of a training run: ``train_log.csv`` (cut back to the resumed step) and TensorBoard."""
from __future__ import annotations

import csv
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
            raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        return None
    return SummaryWriter(str(out / "tensorboard"), purge_step=step + 1 if step else None)


def say(accelerator, progress: bool, message: str) -> None:
    """A line above the progress bar, from the main process only."""
    if accelerator.is_main_process and progress:
        from tqdm.auto import tqdm

        tqdm.write(message)


def quiet_libraries(progress: bool) -> None:
    """Without our progress bar (``--quiet``), the libraries' own bars (loading and saving shards) go too."""
    if progress:
        return
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
