"""How many threads the metrics use, and an ordered thread map.

Decoding (OpenCV, Pillow), resizing (torch) and the GLCM kernel release the interpreter lock,
so threads run them in parallel without a worker process's start-up or pickling.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), not all the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def ordered_map(function, items, workers: int | None = None) -> list:
    """``[function(item) for item in items]`` on ``workers`` threads (default: usable CPUs), in input order."""
    items = list(items)
    workers = usable_cpus() if workers is None else max(1, int(workers))
    if workers == 1 or len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(function, items))


def ordered_stream(function, items, workers: int | None = None, ahead: int = 1, thread_name: str = "a4k"):
    """Yield ``function(item)`` for ``items`` in input order, computed on ``workers`` threads at most
    ``ahead`` items ahead of the consumer: the consumer's own work (a network on the previous
    batch) overlaps with them, and results wait in memory only as far as ``ahead``. ``items`` may be
    a lazy iterator: it is read only as far as the work in flight (images stream, never all held)."""
    workers = usable_cpus() if workers is None else max(1, int(workers))
    if hasattr(items, "__len__"):
        workers = min(workers, max(1, len(items)))
    if workers == 1:
        yield from (function(item) for item in items)
        return
    ahead = max(int(ahead), workers)
    with ThreadPoolExecutor(workers, thread_name_prefix=thread_name) as pool:
        pending = deque()
        try:
            for item in items:
                if len(pending) >= ahead:
                    yield pending.popleft().result()
                pending.append(pool.submit(function, item))
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:     # on an error or an early stop, start nothing more
                future.cancel()
