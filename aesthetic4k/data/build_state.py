"""What a build has already done, kept in ``<out>/.a4k-build/`` so an interrupted build resumes.

Each stage appends one JSON line per finished item and flushes it at once; a re-run reads the
lines back and skips those items. A line cut short by a crash is ignored (that one item is
redone). A lock file stops two builds from writing the same folder at the same time.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from aesthetic4k.errors import UserError

STATE_DIR = ".a4k-build"


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON-object line of ``path`` (missing file: none)."""
    if not path.is_file():
        return []
    items = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            try:
                item = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption
            if isinstance(item, dict):
                items.append(item)
    return items


class Journal:
    """Append-only jsonl of finished items, keyed by ``key_fields``; the last line for a key wins."""

    def __init__(self, path: Path, key_fields: tuple[str, ...], durable: bool = False):
        self.path = path
        self.key_fields = key_fields
        self.durable = durable  # fsync each line: for work that costs money or minutes (captions)
        self.items = {self.key(item): item for item in read_jsonl(path)}
        self._handle = None

    def key(self, item: dict) -> tuple:
        return tuple(item.get(field) for field in self.key_fields)

    def get(self, *key):
        return self.items.get(tuple(key))

    def add(self, item: dict) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        self._handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        self._handle.flush()
        if self.durable:
            os.fsync(self._handle.fileno())
        self.items[self.key(item)] = item

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BuildLock:
    """``<state>/lock`` holding the pid of the build that owns the output folder."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _pid_alive(pid):
                    raise UserError(f"{self.path.parent.parent}: another build (pid {pid}) is writing this folder; "
                                    f"wait for it or remove {self.path} if it is gone") from None
                self.path.unlink(missing_ok=True)  # left by a build that was killed
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return self
        raise UserError(f"cannot take the build lock {self.path}")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)
        return False
