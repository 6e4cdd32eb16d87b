"""Reading JSON files and cells (markers, run reports, settings) with one-line errors.

The text is parsed by :func:`aesthetic4k_metrics.json_text.parse` (no NaN, no numbers out of
range, no nesting a reader cannot walk); a file is opened only when it is a regular file, and a
UTF-8 byte-order mark at its start is accepted.
"""
from __future__ import annotations

from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k_metrics.json_text import JSONProblem, parse


def parse_json(text: str, where: str, what: str):
    """The JSON value of ``text``; a UserError ``"<where>: <what> ..."`` (with the line) when it is not usable."""
    try:
        return parse(text)
    except JSONProblem as exc:
        raise UserError(f"{where}: {what} is {exc.message}" if exc.message.startswith("not ")
                        else f"{where}: {what}: {exc.message}") from None


def read_json_object(path, what: str, expected: str = "a JSON object") -> dict:
    """The JSON object in ``path``; an unreadable file or another JSON value is a UserError naming ``what``."""
    from aesthetic4k_metrics.file_kinds import read_text

    path = Path(path)
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: unreadable {what} ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        value = parse(text)
    except JSONProblem as exc:
        raise UserError(f"{path}: unreadable {what}: {exc.message}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected {expected}")
    return value
