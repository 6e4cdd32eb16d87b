"""The one user cache folder of the toolkit (weights, features, generated images, the sample set)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$A4K_CACHE``, else ``$XDG_CACHE_HOME/aesthetic4k``, else ``~/.cache/aesthetic4k``."""
    if os.environ.get("A4K_CACHE"):
        return Path(os.environ["A4K_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "aesthetic4k"
