"""Reading the small JSON files the toolkit writes (markers, run reports) with one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

from aesthetic4k.errors import UserError


def read_json_object(path, what: str, expected: str = "a JSON object") -> dict:
    """The JSON object in ``path``; an unreadable file or another JSON value is a UserError naming ``what``."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected {expected}")
    return value
