"""What a build has already done, kept in ``<out>/.a4k-build/`` so an interrupted build resumes.

Per-image work (scan, quality scores, written outputs) is recorded in a :class:`ShardStore`: a
folder of JSON-lines shards, each written whole (temporary file + rename) by whoever did the
work, a local worker process or a Ray task on another machine, so finished work survives even
when the driver dies. Driver-side work that costs money (captions) goes to a :class:`Journal`
that appends and syncs one line per item. A re-run reads both back and skips what is done.
A lock file stops two builds from writing the same folder at the same time.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from aesthetic4k.atomic import atomic_path
from aesthetic4k.data.paths import json_line
from aesthetic4k.errors import UserError
from aesthetic4k_metrics.json_text import JSONProblem, parse

STATE_DIR = ".a4k-build"


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON-object line of ``path`` (missing file: none)."""
    if not path.is_file():
        return []
    items = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            try:
                item = parse(raw)
            except JSONProblem:
                continue  # a line cut short by an interruption (or damaged): its work is done again
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
        self._handle.write(json_line(item) + "\n")
        self._handle.flush()
        if self.durable:
            os.fsync(self._handle.fileno())
        self.items[self.key(item)] = item

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def write_shard(folder: Path, records: list[dict]) -> None:
    """Add ``records`` to a stage's store as one new shard, atomically; safe from any process or host.

    Shard names start with the time, so reading them in name order replays them in order.
    """
    if not records:
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.jsonl"
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.writelines(json_line(record) + "\n" for record in records)


class ShardStore:
    """The finished items of one stage: every shard in ``folder``, keyed by ``key_fields``, last wins."""

    def __init__(self, folder: Path, key_fields: tuple[str, ...]):
        self.folder = Path(folder)
        self.key_fields = key_fields
        self.shards = sorted(p for p in self.folder.glob("*.jsonl")) if self.folder.is_dir() else []
        self.items: dict[tuple, dict] = {}
        for shard in self.shards:
            self.update(read_jsonl(shard))

    def key(self, item: dict) -> tuple:
        return tuple(item.get(field) for field in self.key_fields)

    def get(self, *key):
        return self.items.get(tuple(key))

    def update(self, records) -> None:
        """Remember records a worker has already written (the driver's in-memory view)."""
        for record in records:
            self.items[self.key(record)] = record

    def compact(self) -> None:
        """Replace every shard by one holding the current items (keeps re-runs fast at a million images)."""
        present = sorted(p for p in self.folder.glob("*.jsonl")) if self.folder.is_dir() else []
        if len(present) <= 1:
            return
        write_shard(self.folder, list(self.items.values()))
        for shard in present:
            shard.unlink(missing_ok=True)
        self.shards = sorted(self.folder.glob("*.jsonl"))


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
