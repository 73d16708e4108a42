"""Items in parallel: a window of items submitted to an executor, results as they finish.

``job.map(fn, items, workers=8)`` (loop.py drives it) keeps at most ``limit`` items
submitted to a ``concurrent.futures.Executor`` (a thread pool of its own, a
``ProcessPoolExecutor``, or ``dask.distributed.Client(...).get_executor()``) and hands
back each one as it finishes, in completion order. Done callbacks put finished
futures on a queue the driver's thread takes from, so a finished item costs one
callback and one queue read (no waiter over every future in flight, as
``concurrent.futures.wait`` installs).

What is *not* done stays not done: an item whose future was cancelled, or whose
executor broke (a process pool's child killed, a Dask worker lost more often than
Dask retries) runs again at the next run; ``lost(exc)`` tells those errors from the
item's own.
"""

from __future__ import annotations

import queue
from concurrent.futures import CancelledError, Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool
from typing import Any, Callable, Generic, Iterator, Optional, TypeVar

from ..checks import check_count

T = TypeVar("T")

ERRORS = ("raise", "record")
PER_WORKER = 4  # items in flight per worker by default
DEFAULT_LIMIT = 32  # ... and with an executor whose size is not known


def lost(exc: BaseException) -> bool:
    """An executor's failure, not the item's: the item is not done and runs again."""
    return isinstance(exc, (CancelledError, BrokenProcessPool, BrokenThreadPool)) or \
        type(exc).__name__ == "KilledWorker"  # dask.distributed: the task's workers kept dying


def executor_for(workers: Optional[int], executor: Optional[Executor],
                 max_in_flight: Optional[int]) -> "tuple[Executor, bool, int]":
    """(the executor, whether map owns it and shuts it down, the in-flight limit)."""
    if executor is not None and workers is not None:
        raise ValueError("give workers= (a thread pool of that many) or executor=, not both")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must be a concurrent.futures.Executor (ThreadPoolExecutor, "
                        f"ProcessPoolExecutor, dask's client.get_executor()), got {type(executor).__name__}")
    if workers is not None:
        check_count("workers", workers, what="threads running items at once")
    if max_in_flight is not None:
        check_count("max_in_flight", max_in_flight, what="items submitted and not yet finished")
    if executor is None:
        workers = workers or 1
        limit = max_in_flight or PER_WORKER * workers
        return ThreadPoolExecutor(workers, thread_name_prefix="sessionkit-map"), True, limit
    return executor, False, max_in_flight or DEFAULT_LIMIT


class Window(Generic[T]):
    """Items submitted and not yet taken back, at most ``limit`` of them."""

    def __init__(self, executor: Executor, fn: Callable[[T], Any], limit: int) -> None:
        self.executor, self.fn, self.limit = executor, fn, limit
        self.finished: "queue.SimpleQueue[Future[Any]]" = queue.SimpleQueue()
        self.items: dict[Future[Any], tuple[Any, T]] = {}  # future -> (item id, item)

    def __len__(self) -> int:
        return len(self.items)

    def fill(self, source: Iterator[tuple[Any, T]]) -> bool:
        """Submit from ``source`` until the window is full; False once it is exhausted."""
        items, submit, fn, put = self.items, self.executor.submit, self.fn, self.finished.put
        while len(items) < self.limit:
            nxt = next(source, None)
            if nxt is None:
                return False
            future = submit(fn, nxt[1])
            items[future] = nxt
            future.add_done_callback(put)
        return True

    def take(self, timeout: float) -> "Optional[tuple[Any, T, Future[Any]]]":
        """The next finished (item id, item, future), waiting up to ``timeout`` real seconds."""
        try:
            future = self.finished.get(timeout=timeout) if timeout > 0 else self.finished.get_nowait()
        except queue.Empty:
            return None
        ident, item = self.items.pop(future)
        return ident, item, future

    def cancel(self) -> None:
        """Cancel what has not started; what runs is left to finish, and is not done."""
        for future in list(self.items):
            future.cancel()
        self.items.clear()


def failure_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
