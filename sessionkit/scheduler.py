"""Background work, in one place: the same task code whether real threads or a test drive it.

Everything sessionkit does behind the user's loop (a lease's renewals, a session's
heartbeats, the checkpoint writer's write-behind, an event log's late flush) is a
``Task``: a ``step`` function that does one round of the work and says when it wants
to run again (seconds of its clock from now, or None: done). A ``Scheduler`` runs tasks;
there are two drivers and no other difference:

- ``ThreadScheduler`` (the system clock; a ScaledClock uses its base's driver with delays
  divided by its factor, ``RescaledScheduler``): each task on its own daemon thread,
  waiting with ``clock.wait`` between steps, so one task's hung store request never
  holds up another's (a slow heartbeat never delays a renewal). ``wake()`` ends the wait.
- ``StepScheduler`` (the fake clock's): no thread. ``run_due()`` runs, on the caller's
  thread, every task whose time has come, earliest first (ties: the order they were
  started), until none is due; ``FakeClock.advance`` moves time through each due time
  in turn (``run_until``), so a test's time passing is what runs background work, as
  real time passing does for users. A task woken or started with ``after=0`` is due at once and runs before the
  call returns: one of the orders real threads may take (the thread got there first),
  chosen every time.

A task's step must not raise: an error in it is logged and ends the task, as an
exception would end its thread. Each clock gives its driver (``clock.scheduler()``):
no code asks what kind of clock it has.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from typing import Any, Callable, Optional, Protocol

__all__ = ["Task", "Scheduler", "ThreadScheduler", "StepScheduler", "RescaledScheduler", "scheduler_for"]

log = logging.getLogger("sessionkit.scheduler")

Step = Callable[[], Optional[float]]
#: a StepScheduler refuses to run one task more often than this in one ``run_due``: a step
#: that always asks to run again at once would otherwise never let the test go on
MAX_RUNS_PER_CALL = 10_000


class Task:
    """One piece of background work run by a scheduler (see the module docstring)."""

    def __init__(self, name: str, step: Step) -> None:
        self.name = name
        self.step = step
        self._cancelled = threading.Event()
        self._done = threading.Event()

    def run_once(self) -> Optional[float]:
        """One step: seconds until the next (None: the task is over). Errors end the task."""
        if self._cancelled.is_set():
            return None
        try:
            after = self.step()
        except Exception:  # a bug in a task: it ends, as its thread would, and says why
            log.exception("background task %s failed and stopped", self.name)
            return None
        return None if self._cancelled.is_set() else after

    def wake(self) -> None:
        """Run the next step now instead of at its time."""
        raise NotImplementedError

    def cancel(self) -> None:
        """No step starts after this (a step running now finishes)."""
        self._cancelled.set()
        self.wake()

    @property
    def alive(self) -> bool:
        """True until the task is over (cancelled, or its step said it was done)."""
        return not self._done.is_set()

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait (real seconds) until a step running on another thread has finished."""


class Scheduler(Protocol):
    def start(self, name: str, step: Step, *, after: float) -> Task:
        """Run ``step`` first ``after`` seconds (of the clock) from now, then as it asks."""


class _Threaded(Task):
    def __init__(self, name: str, step: Step, clock: Any) -> None:
        super().__init__(name, step)
        self._clock = clock
        self._wakeup = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _run(self, after: float) -> None:
        try:
            while True:
                self._clock.wait(self._wakeup, max(0.0, after))
                self._wakeup.clear()
                if self._cancelled.is_set():
                    return
                next_after = self.run_once()
                if next_after is None:
                    return
                after = next_after
        finally:
            self._done.set()

    def wake(self) -> None:
        self._wakeup.set()

    def join(self, timeout: Optional[float] = None) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


