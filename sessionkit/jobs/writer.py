"""The checkpoint writer: one per running job, so the user's loop never waits on the store.

The loop hands it immutable ``Snapshot``s and goes on. A background task
writes them one at a time; snapshots that arrive while a write is out are
coalesced into one. What goes wrong comes back to the loop: ``failure`` holds a
``LeaseLost`` (a newer holder exists: nothing more is ever written) or a store
error (its snapshot is kept and written with the next one), and the loop raises
it at its next tick, unless a retry (the thread tries again every ``control_poll``
seconds) lands first. Pause/cancel requests are read by the loop's run, each read on
a thread of its own (``read_control_soon``), so a slow control read never holds a
checkpoint write, nor the loop waiting for one; ``request`` is the latest read.

``flush`` writes on the caller's thread, after any write in flight: the final
checkpoint of a run, and ``job.checkpoint()``.

Bound after a crash (SIGKILL) or a failed write: items finished before the
newest snapshot whose write landed are safe. At most one snapshot is out at a
time: a snapshot that falls due while the one before it is still being written
waits for that write (``submit`` blocks until it landed, or raises why it did
not). So the loop is never more than one checkpoint interval past the last write
that landed plus the one in flight, whatever the store does: what runs again is
at most two checkpoint intervals of items (``checkpoint_items``, or the items of
``checkpoint_every`` seconds) plus the item that was running. The loop waits only
when a write takes longer than a checkpoint interval.

The writes and the control reads are tasks on the clock's scheduler
(sessionkit/scheduler.py): threads on real and scaled clocks; on a ``FakeClock`` a
snapshot handed over is written before ``submit`` returns (a woken task runs at once)
and a control read has answered when ``read_control_soon`` returns. The same code runs
in both.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from ..clock import Clock
from ..errors import LeaseLost, Superseded
from .checkpoint import Checkpointer, EventFlush, Snapshot, Written
from .control import Control
from ..scheduler import Task, scheduler_for

log = logging.getLogger("sessionkit.jobs")


def _joined(*snaps: Optional[Snapshot]) -> Optional[Snapshot]:
    """Oldest first: one snapshot with every item and the newest manifest."""
    out: Optional[Snapshot] = None
    for snap in snaps:
        if snap is not None:
            out = snap if out is None else out.after(snap)
    return out


class CheckpointWriter:
    def __init__(self, checkpointer: Checkpointer, *, clock: Clock, control_poll: float,
                 read_control: Callable[[], Optional[Control]], name: str) -> None:
        self.checkpointer = checkpointer
        self.clock = clock
        self.control_poll = control_poll
        self.read_control = read_control
        self.name = name
        self.failure: Optional[BaseException] = None
        self.request: Optional[Control] = None
        self._mutex = threading.Lock()
        self._settled = threading.Condition(self._mutex)  # notified when a write ends
        self._writing = False  # the task has taken a snapshot and is writing it
        self._pending: Optional[Snapshot] = None
        self._failed: Optional[Snapshot] = None  # a snapshot whose write failed: goes out with the next
        self._stopping = False
        self._task: Optional[Task] = None

    # -- the loop's side (never waits on the store) ----------------------------

    def _running(self) -> bool:
        return self._task is not None and self._task.alive

    def start(self, request: Optional[Control]) -> None:
        """Begin a run: ``request`` is the control request read as it started."""
        self.request = request
        self.failure = None
        if self._running():
            return
        self._stopping = False
        self._task = scheduler_for(self.clock).start(f"checkpoint-{self.name}", self._step,
                                                     after=self.control_poll)

    def submit(self, snap: Snapshot) -> None:
        """Hand ``snap`` to the thread. If the snapshot before it is still out, wait for
        its write first; if that write failed (or fenced), raise why, keeping ``snap`` for
        the final flush: the loop never runs more than one interval past a write that
        has not landed. A fencing known once the task was woken is raised too (at once on a
        FakeClock, whose task writes before ``wake`` returns)."""
        with self._mutex:
            while (self._pending is not None or self._writing) and not isinstance(self.failure, LeaseLost) \
                    and self._running():  # a retry out may clear it
                self._settled.wait(1.0)
            failure = self.failure
            if failure is not None:
                self._failed = _joined(self._failed, snap)
                raise failure
            self._pending = _joined(self._pending, snap)
        if self._task is not None:
            self._task.wake()
        if isinstance(self.failure, LeaseLost):
            raise self.failure

    @property
    def stopping_failure(self) -> Optional[BaseException]:
        """Why the loop must stop now: fenced, or a failed write whose snapshot still waits;
        None while the thread's retry of it is out, and once one landed (``failure`` is
        cleared then). A retry that fails too sets it again."""
        failure = self.failure
        if failure is None or isinstance(failure, LeaseLost):
            return failure
        with self._mutex:
            return failure if self._failed is not None else None

    def read_control_soon(self) -> Callable[[], Optional[Control]]:
        """Start reading the control record while the caller does something else (a run's
        claim); the function returned waits for the answer and returns it. A one-step
        task: on a FakeClock it has answered when this returns."""
        answer: dict[str, Any] = {}
        answered = threading.Event()

        def read() -> None:
            try:
                answer["request"] = self.read_control()
            except BaseException as exc:  # handed to the caller of the function returned
                answer["error"] = exc
            finally:
                answered.set()

        task = scheduler_for(self.clock).start(f"control-{self.name}", read, after=0)

        def wait() -> Optional[Control]:
            task.join()
            if not answered.is_set():
                raise RuntimeError(f"job {self.name}: the control record was read from within a "
                                   f"background step of a FakeClock, which cannot wait for itself")
            if "error" in answer:
                raise answer["error"]
            return answer["request"]
        wait.ready = answered.is_set  # type: ignore[attr-defined]
        return wait

    def flush(self, snap: Optional[Snapshot], *, adopt_state: bool, events: EventFlush = EventFlush.NOW,
              settle: bool = False) -> Written:
        """Write everything not yet written, with ``snap`` last, on this thread (after the
        write in flight). Raises what went wrong."""
        with self._mutex:
            work = _joined(self._failed, self._pending, snap)
            self._failed = self._pending = None
            failure, self.failure = self.failure, None
        if isinstance(failure, LeaseLost):
            self.failure = failure
            raise failure
        if work is None:
            return self.checkpointer.written
        try:
            return self.checkpointer.write(work, adopt_state=adopt_state, events=events, settle=settle)
        except (LeaseLost, Superseded):
            raise
        except BaseException:
            with self._mutex:
                self._failed = _joined(work, self._failed)
            raise

    def close(self) -> None:
        """Stop the task after the write in flight (the run's final flush follows)."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        task.wake()
        task.join()
        self._task = None

    # -- the task --------------------------------------------------------------

    def _step(self) -> Optional[float]:
        """One round: write what was handed over (or failed before); the next round when
        woken, or ``control_poll`` seconds from now (a failed write is retried at this pace)."""
        with self._mutex:
            work = _joined(self._failed, self._pending)
            self._failed = self._pending = None
            self._writing = work is not None
        try:
            if work is not None and self._write(work):
                return None
        finally:
            with self._mutex:
                self._writing = False
                self._settled.notify_all()
        return None if self._stopping else self.control_poll

    def _write(self, work: Snapshot) -> bool:
        """One background write; True when fenced (the task ends: nothing more may land)."""
        try:
            self.checkpointer.write(work, adopt_state=False)
        except LeaseLost as exc:
            self.failure = exc
            return True
        except Exception as exc:  # handed to the loop, which raises it at its next tick
            log.warning("job %s: checkpoint failed (%s); the loop stops at its next tick", self.name, exc)
            with self._mutex:
                self._failed = _joined(work, self._failed)
            self.failure = exc
            return False
        with self._mutex:  # a retry of a failed write landed: the loop need not stop for it
            if self.failure is not None and not isinstance(self.failure, LeaseLost):
                self.failure = None
        return False
