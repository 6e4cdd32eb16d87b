"""Where the per-image work of a build runs: in this process, in local worker processes, or on Ray.

A distributor maps a function over batches and yields ``(batch index, result)`` as batches
finish, in any order; the build sorts everything it receives, so the dataset it writes does not
depend on which distributor ran or how many workers it had.

Local workers are forked from a fork server that loaded the image libraries and, for a build
with the GLCM filter, compiled the kernel once (choice measured against threads and plain
processes in docs/dataset.md): they start in milliseconds and none pays numba's compile again.
Workers take one core each and ignore Ctrl-C (the build stops them); a worker that dies stops
the build with a one-line message naming the images it was working on.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator, Optional, Sequence

from aesthetic4k.errors import UserError

DISTRIBUTORS = ("local", "ray")
MAX_BATCH = 64        # images per task: large enough to hide task overhead, small enough to lose little
RESUME_HINT = "finished work is kept: re-run the same command to resume"
WARM_GLCM = "A4K_BUILD_WARM_GLCM"


def default_workers() -> int:
    from aesthetic4k_metrics.parallel import usable_cpus

    return usable_cpus()


def _worker_init() -> None:
    from aesthetic4k.data.build_work import worker_setup

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the build process handles Ctrl-C and stops the workers

    def stop(signum, frame):
        raise SystemExit(1)  # unwinds, so half-written temporary files are removed

    signal.signal(signal.SIGTERM, stop)
    worker_setup()


class InProcess:
    """Everything in the build's own process, one batch after another (``--workers 1``)."""

    name = "local"

    def __init__(self):
        self.workers = 1

    def prepare(self, glcm: bool) -> None:
        if glcm:
            from aesthetic4k.data.build_work import warm_up_glcm

            warm_up_glcm()

    def map(self, function: Callable, batches: Sequence[tuple], labels: Sequence[str]) -> Iterator:
        for index, arguments in enumerate(batches):
            yield index, function(*arguments)

    def close(self) -> None:
        pass


def _top_up(pending: dict, queue: Iterator, limit: int, submit: Callable) -> None:
    """Submit ``(index, arguments)`` from ``queue`` until ``limit`` tasks are pending (task -> index):
    a small queue per worker, not the whole list."""
    while len(pending) < limit:
        nxt = next(queue, None)
        if nxt is None:
            return
        index, arguments = nxt
        pending[submit(arguments)] = index


class ProcessPool:
    """``workers`` local processes (``--workers N``, default one per core), forked from a fork server.

    The fork server is a fresh process started once, which imports the image libraries (and,
    for a build with the GLCM filter, compiles the kernel) before forking the workers; the
    build's own process may hold thread pools (OpenCV, OpenMP) that do not survive a fork.
    """

    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self.executor: Optional[ProcessPoolExecutor] = None

    def prepare(self, glcm: bool) -> None:
        """Before any worker starts: have the fork server load what every worker needs, once."""
        if self.context.get_start_method() != "forkserver":
            return
        if glcm:
            os.environ[WARM_GLCM] = "1"  # read by the preload module, in the fork server only
        self.context.set_forkserver_preload(["aesthetic4k.data.build_preload"])

    def _start(self) -> ProcessPoolExecutor:
        if self.executor is None:
            self.executor = ProcessPoolExecutor(self.workers, mp_context=self.context, initializer=_worker_init)
        return self.executor

    def map(self, function: Callable, batches: Sequence[tuple], labels: Sequence[str]) -> Iterator:
        executor = self._start()
        pending: dict = {}
        queue = iter(enumerate(batches))
        try:
            while True:
                _top_up(pending, queue, 2 * self.workers, lambda arguments: executor.submit(function, *arguments))
                if not pending:
                    return
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=pending.get):
                    result = future.result()  # a dead worker: BrokenProcessPool, the batch still pending
                    yield pending.pop(future), result
        except BrokenProcessPool:
            busy = ", ".join(labels[i] for i in sorted(pending.values())[:3])
            self.close(kill=True)
            raise UserError(f"a build worker process died (killed, or out of memory) while working on {busy}; "
                            f"{RESUME_HINT} (with fewer --workers if memory is short)") from None
        except BaseException:
            self.close(kill=True)
            raise

    def close(self, kill: bool = False) -> None:
        executor, self.executor = self.executor, None
        if executor is None:
            return
        if kill:
            for process in list(getattr(executor, "_processes", {}).values()):
                if process.is_alive():
                    process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


