"""The checkpoint writer: one per running job, so the user's loop never waits on the store.

The loop hands it immutable ``Snapshot``s and goes on. A background thread
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

On a clock that does not move by itself (``FakeClock``) there is no thread:
``submit`` writes at once and ``read_control_soon`` reads at once, so logic tests stay
deterministic and start no threads.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from ..clock import Clock
from ..errors import LeaseLost, Superseded
from .checkpoint import Checkpointer, EventFlush, Snapshot, Written
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
        self.background = clock.real_seconds(1.0) is not None
        self.failure: Optional[BaseException] = None
        self.request: Optional[Control] = None
        self._mutex = threading.Lock()
        self._settled = threading.Condition(self._mutex)  # notified when a write ends
        self._writing = False  # the thread has taken a snapshot and is writing it
        self._wake = threading.Event()
        self._pending: Optional[Snapshot] = None
        self._failed: Optional[Snapshot] = None  # a snapshot whose write failed: goes out with the next
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    # -- the loop's side (never waits on the store in background mode) ---------

    def start(self, request: Optional[Control]) -> None:
        """Begin a run: ``request`` is the control request read as it started."""
        self.request = request
        self.failure = None
        if not self.background or (self._thread is not None and self._thread.is_alive()):
            return
        self._stopping = False
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name=f"sessionkit-checkpoint-{self.name}",
                                        daemon=True)
        self._thread.start()

    def submit(self, snap: Snapshot) -> None:
        """Hand ``snap`` to the thread. If the snapshot before it is still out, wait for
        its write first; if that write failed (or fenced), raise why, keeping ``snap`` for
        the final flush: the loop never runs more than one interval past a write that
        has not landed."""
        if not self.background:
            self.flush(snap, adopt_state=False)
            return
        with self._mutex:
            while (self._pending is not None or self._writing) and not isinstance(self.failure, LeaseLost) \
                    and self._thread is not None and self._thread.is_alive():  # a retry out may clear it
                self._settled.wait(1.0)
            failure = self.failure
            if failure is not None:
                self._failed = _joined(self._failed, snap)
                raise failure
            self._pending = _joined(self._pending, snap)
        self._wake.set()

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
        claim); the function returned waits for the answer and returns it."""
        if not self.background:
            request = self.read_control()
            return lambda: request
        answer: dict[str, Any] = {}

        def read() -> None:
            try:
                answer["request"] = self.read_control()
            except BaseException as exc:  # handed to the caller of the function returned
                answer["error"] = exc

        thread = threading.Thread(target=read, name=f"sessionkit-control-{self.name}", daemon=True)
        thread.start()

        def wait() -> Optional[Control]:
            thread.join()
            if "error" in answer:
                raise answer["error"]
            return answer["request"]
        wait.ready = lambda: not thread.is_alive()  # type: ignore[attr-defined]
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
        """Stop the thread after the write in flight (the run's final flush follows)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        if thread is not threading.current_thread():
            thread.join()
        self._thread = None

    # -- the thread ------------------------------------------------------------

    def _run(self) -> None:
        clock = self.clock
        next_control = clock.monotonic() + self.control_poll
        while True:
            clock.wait(self._wake, max(0.0, next_control - clock.monotonic()))
            with self._mutex:
                self._wake.clear()
                work = _joined(self._failed, self._pending)
                self._failed = self._pending = None
                self._writing = work is not None
            try:
                if work is not None and self._write(work):
                    return
            finally:
                with self._mutex:
                    self._writing = False
                    self._settled.notify_all()
            if self._stopping:
                return
            if clock.monotonic() >= next_control:  # a failed write is retried at this pace
                next_control = clock.monotonic() + self.control_poll

    def _write(self, work: Snapshot) -> bool:
        """One background write; True when fenced (the thread ends: nothing more may land)."""
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
