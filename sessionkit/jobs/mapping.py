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

When a map stops early (a handover, SIGTERM, pause, cancel, a failed write, an item's
error with ``errors="raise"``) it submits nothing more and waits for the items in
flight, ``drain_seconds`` real seconds in all. What finishes in that time is handed
back (fenced: not handed back, the new holder runs it). A map closed by its caller (a
``break``, an error in the loop's body, a ``Primary`` stopped by SIGTERM while the loop
was suspended) waits for what runs within the same bound, hands nothing back, and
counts none of it done. What is still running after that is *abandoned*: not done, announced (a warning and a ``job.items_abandoned`` event
with their ids), and left to finish on its worker, whose result nobody takes. An
abandoned item may therefore still be running when the next run (a backup that took
over, once the lease is released) submits it again: ``fn`` runs at least once per item,
and at most twice at a time for an item abandoned this way (docs/parallel.md).
"""

from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import CancelledError, Executor, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, TypeVar

from ..errors import DuplicateKey, LeaseLost
from ..validate import check_count
from .doneset import Ranges
from .loop import TICK_SECONDS, Run

T = TypeVar("T")
log = logging.getLogger("sessionkit.jobs")

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

    def cancel(self, wait_until: float) -> "list[Any]":
        """Cancel what has not started and wait for what runs until ``wait_until`` (on
        ``time.monotonic``); none of it is done. The ids of those still running then
        (abandoned)."""
        running = [future for future in self.items if not future.cancel()]
        left = wait_until - time.monotonic()
        if running and left > 0:
            running = list(wait(running, timeout=left).not_done)
        ids = [self.items[future][0] for future in running]
        self.items.clear()
        return ids


def failure_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def map_items(run: Run, fn: Callable[[T], Any], iterable: Iterable[T], key: Optional[Callable[[T], str]],
              window: "Window[T]", owned: bool, errors: str, retry_failed: bool,
              drain_seconds: float) -> Iterator[tuple[T, Any]]:
    """``job.map``: items not done (nor failed before, unless ``retry_failed``) go to
    ``window``'s executor; ``(item, result)`` come back as they finish. An item is done
    when the caller asks for the next. When the loop must stop (handover, pause, cancel,
    a failed write, an item's error), no more are submitted; those in flight are waited
    for up to ``drain_seconds`` in all and handed back (not when fenced), the rest are
    abandoned and not done (module docstring); then the error, if any, is raised."""
    job = run.job
    fresh, positions = run.fresh_keys, run.fresh_positions
    n, finished = 0, False
    first_error: Optional[BaseException] = None
    hand_back = True  # False once fenced: what finishes is not done (the new holder runs it)
    stopping, drain_until = False, 0.0
    check_at: Optional[int] = 1

    def stop(error: Optional[BaseException] = None) -> None:
        nonlocal stopping, drain_until, first_error, hand_back
        if error is not None and first_error is None:
            first_error = error
        if isinstance(error, LeaseLost):
            hand_back = False
        if not stopping:
            stopping, drain_until = True, time.monotonic() + drain_seconds

    def visit(counter: int) -> None:
        """The slow path; what it raises (fenced, a failed write) stops the map, drained."""
        nonlocal check_at
        run.n, run.in_flight = n, len(window)
        try:
            check_at = run.slow(n, counter)
        except Exception as exc:  # raised once the items in flight are drained
            stop(exc)
            return
        if check_at is None:
            stop()

    try:
        begun = run.start()
        if begun is None:
            return
        failed_before = begun.failed
        source = _not_done(iterable, key, begun.done_keys, begun.done_ranges,
                           set() if retry_failed else set(failed_before), run)
        more = True
        while True:
            if more and not stopping:
                more = window.fill(source)
            if not window:
                finished = not more and not stopping
                break
            if stopping:
                left = drain_until - time.monotonic()
                got = window.take(left) if left > 0 else None
                if got is None:
                    break  # what is still in flight is abandoned: not done, it runs again next time
            else:
                got = window.take(TICK_SECONDS)
                if got is None:
                    visit(n + run.failed_now)
                    continue
            ident, item, future = got
            exc = future.exception()
            if exc is not None:
                if lost(exc) or errors == "raise":
                    stop(exc)  # settle what is in flight, then raise
                    continue
                job.record_failed(ident, exc)
                run.failed_now += 1
                if not stopping and check_at is not None and n + run.failed_now >= check_at:
                    visit(n + run.failed_now)  # failures too reach the slow path
                continue
            if not hand_back:
                continue
            yield item, future.result()
            if key is not None:
                fresh.append(ident)
            else:
                positions.append(ident)
            if ident in failed_before:
                job.record_retried(ident)
            n += 1
            if not stopping and check_at is not None and n + run.failed_now >= check_at:
                visit(n + run.failed_now)
        if first_error is not None:
            raise first_error
    finally:
        # left early (closed, an error raised by the caller's body or ours): what runs is waited
        # for too, within the same bound, so it does not overlap the next holder; not done
        abandoned = window.cancel(drain_until if stopping else time.monotonic() + drain_seconds)
        run.in_flight = 0
        if owned:
            window.executor.shutdown(wait=False, cancel_futures=True)
        if abandoned:
            job.abandoned(abandoned, drain_seconds)
        run.n = n
        run.close_positions()
        run.end(finished and first_error is None)


def _not_done(iterable: Iterable[T], key: Optional[Callable[[T], str]], done_keys: "set[str]",
              done_ranges: Ranges, failed: "set[Any]", run: Run) -> Iterator[tuple[Any, T]]:
    """(item id, item) for each item not done and not failed before: its key, or its
    position. Counts what it skips in ``run.skipped``; a key seen twice is an error."""
    seen: set[str] = set()
    for pos, item in enumerate(iterable):
        if key is None:
            ident: Any = pos
            skip = pos in done_ranges
        else:
            ident = key(item)
            if ident.__class__ is not str:
                raise TypeError(f"job {run.job.id!r}: key(item) must return a str; for {item!r} it "
                                f"returned {ident!r} ({type(ident).__name__}). Nothing was run for it.")
            if ident in seen:
                raise DuplicateKey(run.job.id, ident, item)
            seen.add(ident)
            skip = ident in done_keys
        if skip or ident in failed:
            run.skipped += 1
            continue
        yield ident, item
