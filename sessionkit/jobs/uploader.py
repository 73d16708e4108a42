"""The background uploader: a job's saves go to the store while training goes on.

A plain object with ``step()`` (do one unit of work: one upload, one deferred
checkpoint or one sweep), run by a task of the clock's scheduler (sessionkit/scheduler.py)
while units are queued. Units are done one at a time, oldest first:

- ``Upload``: a save's captured state (``capture.Staged``) sent as chunks. At most one
  upload in flight and one queued per blob name: a newer save of a name replaces the
  queued one (its handle then answers with the newer one's result), so at most two
  snapshots of a name are in host memory.
- ``Commit``: a checkpoint asked for while uploads were queued before it
  (``job.checkpoint(done=step)`` right after a save). It is written once every upload
  queued before it is whole, naming their blobs, with the done count it was asked
  with: the generation that names a blob carries the step at which it was captured.
  A commit queued behind an upload that a newer save replaced is dropped (its done count
  would name weights of a later step); the newer save's own commit covers it.
- ``Task``: anything else done off the loop (the orphan sweep).

A failure (the store full, the lease lost) is kept and raised at the caller's next
save, wait, checkpoint or loop tick; the uploads and commits queued after it are
dropped (what they would have named is not whole). On a real or scaled clock the task
is a thread; on the fake clock (tests) it runs when a unit is queued, on the caller's
thread: the same code either way.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from ..scheduler import Scheduler

log = logging.getLogger("sessionkit.jobs")


class SaveHandle:
    """What a save returns: ``done`` once its blob is whole in the store (or the save
    failed, or a newer save of the same name replaced it before it started);
    ``wait()`` blocks until then and returns the blob's content hash (raising why it
    failed). The blob becomes current at the checkpoint that names it."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: bytes of the state captured, and of them the bytes copied in host memory (the
        #: rest are arrays unchanged since the last save of this name, shared with it)
        self.captured_bytes = 0
        self.copied_bytes = 0
        self._event = threading.Event()
        self._hash: Optional[str] = None
        self._error: Optional[BaseException] = None
        self._replaced_by: Optional["SaveHandle"] = None

    @property
    def done(self) -> bool:
        return self._event.is_set() and (self._replaced_by is None or self._replaced_by.done)

    def wait(self, timeout: Optional[float] = None) -> str:
        """The content hash once whole; raises the upload's error, or TimeoutError."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"the save of blob {self.name!r} is still uploading after {timeout} s")
        if self._replaced_by is not None:
            return self._replaced_by.wait(timeout)
        if self._error is not None:
            raise self._error
        assert self._hash is not None
        return self._hash

    @property
    def hash(self) -> Optional[str]:
        """The content hash once whole, else None."""
        return self._replaced_by.hash if self._replaced_by is not None else self._hash

    def settle(self, hash_: Optional[str] = None, error: Optional[BaseException] = None,
               replaced_by: Optional["SaveHandle"] = None) -> None:
        self._hash, self._error, self._replaced_by = hash_, error, replaced_by
        self._event.set()

    def __repr__(self) -> str:
        state = "done" if self.done else "uploading"
        return f"<SaveHandle {self.name!r} {state}{' ' + self.hash[:12] if self.hash else ''}>"


@dataclass
class Upload:
    handle: SaveHandle
    run: Callable[[], str]  # sends the chunks, returns the content hash
    discard: Callable[[], None]  # gives the snapshot's memory back (replaced or failed)


@dataclass
class Commit:
    write: Callable[[], None]


@dataclass
class Task:
    run: Callable[[], None]
    name: str = "task"


Unit = Union[Upload, Commit, Task]


@dataclass
class _State:
    queue: "deque[Unit]" = field(default_factory=deque)
    current: Optional[Unit] = None
    failure: Optional[BaseException] = None


class Uploader:
    def __init__(self, *, scheduler: Scheduler, name: str,
                 on_failure: Optional[Callable[[BaseException], bool]] = None) -> None:
        #: runs the uploads (sessionkit/scheduler.py): a thread on a real or scaled clock, the
        #: fake clock's steps in tests (a unit queued there is done before the call returns)
        self.scheduler = scheduler
        self.on_failure = on_failure  # True: a running loop took the failure (raised at its tick)
        self.name = name
        self._s = _State()
        self._cond = threading.Condition()
        self._running = False  # a scheduler task is doing the queue (it ends once it is empty)

    # -- the caller's side -----------------------------------------------------

    def upload(self, unit: Upload) -> None:
        """Queue ``unit``; a queued (not started) upload of the same name is replaced."""
        with self._cond:
            self._raise_failure()
            self._replace(unit.handle.name, unit.handle)
            self._s.queue.append(unit)
            self._cond.notify_all()
        self._kick()

    def make_room(self, name: str, newer: SaveHandle) -> None:
        """Before a new save of ``name`` is captured: drop the one queued, so at most two
        snapshots of a name are in memory (the one in flight and the new one)."""
        with self._cond:
            self._raise_failure()
            self._replace(name, newer)

    def _replace(self, name: str, newer: SaveHandle) -> None:
        queue = self._s.queue
        for i, queued in enumerate(queue):
            if isinstance(queued, Upload) and queued.handle.name == name:
                # drop it and the commits queued after it (they would name its blob)
                later = list(queue)[i + 1:]
                del queue[i]
                for other in later:
                    if isinstance(other, Commit):
                        queue.remove(other)
                queued.discard()
                queued.handle.settle(replaced_by=newer)
                return

    def commit(self, unit: Commit) -> bool:
        """Queue a checkpoint behind the uploads queued before it; False (nothing queued)
        when none is queued or in flight: the caller writes it now."""
        with self._cond:
            self._raise_failure()
            if not self._s.queue and self._s.current is None:
                return False
            self._s.queue.append(unit)
            self._cond.notify_all()
        self._kick()
        return True

    def task(self, unit: Task) -> None:
        with self._cond:
            self._s.queue.append(unit)
            self._cond.notify_all()
        self._kick()

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._s.queue) or self._s.current is not None

    def raise_failure(self) -> None:
        """Raise (once) what went wrong in the background since the last call."""
        with self._cond:
            self._raise_failure()

    def _raise_failure(self) -> None:
        failure, self._s.failure = self._s.failure, None
        if failure is not None:
            raise failure

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until every queued unit is done; then raise a failure if one happened.
        False if ``timeout`` (seconds) passed first."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._s.queue and self._s.current is None, timeout):
                return False
            self._raise_failure()
        return True

    # -- the work --------------------------------------------------------------

    def step(self) -> bool:
        """Do the oldest queued unit; False if there was none."""
        with self._cond:
            if not self._s.queue:
                return False
            unit = self._s.current = self._s.queue.popleft()
        try:
            self._do(unit)
        finally:
            with self._cond:
                self._s.current = None
                self._cond.notify_all()
        return True

    def drain(self) -> None:
        while self.step():
            pass

    def _do(self, unit: Unit) -> None:
        if isinstance(unit, Task):
            try:
                unit.run()
            except Exception as exc:  # a sweep is retried by the next writer: never fatal
                log.warning("job %s: %s failed: %s", self.name, unit.name, exc)
            return
        try:
            if isinstance(unit, Upload):
                unit.handle.settle(unit.run())
            else:
                unit.write()
        except BaseException as exc:  # kept for the caller, which raises it at its next call
            log.warning("job %s: background save failed (%s); raised at the next save or checkpoint",
                        self.name, exc)
            if isinstance(unit, Upload):
                unit.discard()
                unit.handle.settle(error=exc)
            taken = self.on_failure is not None and self.on_failure(exc)
            with self._cond:
                if not taken:
                    self._s.failure = exc
                dropped = [u for u in self._s.queue if not isinstance(u, Task)]
                for other in dropped:
                    self._s.queue.remove(other)
            for other in dropped:
                if isinstance(other, Upload):
                    other.discard()
                    other.handle.settle(error=exc)
            if not isinstance(exc, Exception):
                raise

    # -- the scheduler's task -------------------------------------------------

    def _kick(self) -> None:
        with self._cond:
            if self._running:
                return  # the task at work takes the unit: it ends only with the queue empty
            self._running = True
        self.scheduler.start(f"sessionkit-upload-{self.name}", self._scheduled_step, after=0.0)

    def _scheduled_step(self) -> Optional[float]:
        """One unit, then again at once while units are queued; ends with the queue empty
        (decided under the lock ``upload`` queues under, so no unit is left behind)."""
        try:
            self.step()
        except BaseException:
            with self._cond:
                self._running = False  # the task ends with the error: the next unit starts one
            raise
        with self._cond:
            if self._s.queue:
                return 0.0
            self._running = False
            return None


__all__ = ["Commit", "SaveHandle", "Task", "Upload", "Uploader"]
