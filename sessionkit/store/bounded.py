"""Waiting at most a given time for a store's answer.

A Drive request can hang for its client's whole timeout times its retries
(minutes); a lease must stop waiting long before its renew deadline. Store
clients cannot all be interrupted, so ``BoundedCaller`` runs each request on a
worker thread and stops *waiting* after ``seconds``: the caller gets
``StoreTimeout`` and carries on, the request may still land later (writers use
compare-and-swap, so a late landing is recognised or refused). The worker is kept
between requests, so a store that keeps a connection per thread (Drive's
httplib2) reuses it; a worker left behind by a hung request is replaced.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Optional, TypeVar

from ..errors import StoreTimeout

T = TypeVar("T")
IDLE_SECONDS = 30.0  # a worker with nothing to do for this long ends


class _Call:
    __slots__ = ("fn", "args", "kwargs", "done", "value", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.value: Any = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # handed to the waiting caller, raised there
            self.error = exc
        finally:
            self.done.set()


class BoundedCaller:
    """Calls made through ``call`` return within ``seconds`` of real time (None: unbounded,
    run on the caller's thread: a FakeClock's time cannot bound anything)."""

    def __init__(self, seconds: Optional[float], name: str) -> None:
        if seconds is not None and not seconds > 0:
            raise ValueError(f"{name}: a request timeout must be > 0 seconds, got {seconds!r}")
        self.seconds = seconds
        self.name = name
        self._lock = threading.Lock()
        self._queue: Optional["queue.SimpleQueue[Optional[_Call]]"] = None

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.seconds is None:
            return fn(*args, **kwargs)
        job = _Call(fn, args, kwargs)
        with self._lock:
            if self._queue is None:
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._work, args=(self._queue,), name=f"sessionkit-{self.name}",
                                 daemon=True).start()
            work = self._queue
            work.put(job)
        if not job.done.wait(self.seconds):
            with self._lock:
                if self._queue is work:
                    self._queue = None  # that worker is stuck in this request: the next call gets a new one
            work.put(None)  # ... which ends once the hung request returns
            raise StoreTimeout(f"{self.name}: {what} got no answer within {self.seconds:.3g} s; "
                               f"it may still land", key=None)
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            work, self._queue = self._queue, None
        if work is not None:
            work.put(None)

    def _work(self, work: "queue.SimpleQueue[Optional[_Call]]") -> None:
        """Run calls until told to stop, or until idle for IDLE_SECONDS (the thread, and a
        connection a store keeps per thread, are not kept for a lease nobody renews)."""
        while True:
            try:
                job = work.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if not work.empty():
                        continue  # a call arrived as the wait ended
                    if self._queue is work:
                        self._queue = None
                return
            if job is None:
                return
            job.run()
