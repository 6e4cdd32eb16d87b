"""The part of a training run both trainers share: loading, the step loop with its checkpoint
cadence, and how Ctrl-C and running out of memory end it (one line, the checkpoint to resume)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from aesthetic4k.errors import UserError
from aesthetic4k.training.checkpoints import TrainingInterrupted


def set_up(setup: Callable[[], None], out_of_memory: str) -> None:
    """Run a trainer's ``setup`` (nothing is written yet), turning Ctrl-C and OOM into one line."""
    import torch

    try:
        setup()
    except KeyboardInterrupt:
        raise TrainingInterrupted("interrupted while loading; nothing was written") from None
    except torch.OutOfMemoryError:
        raise UserError(out_of_memory) from None


def run_steps(trainer, result, log, max_steps: int, checkpoint_every: int, num_workers: int,
              step: Callable, out_of_memory: Callable[[int], str]):
    """Call ``step(pool)`` (it advances ``trainer.step`` and logs) until ``max_steps``.

    A checkpoint every ``checkpoint_every`` steps and at the end, also when ``max_steps`` was
    reached before this invocation; ``out_of_memory(step)`` words the OOM message. The trainer
    has ``step``, ``resume_from``, ``save_checkpoint()`` and ``images`` (closed at the end).
    """
    import torch

    last_saved = trainer.step if trainer.resume_from is not None else None
    try:
        with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
            while trainer.step < max_steps:
                step(pool)
                if trainer.step % checkpoint_every == 0 or trainer.step == max_steps:
                    result.checkpoint = trainer.save_checkpoint()
                    last_saved = trainer.step
        if last_saved != trainer.step:
            result.checkpoint = trainer.save_checkpoint()
    except KeyboardInterrupt:
        raise TrainingInterrupted.at(trainer.step, result.checkpoint) from None
    except torch.OutOfMemoryError:
        raise UserError(out_of_memory(trainer.step)) from None
    finally:
        trainer.images.close()
        log.close()
    result.step = trainer.step
    return result
