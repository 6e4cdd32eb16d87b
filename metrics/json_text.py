"""Parsing JSON the toolkit did not write itself (or that a user could hand it) without surprises.

Python's ``json`` accepts ``NaN`` and ``Infinity``, turns ``1e999`` into infinity, and raises
``RecursionError`` (not a ``ValueError``) on a value nested thousands of levels deep. Metadata
lines, results ``settings`` cells, run reports, markers, statistics files and server replies
all go through :func:`parse`, which refuses each of these with :class:`JSONProblem`: a
``ValueError`` whose message is a few words and whose ``line`` is the line of the text it is
about (None when unknown). Nothing the toolkit writes nests deeper than a few levels.
"""
from __future__ import annotations

import json
import math

MAX_DEPTH = 64               # arrays and objects inside each other
MAX_INTEGER_DIGITS = 40      # any integer the toolkit stores fits in 64 bits (20 digits)


class JSONProblem(ValueError):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


def _constant(name: str):
    raise JSONProblem(f"{name} is not a JSON value")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONProblem(f"number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JSONProblem(f"integer of {len(text.lstrip('-'))} digits is too large")
    return int(text)


def _depth(value) -> int:
    """How deep arrays and objects nest in ``value`` (iterative: no recursion limit to meet)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse(text: str):
    """The JSON value in ``text``; JSONProblem for malformed JSON, NaN/Infinity, numbers out of range,
    integers over 40 digits, or nesting deeper than 64 levels."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except JSONProblem:
        raise
    except json.JSONDecodeError as exc:
        raise JSONProblem(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise JSONProblem(f"nested too deeply (more than {MAX_DEPTH} levels of arrays or objects)") from None
    except ValueError as exc:        # e.g. Python's own limit on digits in an integer
        raise JSONProblem(f"not usable JSON ({exc})") from None
    if _depth(value) > MAX_DEPTH:
        raise JSONProblem(f"nested too deeply (more than {MAX_DEPTH} levels of arrays or objects)")
    return value
