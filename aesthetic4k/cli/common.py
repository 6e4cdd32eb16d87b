"""What every command-line tool shares: one-line errors, exit codes, interruption, its parser."""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2, ``--help`` named) and "did you mean" for options.

    Unknown options are looked for before parsing, so the hint comes first even when a required
    option is reported missing because it was mistyped.
    """

    def parse_args(self, args=None, namespace=None):
        from aesthetic4k_metrics.errors import did_you_mean

        args = sys.argv[1:] if args is None else [str(a) for a in args]
        options = self._all_options()
        for word in args:
            if word == "--":
                break
            name = word.split("=", 1)[0]
            if not name.startswith("--") or name in options or any(o.startswith(name) for o in options
                                                                   if self.allow_abbrev):
                continue
            self.error(f"unrecognized argument {name}{did_you_mean(name, options)}")
        return super().parse_args(args, namespace)

    def _all_options(self) -> list:
        """Option names of this parser and of its sub-commands' parsers (checked before parsing)."""
        options = []
        for action in self._actions:
            options += action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    options += [o for a in sub._actions for o in a.option_strings if o not in options]
        return options

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# The library names its settings as keyword arguments (its messages name no flag); the commands say
# the flag instead. One table, applied to every library message a command prints.
_LIBRARY_TERMS = [
    (re.compile(r"weights=\{'([^']+)': PATH\}"), r"--weights \1=PATH"),
    (re.compile(r"allow_download=True"), "--allow-download"),
    (re.compile(r"device='([^']*)'"), r"--device \1"),
    (re.compile(r"\(max_pixels\)"), "(--max-pixels)"),
    (re.compile(r"cr_mode='(\w+)'"), r"--cr-mode \1"),
    (re.compile(r"\((protocol|size|patch_count|patch_seed)\); save the statistics again"),
     lambda m: f"(--{'fid-protocol' if m[1] == 'protocol' else m[1].replace('_', '-')}); save the statistics again"),
    (re.compile(r"\(ReferenceStats\.save writes one\)"), "(write one with a4k-eval --save-reference-stats)"),
    (re.compile(r"with patch_fid or patch_kid among the metrics"), "with --metrics including patch_fid or patch_kid"),
    (re.compile(r"^the metric list is empty"), "--metrics is empty"),
]


def in_command_terms(message: str) -> str:
    """A library message with its keyword arguments named as the commands' flags."""
    for pattern, flag in _LIBRARY_TERMS:
        message = pattern.sub(flag, message)
    return message


