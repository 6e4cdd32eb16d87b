"""An argument parser that answers a mistyped option with "did you mean ...?"."""
from __future__ import annotations

import argparse
import difflib
import sys


def closest(word: str, choices) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


class SuggestingParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose unknown-option error names the closest known option.

    Unknown options are looked for before parsing, so the hint comes first even when a required
    option is missing because it was mistyped.
    """

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        options = [o for action in self._actions for o in action.option_strings]
        for word in args:
            if word == "--":
                break
            name = word.split("=", 1)[0]
            if not name.startswith("-") or name == "-" or self._negative_number_matcher.match(name):
                continue
            if name in options or (name.startswith("--") and any(o.startswith(name) for o in options)):
                continue
            guess = closest(name, options)
            self.error(f"unrecognized argument {name}" + (f" (did you mean {guess}?)" if guess else ""))
        return super().parse_args(args, namespace)
