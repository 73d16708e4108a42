"""The checkpoint writer: one per running job, so the user's loop never waits on the store.

The loop hands it immutable ``Snapshot``s and goes on. A background task
(sessionkit/scheduler.py) writes them one at a time; snapshots that arrive while a write is out are
coalesced into one. What goes wrong comes back to the loop: ``failure`` holds a
``LeaseLost`` (a newer holder exists: nothing more is ever written) or a store
error (its snapshot is kept and written with the next one), and the loop raises
it at its next tick. The same task reads pause/cancel requests every
``control_poll`` seconds and leaves the latest in ``request`` for the loop.

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

The task runs on the clock's scheduler: its own thread on real and scaled clocks; on a
``FakeClock`` a snapshot handed over is written before ``submit`` returns (the task is
woken, and the fake clock's scheduler runs a woken task at once) and the control record
is read as the test advances the clock. The same code writes and reads in both.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from ..clock import Clock
from ..errors import LeaseLost, Superseded
from ..scheduler import Task, scheduler_for
from .checkpoint import Checkpointer, Snapshot, Written
from .control import Control

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
        self._next_control = 0.0  # when the task reads the control record next, on the clock

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
        self._next_control = self.clock.monotonic() + self.control_poll
        self._task = scheduler_for(self.clock).start(f"checkpoint-{self.name}", self._step,
                                                     after=self.control_poll)

    def submit(self, snap: Snapshot) -> None:
        """Hand ``snap`` to the task. If the snapshot before it is still out, wait for
        its write first; if that write failed (or fenced), raise why, keeping ``snap`` for
        the final flush: the loop never runs more than one interval past a write that
        has not landed. A failure of ``snap``'s own write known by the time the task has
        been woken is raised too (the task has put ``snap`` back for the next write)."""
        with self._mutex:
            while (self._pending is not None or self._writing) and self.failure is None and self._running():
                self._settled.wait(1.0)
            failure = self.failure
            if failure is not None:
                self._failed = _joined(self._failed, snap)
                raise failure
            self._pending = _joined(self._pending, snap)
        if self._task is not None:
            self._task.wake()
        failure = self.failure  # known already (a FakeClock's task writes before wake returns)
        if failure is not None:
            raise failure

    def read_control_soon(self) -> Callable[[], Optional[Control]]:
        """Start reading the control record while the caller does something else (a run's
        claim); the function returned waits for the answer and returns it. A one-step
        task: on a FakeClock it has run when this returns."""
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

    def poll_control(self) -> None:
        """Nothing to do: the writer's task reads the control record every ``control_poll``
        seconds, on every clock (kept for loops that call it)."""

    def flush(self, snap: Optional[Snapshot], *, adopt_state: bool, events: str = "now",
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
        """One round: write what was handed over, read the control record when due; the
        seconds until the next control read (None: the task ends)."""
        clock = self.clock
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
        if self._stopping:
            return None
        if clock.monotonic() >= self._next_control:
            self._next_control = clock.monotonic() + self.control_poll
            self._read_control()
        return max(0.0, self._next_control - clock.monotonic())

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

    def _read_control(self) -> None:
        try:
            self.request = self.read_control()
        except Exception as exc:  # a failed poll is retried at the next one; the job goes on
            log.warning("job %s: could not read pause/cancel requests: %s", self.name, exc)
