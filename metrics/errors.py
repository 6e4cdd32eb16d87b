"""The exceptions of the toolkit, defined here so that ``aesthetic4k_metrics`` depends on nothing else.

``UserError`` is bad input or a missing resource: its message is complete and is shown as is,
in one line, without a traceback (the command-line tools exit with status 2). It is a
``ValueError`` (and ``ImageError``, ``WeightUnavailable``, ``MetricUnavailable`` are ``UserError``s),
so library users catch the library's refusals as they catch any bad value. ``aesthetic4k``
raises the same classes.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input or a missing resource: the message is shown to the user as is.

    A ``ValueError``, so that a library user catches every misuse the library reports with
    ``except ValueError`` (the command-line tools catch this class: one line, exit status 2).
    """


class InputTypeError(UserError, TypeError):
    """An input of a kind or dtype a metric does not take: caught by ``except TypeError`` as well as
    by ``except ValueError`` (every refusal of the library)."""


class ImageError(UserError):
    """An image file that cannot be used (corrupt, truncated, too small, too large, not an image)."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class WeightUnavailable(UserError):
    """No source provides a weight file; the message says what is missing and how to provide it."""


class MetricUnavailable(UserError):
    """A metric cannot run here (weights or a package missing); a run reports it and goes on.

    ``short`` is the few words a results row records ("no weights"); the message says how to fix it.
    """

    def __init__(self, message: str, short: str = "unavailable"):
        super().__init__(message)
        self.short = short

    @classmethod
    def of(cls, exc: BaseException) -> "MetricUnavailable":
        """The unavailability a loading failure means: missing weights, a missing package, or a bad file."""
        if isinstance(exc, MetricUnavailable):
            return exc
        if isinstance(exc, WeightUnavailable):
            return cls(str(exc), "no weights")
        if isinstance(exc, ImportError):
            return cls(f"a package is missing ({first_line(exc)})", "missing package")
        return cls(str(exc), "cannot load weights")


def first_line(exc: BaseException, limit: int | None = None, typed: bool = False) -> str:
    """The first line of an exception's message (its type name when it has none): for one-line reports.

    ``limit``: cut longer lines (libraries' messages run to paragraphs); ``typed``: prefixed by the type name.
    """
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0].strip()
    if limit is not None and len(line) > limit:
        line = line[:limit].rstrip() + "..."
    return f"{type(exc).__name__}: {line}" if typed else line


def did_you_mean(word: str, choices) -> str:
    """ "; did you mean X?" for a near miss among ``choices``, else an empty string."""
    import difflib

    word, choices = str(word), [str(c) for c in choices]
    close = [c for c in choices if word and c.startswith(word)] or \
        difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def is_out_of_memory(exc: BaseException) -> bool:
    """Host or device out of memory (torch's OutOfMemoryError recognised without importing torch)."""
    import sys

    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return isinstance(exc, MemoryError) or (oom is not None and isinstance(exc, oom))
