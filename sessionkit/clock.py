"""Time, in one place: a monotonic clock for durations and a UTC wall clock for records.

Everything in sessionkit that reads time takes a ``Clock``, so logic can be tested
with ``FakeClock`` (advanced by hand) and demos can run a 12-hour runtime in a
minute with ``ScaledClock(720)``. Durations (lease expiry, checkpoint intervals)
use ``monotonic()`` only; ``now()`` is for timestamps people read.

Each clock also gives the driver of background work on it (``scheduler()``, see
sessionkit/scheduler.py): real threads on real and scaled clocks; on a ``FakeClock``,
its ``advance`` runs the tasks that fell due, on the test's thread. The tasks are the
same either way.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Optional, Protocol, runtime_checkable

from .scheduler import RescaledScheduler, Scheduler, StepScheduler, ThreadScheduler, scheduler_for

__all__ = ["Clock", "SystemClock", "FakeClock", "ScaledClock", "SYSTEM_CLOCK"]


@runtime_checkable
class Clock(Protocol):
    """What sessionkit needs of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware, in UTC."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait until ``event`` is set or ``seconds`` of this clock's time pass; True if set.
        Background threads wait with this, so none converts clock seconds to real ones."""

    def real_seconds(self, seconds: float) -> Optional[float]:
        """How many real seconds ``seconds`` of this clock take; None when this clock does
        not move by itself (a FakeClock), where no real-time bound can apply."""

    def scheduler(self) -> Scheduler:
        """What runs background work on this clock (sessionkit/scheduler.py)."""


class SystemClock:
    """The real clocks of this machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))

    def real_seconds(self, seconds: float) -> Optional[float]:
        return seconds

    def scheduler(self) -> Scheduler:
        return ThreadScheduler(self)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


def check_aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name}={value!r} has no time zone: pass an aware datetime, "
            f"e.g. datetime(2026, 1, 1, tzinfo=timezone.utc)"
        )
    return value.astimezone(timezone.utc)


class FakeClock:
    """A clock that moves only when told: ``advance(seconds)`` or ``sleep(seconds)``.

    ``sleep`` advances the clock instead of waiting, so a loop that sleeps between
    polls runs instantly and deterministically in tests. Thread-safe.

    Background work on it (renewals, heartbeats, write-behind) runs through its
    ``scheduler()``, a ``StepScheduler``: ``advance`` moves time through each due time in
    turn and runs, on the advancing thread, what falls due there, earliest first, so the
    code users run on threads runs here too, in one order chosen every time.
    """

    def __init__(self, start: Optional[datetime] = None, monotonic_start: float = 1000.0) -> None:
        self._wall = check_aware(start, "start") if start is not None else datetime(
            2026, 1, 1, tzinfo=timezone.utc
        )
        self._mono = float(monotonic_start)
        # the wall clock is the anchor plus the monotonic time since it, not a sum of steps:
        # each timedelta rounds to the microsecond, and an advance through many due times
        # would add up those roundings (on a x720 clock over this one, 0.36 ms a step)
        self._wall_anchor = (self._wall, self._mono)
        self._lock = threading.Lock()
        self._scheduler = StepScheduler(self.monotonic)

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def now(self) -> datetime:
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (must not be negative)."""
        if seconds < 0:
            raise ValueError(f"FakeClock.advance({seconds!r}): time cannot go back")
        with self._lock:
            target = self._mono + seconds
        # through each due time on the way: background work runs at the time it falls due
        self._scheduler.run_until(target, self._move_to)

    def _move_to(self, monotonic: float) -> None:
        """Move both clocks forward to ``monotonic`` (never back)."""
        with self._lock:
            if monotonic > self._mono:
                self._mono = monotonic
                wall, mono = self._wall_anchor
                self._wall = wall + timedelta(seconds=monotonic - mono)

    def scheduler(self) -> StepScheduler:
        """The driver of background work on this clock: ``advance`` runs what fell due."""
        return self._scheduler

    def set_wall(self, value: datetime) -> None:
        """Jump the wall clock only (as NTP might); the monotonic clock is untouched."""
        with self._lock:
            self._wall = check_aware(value, "value")
            self._wall_anchor = (self._wall, self._mono)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Waits ``seconds`` of real time and does not move the clock: a thread must never
        move a test's time (sessionkit starts no thread on a FakeClock: see ``scheduler``)."""
        return event.wait(max(0.0, seconds))

    def real_seconds(self, seconds: float) -> Optional[float]:
        return None

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now().isoformat()}, monotonic={self.monotonic()})"


class ScaledClock:
    """A clock that runs ``factor`` times faster than ``base`` (720: 12 h pass in 60 s).

    Its monotonic time advances ``factor`` times as fast as the base's; its wall time
    is ``epoch + (base now - epoch) * factor``, so processes that share an ``epoch``
    (default: when this clock was made) agree on the time, as real machines roughly
    do. ``sleep(s)`` waits ``s / factor`` real seconds. Used by demos and notebook tests
    to live through a whole runtime.
    """

    def __init__(self, factor: float, base: Optional[Clock] = None, epoch: Optional[datetime] = None) -> None:
        if not isinstance(factor, (int, float)) or isinstance(factor, bool):
            raise TypeError(f"ScaledClock factor must be a number, got {type(factor).__name__}")
        if not factor > 0 or factor == float("inf"):
            raise ValueError(f"ScaledClock factor must be a finite number > 0, got {factor!r}")
        self.factor = float(factor)
        self.base: Clock = base if base is not None else SYSTEM_CLOCK
        self._mono0 = self.base.monotonic()
        self.epoch = check_aware(epoch, "epoch") if epoch is not None else self.base.now()

    def monotonic(self) -> float:
        return self._mono0 + (self.base.monotonic() - self._mono0) * self.factor

    def now(self) -> datetime:
        return self.epoch + (self.base.now() - self.epoch) * self.factor

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.base.sleep(seconds / self.factor)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return self.base.wait(event, seconds / self.factor)

    def real_seconds(self, seconds: float) -> Optional[float]:
        return self.base.real_seconds(seconds / self.factor)

    def scheduler(self) -> Scheduler:
        """The base clock's driver with delays divided by the factor: threads over the
        system clock, the fake clock's steps over a FakeClock."""
        return RescaledScheduler(scheduler_for(self.base), self.factor)

    def __repr__(self) -> str:
        return f"ScaledClock({self.factor:g}, epoch={self.epoch.isoformat()})"


def clock_rate(clock: Clock) -> float:
    """Clock seconds per real second: 1 on real and fake clocks, the factor on a scaled one
    (views turn rates and ETAs into real time with it)."""
    real = clock.real_seconds(1.0)
    return 1.0 / real if real else 1.0
