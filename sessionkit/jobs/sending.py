"""The threads that send a save's chunks, kept for the life of the process.

A store keeps its connections per thread (Drive: a client and a TLS connection each,
store/gdrive_transport.py), so a thread that lives on sends its next chunk on a connection
already open. A thread per chunk, as before, opened a new connection for every chunk: on
a real link two round trips (TCP's handshake, then TLS 1.3's) before its request, 300 ms
at 150 ms a round trip, for each 4 MB tensor of a model.

Not a ``ThreadPoolExecutor``: it refuses new work once the interpreter begins to exit,
when the last saves must still go up (saves.py waits for them at exit). The threads are
daemons, started as work needs them, up to ``MAX_THREADS``; a forked child (a
``ProcessPoolExecutor`` of ``job.map``) starts with none, as it inherits no threads.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Optional

#: threads at most: two saves' worth of chunks in flight (chunks.PARALLEL each)
MAX_THREADS = 16


class Sending:
    """One send under way: ``result()`` waits for its answer or raises its error."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._answer: Any = None
        self._error: Optional[BaseException] = None

    def result(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._answer

    def _settle(self, answer: Any, error: Optional[BaseException]) -> None:
        self._answer, self._error = answer, error
        self._done.set()


class SendPool:
    def __init__(self, max_threads: int = MAX_THREADS) -> None:
        if not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads is a count of threads >= 1; got {max_threads!r}")
        self.max_threads = max_threads
        self._work: "queue.SimpleQueue[tuple[Sending, Callable[..., Any], tuple[Any, ...]]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for work (or started and about to)
        self._queued = 0  # work not yet taken by a thread

    def submit(self, fn: Callable[..., Any], *args: Any) -> Sending:
        """Run ``fn(*args)`` on a thread of the pool; its answer or error in ``result()``."""
        sending = Sending()
        with self._lock:
            self._queued += 1
            if self._queued > self._idle and self._threads < self.max_threads:
                self._threads += 1
                self._idle += 1
                try:
                    threading.Thread(target=self._serve, name="sessionkit-send", daemon=True).start()
                except BaseException:  # no thread (the system's limit): the counts say so
                    self._threads -= 1
                    self._idle -= 1
                    self._queued -= 1
                    raise
            self._work.put((sending, fn, args))
        return sending

    def _serve(self) -> None:
        while True:
            sending, fn, args = self._work.get()
            with self._lock:
                self._queued -= 1
                self._idle -= 1
            try:
                answer, error = fn(*args), None
            except BaseException as exc:  # handed to whoever waits for the result
                answer, error = None, exc
            sending._settle(answer, error)
            del sending, fn, args, answer, error  # nothing of the chunk is held while waiting
            with self._lock:
                self._idle += 1

    def forked(self) -> None:
        """In a forked child: no thread of the parent's runs here."""
        self._work = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = self._idle = self._queued = 0


POOL = SendPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=POOL.forked)


__all__ = ["MAX_THREADS", "POOL", "SendPool", "Sending"]