class ThreadScheduler:
    """Each task on its own daemon thread, waiting on ``clock`` between steps."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def start(self, name: str, step: Step, *, after: float) -> Task:
        task = _Threaded(name, step, self.clock)
        task._thread = threading.Thread(target=task._run, args=(after,), name=f"sessionkit-{name}", daemon=True)
        task._thread.start()
        return task

    def __repr__(self) -> str:
        return f"ThreadScheduler({self.clock!r})"


class _Stepped(Task):
    def __init__(self, name: str, step: Step, owner: "StepScheduler") -> None:
        super().__init__(name, step)
        self._owner = owner

    def wake(self) -> None:
        self._owner._due_now(self)

    def join(self, timeout: Optional[float] = None) -> None:
        """Run what is due (this task, if it is): a step waited for runs now, on this thread."""
        self._owner.run_due()


class StepScheduler:
    """Runs due tasks on the caller's thread when told (``run_due``); no thread of its own.

    ``monotonic`` is the time the tasks' due times are on (the fake clock's)."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._queue: list[tuple[float, int, _Stepped]] = []  # (due, order, task): a heap
        self._order = itertools.count()
        self._lock = threading.Lock()  # guards the queue
        self._running = threading.Lock()  # held by the one thread running steps

    def start(self, name: str, step: Step, *, after: float) -> Task:
        task = _Stepped(name, step, self)
        with self._lock:
            heapq.heappush(self._queue, (self._monotonic() + max(0.0, after), next(self._order), task))
        if after <= 0:
            self.run_due()
        return task

    def _due_now(self, task: _Stepped) -> None:
        now = self._monotonic()
        with self._lock:
            self._queue = [(min(due, now) if t is task else due, order, t) for due, order, t in self._queue]
            heapq.heapify(self._queue)
        self.run_due()

    @property
    def pending(self) -> list[str]:
        """Names of the tasks not over yet, soonest first."""
        with self._lock:
            return [task.name for _due, _order, task in sorted(self._queue) if task.alive]

    def run_due(self) -> int:
        """Run every task whose time has come, earliest first, until none is; returns how
        many steps ran. Called from a step (a task that moves the clock, a store that
        makes time pass) it returns at once: the outer call runs what fell due."""
        ran = 0
        while self._is_due():  # again after letting go: another thread may have woken a task
            if not self._running.acquire(blocking=False):
                return ran
            try:
                ran += self._run_due_held()
            finally:
                self._running.release()
        return ran

    def run_until(self, target: float, move_to: Callable[[float], None]) -> int:
        """Let time pass up to ``target``: ``move_to`` each due time on the way in turn and run
        what falls due there, so a task due every 2 s runs five times in an advance of 10 s,
        each time seeing the time it was due at. From within a step, time only moves."""
        if not self._running.acquire(blocking=False):
            move_to(target)
            return 0
        ran = 0
        try:
            while True:
                with self._lock:
                    due = self._queue[0][0] if self._queue else None
                if due is None or due > target:
                    break
                move_to(due)
                ran += self._run_due_held()
            move_to(target)
            ran += self._run_due_held()
        finally:
            self._running.release()
        return ran + self.run_due()

    def _is_due(self) -> bool:
        with self._lock:
            return bool(self._queue) and self._queue[0][0] <= self._monotonic()

    def _run_due_held(self) -> int:
        runs: dict[int, int] = {}
        while True:
            with self._lock:
                if not self._queue or self._queue[0][0] > self._monotonic():
                    return sum(runs.values())
                _due, order, task = heapq.heappop(self._queue)
            runs[order] = runs.get(order, 0) + 1
            if runs[order] > MAX_RUNS_PER_CALL:
                log.error("background task %s asked to run again at once %d times; it is stopped",
                          task.name, MAX_RUNS_PER_CALL)
                task._done.set()
                continue
            after = task.run_once()
            if after is None:
                task._done.set()
                continue
            with self._lock:
                heapq.heappush(self._queue, (self._monotonic() + max(0.0, after), order, task))

    def __repr__(self) -> str:
        return f"StepScheduler(pending={self.pending})"


class RescaledScheduler:
    """The scheduler of a clock that runs ``factor`` times as fast as its base clock (a
    ScaledClock): each delay is turned into the base's seconds and the base's own driver
    runs the task. Over the system clock that is real threads; over a FakeClock it is the
    fake clock's steps, so a test advancing the base runs a scaled run's background work
    in order, as it does on a plain fake clock (a thread there would wait real seconds
    while the test moved time past a lease's deadline)."""

    def __init__(self, base: Scheduler, factor: float) -> None:
        self.base = base
        self.factor = factor

    def start(self, name: str, step: Step, *, after: float) -> Task:
        factor = self.factor

        def step_on_base() -> Optional[float]:
            next_after = step()
            return None if next_after is None else next_after / factor

        return self.base.start(name, step_on_base, after=after / factor)

    def __repr__(self) -> str:
        return f"RescaledScheduler({self.base!r}, x{self.factor:g})"


def scheduler_for(clock: Any) -> Scheduler:
    """The driver of background work on ``clock``: the clock's own (``clock.scheduler()``);
    a clock written before schedulers existed gets real threads, as it always did."""
    own = getattr(clock, "scheduler", None)
    return own() if own is not None else ThreadScheduler(clock)
