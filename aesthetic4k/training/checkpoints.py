"""Checkpoint folders of a training run: written whole or not at all, found again to resume.

A run's ``output_dir`` holds ``checkpoint-<step>/`` folders (six-digit steps, so names sort by
step), a ``latest`` file naming the newest, and ``train_log.csv``. Each checkpoint has a
``training_state/`` folder (accelerate's state of models, optimizers and RNGs, the run's
settings in ``config.json``, and ``progress_<rank>.pt`` per process: step, data position, the
process's random generator) next to whatever the trainer exports for use (a pipeline, a VAE).

A checkpoint is written as ``.checkpoint-<step>.tmp`` and renamed when complete; re-saving the
same step swaps the folders, so an interrupted save never leaves a half checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

from aesthetic4k.atomic import write_text
from aesthetic4k.errors import UserError

STATE_DIR = "training_state"
LATEST_NAME = "latest"
SETTINGS_NAME = "config.json"


class TrainingInterrupted(UserError):
    """Ctrl-C or a termination signal: the message says which checkpoint to resume from."""

    @classmethod
    def at(cls, step: int, checkpoint) -> "TrainingInterrupted":
        where = f"; continue from {checkpoint} with --resume" if checkpoint else ""
        return cls(f"interrupted at step {step}{where}")


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step:06d}"


def find_checkpoint(output_dir, resume: str) -> Path:
    """``resume`` is a checkpoint folder, or ``latest`` (the newest in ``output_dir``)."""
    if resume != "latest":
        folder = Path(resume).expanduser()
        if not (folder / STATE_DIR).is_dir():
            raise UserError(f"--resume {resume}: not a training checkpoint (no {STATE_DIR}/ inside)")
        return folder
    out = Path(output_dir).expanduser()
    pointer = out / LATEST_NAME
    if pointer.is_file():
        folder = out / pointer.read_text(encoding="utf-8").strip()
        if (folder / STATE_DIR).is_dir():
            return folder
    found = sorted(p for p in out.glob("checkpoint-*") if (p / STATE_DIR).is_dir())
    if not found:
        raise UserError(f"--resume: no checkpoint in {out}; start without --resume")
    return found[-1]


def write_checkpoint(accelerator, out: Path, step: int, fill: Callable[[Path], None],
                     keep: int | None = None) -> Path:
    """Write ``checkpoint-<step>`` under a temporary name with ``fill(folder)``, then rename it into place.

    Every process calls this (and ``fill``, which may gather weights); only the main process
    creates, renames and prunes folders.
    """
    name = checkpoint_name(step)
    final, tmp = out / name, out / f".{name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        fill(tmp)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if final.exists():  # the same step saved again: swap, then drop the old one
                old = out / f".{name}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            write_text(out / LATEST_NAME, name + "\n")
            prune(out, keep)
    except BaseException:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    return final


def prune(out: Path, keep: int | None) -> None:
    """Keep only the newest ``keep`` checkpoint folders (all when ``keep`` is None or 0)."""
    if not keep:
        return
    found = sorted(p for p in out.glob("checkpoint-*") if p.is_dir())
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def save_settings(folder: Path, settings: dict) -> None:
    (folder / STATE_DIR / SETTINGS_NAME).write_text(json.dumps(settings, indent=2), encoding="utf-8")


def check_resume_settings(folder: Path, current: dict, keys: Iterable[str], num_processes: int,
                          aliases: dict | None = None) -> dict:
    """The settings a checkpoint was trained with, after checking those a resumed run must share.

    ``aliases`` maps a key to the name older checkpoints saved it under.
    """
    from aesthetic4k.json_files import read_json_object

    saved = read_json_object(folder / STATE_DIR / SETTINGS_NAME, "checkpoint settings")
    for key in keys:
        old_name = (aliases or {}).get(key)
        value = saved.get(key, saved.get(old_name) if old_name else None)
        if value != current.get(key):
            raise UserError(f"--resume {folder}: it was trained with {key}={value!r}, "
                            f"this run has {current.get(key)!r}; use the same setting")
    if saved.get("num_processes") != num_processes:
        raise UserError(f"--resume {folder}: it was trained on {saved.get('num_processes')} process(es), "
                        f"this run has {num_processes}; launch with the same number")
    return saved


def save_progress(folder: Path, rank: int, progress: dict) -> None:
    """Per-process progress (step, data position, random generator state) beside accelerate's state."""
    import torch

    torch.save(progress, folder / STATE_DIR / f"progress_{rank}.pt")


def load_progress(folder: Path, rank: int) -> dict:
    import torch

    return torch.load(folder / STATE_DIR / f"progress_{rank}.pt", weights_only=True)


@contextmanager
def state_dict_replaced(module, state: dict):
    """While inside, ``module.state_dict()`` returns ``state``: ``save_pretrained`` then writes those
    weights (merged LoRA, an EMA) from the live module, without a second copy of the model."""
    module.state_dict = lambda *args, **kwargs: state
    try:
        yield module
    finally:
        if "state_dict" in module.__dict__:
            del module.state_dict
