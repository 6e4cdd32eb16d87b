"""What every command-line tool shares: one-line errors, exit codes, interruption, its parser."""
from __future__ import annotations

import argparse
import os
import sys


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2, ``--help`` named, a "did you mean" for options)."""

    def error(self, message):
        from metrics.errors import did_you_mean

        if message.startswith("unrecognized arguments:"):
            first = message.split(":", 1)[1].split()[0]
            options = [o for action in self._actions for o in action.option_strings]
            message += did_you_mean(first.split("=")[0], options)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def run_main(prog: str, body, interrupted_hint: str = "") -> int:
    """Call ``body()``; turn known failures into one line on stderr and an exit status.

    0 success (or what ``body`` returns), 2 bad input (UserError), 130 interrupted. Set
    A4K_DEBUG=1 to see tracebacks of unexpected errors.
    """
    from metrics.errors import UserError, first_line, is_out_of_memory

    try:
        status = body()
        return 0 if status is None else int(status)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
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
        print(f"{prog}: internal error: {type(exc).__name__}: {first_line(exc)} (A4K_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


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