def run_main(prog: str, body, interrupted_hint: str = "") -> int:
    """Call ``body()``; turn known failures into one line on stderr and an exit status.

    0 success (or what ``body`` returns), 2 bad input (UserError) or a write the storage refused,
    130 interrupted. Set A4K_DEBUG=1 to see tracebacks of unexpected errors.
    """
    from aesthetic4k_metrics.errors import UserError, first_line, is_out_of_memory

    try:
        status = body()
        return 0 if status is None else int(status)
    except UserError as exc:
        print(f"{prog}: error: {in_command_terms(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted{'; ' + interrupted_hint if interrupted_hint else ''}", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{prog}: error: out of memory; try a smaller --batch-size or fewer --workers", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - last resort: keep the one-line contract
        if os.environ.get("A4K_DEBUG"):
            raise
        if is_out_of_memory(exc):
            print(f"{prog}: error: the device ran out of memory; try --batch-size 1, --offload, "
                  "or the F16 VAE (--vae f16)", file=sys.stderr)
            return 2
        refused = storage_failure(exc) if isinstance(exc, OSError) else None
        if refused:             # a full disk, a quota, a read-only mount: bad circumstances, not a bug
            print(f"{prog}: error: {refused}", file=sys.stderr)
            return 2
        print(f"{prog}: internal error: {type(exc).__name__}: {first_line(exc)} (A4K_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


# what a full disk, a quota, a read-only mount or missing permission look like from a write
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}


def storage_failure(exc: OSError):
    """One line for a write the storage refused, wherever it happened (None for other OSErrors):
    the places the toolkit knows name their file themselves; this is the net under the others."""
    if exc.errno not in STORAGE_ERRNOS:
        return None
    where = f" {os.fsdecode(exc.filename)}" if exc.filename else ""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied:{where or ' a file could not be opened'} ({exc.strerror})"
    return f"cannot write{where}: {exc.strerror}; work finished so far is kept"


def run_trainer(prog: str, train) -> int:
    """A training command, ``train()`` returning its result: SIGTERM (a scheduler's stop) ends the run like Ctrl-C, at a step boundary
    with no half-written checkpoint (exit 130, the message names the checkpoint to resume from);
    other failures are one line (:func:`run_main`). Prints where the run ended."""
    import signal

    from aesthetic4k.training.checkpoints import TrainingInterrupted

    def terminate(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (embedded use)
        pass

    def body() -> int:
        try:
            result = train()
        except TrainingInterrupted as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 130
        skipped = f", {len(result.skipped)} image(s) skipped" if result.skipped else ""
        print(f"{prog}: step {result.step}; checkpoint {result.checkpoint}{skipped}")
        return 0

    return run_main(prog, body)


def parse_assignments(values, flag: str) -> dict:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}``, rejecting malformed items."""
    from aesthetic4k.errors import UserError

    out = {}
    for value in values or []:
        for part in value.split(","):
            key, sep, val = part.partition("=")
            if not sep or not key.strip() or not val.strip():
                raise UserError(f"{flag} expects NAME=VALUE, got {part!r}")
            out[key.strip()] = val.strip()
    return out


def finite_number(text: str) -> float:
    """An argparse type: a float that is neither NaN nor infinite (those would reach settings and JSON)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def byte_size(text: str) -> int:
    """``50G``, ``500M``, ``1.5T``, ``64GiB`` or a plain number of bytes (K, M, G, T are powers of 1024)."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", text, re.IGNORECASE)
    if not match or float(match[1]) * UNITS[match[2].upper()] < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 50G, 500M or 1.5T, got {text!r}")
    return int(float(match[1]) * UNITS[match[2].upper()])


def add_run_options(parser: argparse.ArgumentParser, checkpoint_every: int):
    """The options both trainers share (checkpoints, resuming, bad images, decoding threads, device,
    logs, streaming); returns the "run" group for a trainer's own additions."""
    run = parser.add_argument_group("run")
    run.add_argument("--checkpoint-every", type=int, default=checkpoint_every,
                     help=f"steps between checkpoints (default {checkpoint_every})")
    run.add_argument("--keep-checkpoints", type=int, default=None, help="keep only the newest N checkpoints")
    run.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                     help="continue from a checkpoint folder, or from the newest in --output-dir when no folder given")
    run.add_argument("--on-bad-image", choices=["skip", "stop"], default="skip",
                     help="missing or corrupt training image: skip it with a logged reason (default) or stop")
    run.add_argument("--num-workers", type=int, default=4, help="image decoding threads (default 4)")
    run.add_argument("--device", default=None, help="cpu to force the CPU (default: accelerate's choice)")
    board = run.add_mutually_exclusive_group()
    board.add_argument("--tensorboard", dest="tensorboard", action="store_true", default=None,
                       help="write TensorBoard logs (default: when tensorboard is installed)")
    board.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_stream_options(parser)
    return run


def add_stream_options(parser: argparse.ArgumentParser) -> None:
    """The trainers' options for streaming ``--data`` through a bounded local cache."""
    group = parser.add_argument_group("streaming (a training set larger than the local disk)")
    group.add_argument("--stream", action="store_true",
                       help="stream --data instead of reading local files: aesthetic-4k, aesthetic-train-v2, a hub "
                            "dataset owner/name (train/metadata.jsonl layout) or a folder in that layout (a network "
                            "mount); images are fetched when their turn comes into a bounded cache")
    group.add_argument("--stream-cache", default=None, metavar="DIR",
                       help="where streamed images are cached (default $A4K_CACHE/stream, i.e. "
                            "~/.cache/aesthetic4k/stream); several processes may share it")
    group.add_argument("--stream-cache-limit", type=byte_size, default=50 * 2**30, metavar="SIZE",
                       help="most bytes the cache holds, least recently used images dropped first, e.g. 200G "
                            "(default 50G; K, M, G, T are powers of 1024)")
    group.add_argument("--stream-prefetch", type=int, default=8, metavar="N",
                       help="streamed images fetched ahead of the batch being decoded (default 8)")