class RayDistributor:
    """Ray tasks on a local Ray instance (started here, ``workers`` CPUs) or on a running cluster.

    Every node must see the source and output folders at the same paths (a shared file system)
    and have the same aesthetic4k installed.
    """

    name = "ray"

    def __init__(self, workers: int, address: Optional[str] = None):
        try:
            import ray
        except ImportError:
            raise UserError("--distributor ray needs Ray: pip install 'aesthetic4k[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            settings = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            try:
                if address:
                    ray.init(address=address, **settings)
                else:
                    ray.init(num_cpus=workers, **settings)
            except Exception as exc:  # no cluster at that address, port in use, ...
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise UserError(f"cannot start or reach {where}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        self.workers = max(1, int(ray.cluster_resources().get("CPU", workers)))

    def prepare(self, glcm: bool) -> None:
        pass  # each Ray worker process loads (or compiles) the kernel on first use

    def map(self, function: Callable, batches: Sequence[tuple], labels: Sequence[str]) -> Iterator:
        ray = self.ray
        remote = ray.remote(num_cpus=1, max_retries=1)(_ray_run)
        pending: dict = {}
        queue = iter(enumerate(batches))
        try:
            while True:
                _top_up(pending, queue, 2 * self.workers, lambda arguments: remote.remote(function, *arguments))
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index = pending.pop(ref)
                    yield index, self._get(ref, labels[index])
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            # cancelling is asynchronous: wait until the killed tasks are gone, so that none of them
            # is still writing (or leaves a temporary file) when a re-run cleans up and starts
            if pending:
                ray.wait(list(pending), num_returns=len(pending), timeout=30)
            raise

    def _get(self, ref, label: str):
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, UserError):
                raise UserError(str(cause)) from None
            raise UserError(f"a Ray task failed on {label}: {type(cause).__name__}: "
                            f"{str(cause).splitlines()[0] if str(cause) else ''}; {RESUME_HINT}") from None
        except ray.exceptions.RayError as exc:  # a worker or node died, an object was lost
            raise UserError(f"a Ray worker was lost while working on {label} ({type(exc).__name__}); "
                            f"{RESUME_HINT}") from None

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()


def _ray_run(function: Callable, *arguments):
    """One batch in a Ray worker, set up as a local worker would be (one core each)."""
    from aesthetic4k.data.build_work import worker_setup

    worker_setup()
    return function(*arguments)


def create(kind: str, workers: Optional[int], address: Optional[str] = None):
    """The distributor for ``--distributor`` / ``--workers`` / ``--ray-address``."""
    if kind not in DISTRIBUTORS:
        raise UserError(f"--distributor must be one of {', '.join(DISTRIBUTORS)}, got {kind!r}")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if address and kind != "ray":
        raise UserError("--ray-address needs --distributor ray")
    count = workers or default_workers()
    if kind == "ray":
        return RayDistributor(count, address)
    return InProcess() if count == 1 else ProcessPool(count)


class Progress:
    """A tqdm bar, or nothing with --quiet."""

    def __init__(self, desc: str, total: int, enabled: bool):
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(desc=desc, total=total, unit="image", dynamic_ncols=True)

    def update(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def file_size(path) -> int:
    """Bytes of a file, 0 when it cannot be read (a cost estimate for :func:`run_stage`)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def batches_of(todo: list, workers: int) -> list[list]:
    """Batches small enough that every worker gets about 16 (images differ in cost: a re-encoded PNG
    takes 50x a copied JPEG, so the last batches must be short), at most MAX_BATCH images."""
    size = max(1, min(MAX_BATCH, len(todo) // (16 * workers)))
    return [todo[start:start + size] for start in range(0, len(todo), size)]


def run_stage(pool, desc: str, function, todo: list, arguments, options, name=lambda item: item.rel, cost=None):
    """Run ``function(*arguments(batch))`` over batches of ``todo``; yields each batch's results.

    With ``cost`` (an item's expected work, e.g. its pixels), the costliest items are handed out
    first, so the stage does not end with one worker busy on a large image while the others
    idle. Results do not depend on the order: every stage's records are sorted afterwards.
    """
    if cost is not None and pool.workers > 1:
        todo = sorted(todo, key=cost, reverse=True)
    groups = batches_of(todo, pool.workers)
    from aesthetic4k_metrics.files import display_path

    labels = [display_path(name(group[0])) + (f" (+{len(group) - 1} more)" if len(group) > 1 else "") for group in groups]
    bar = Progress(desc, len(todo), options.progress)
    try:
        for index, results in pool.map(function, [arguments(group) for group in groups], labels):
            bar.update(len(groups[index]))
            yield results
    finally:
        bar.close()
