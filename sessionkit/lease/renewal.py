"""A lease's durations, named and validated together, and its renewal loop.

As client-go's leaderelection: the lease duration (``ttl``) is longer than the renew
deadline, which is longer than ``JITTER`` retry periods, so a holder retries a failed
renewal before its deadline and gives up before anyone else may take over. The loop
renews every ``retry_period`` through the clock's scheduler (sessionkit/scheduler.py):
a thread in production, the fake clock's steps in tests, the same code in both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..errors import LeaseLost, SessionkitError
from ..scheduler import Task, scheduler_for
from ..validate import at_least_floor, check_period, check_seconds

__all__ = ["LeaseTiming", "Renewer", "JITTER", "REQUEST_SHARE", "DEADLINE_SHARE", "RETRY_SHARE"]

log = logging.getLogger("sessionkit.lease")

DEADLINE_SHARE = 2 / 3  # renew_deadline by default: this share of ttl (client-go: 10 s of 15 s)
RETRY_SHARE = 1 / 7.5  # retry_period by default: this share of ttl (client-go: 2 s of 15 s)
JITTER = 1.2  # renew_deadline must exceed this many retry periods (client-go's JitterFactor)
REQUEST_SHARE = 0.4  # each store request is given at most this share of the renew deadline (< 1/2)


@dataclass(frozen=True)
class LeaseTiming:
    """Every duration of a lease, in seconds of its clock (``request_timeout``: real seconds,
    None on a clock that does not move by itself)."""

    ttl: float  # how long a record may lie unchanged before observers take it over
    renew_deadline: float  # how long after its last renewal began a holder keeps acting
    retry_period: float  # how often the holder renews, and an acquirer tries
    request_timeout: Optional[float]  # how long any one store request may take

    @classmethod
    def of(cls, name: str, *, ttl: object, renew_deadline: object, retry_period: object, clock: Any,
           remote: bool) -> "LeaseTiming":
        """The durations of lease ``name``, checked; ValueError naming the one that is wrong."""
        ttl_s = check_seconds("ttl", ttl, "how long a lease record may lie unchanged before others take over")
        deadline = (check_seconds("renew_deadline", renew_deadline, "how long a holder acts after its "
                                  "last renewal began, or None: 2/3 of ttl")
                    if renew_deadline is not None else ttl_s * DEADLINE_SHARE)
        retry = (check_period("retry_period", retry_period, clock=clock, remote=remote,
                              what="how often the lease is renewed or tried, or None: ttl/7.5")
                 if retry_period is not None else at_least_floor(ttl_s * RETRY_SHARE, clock=clock, remote=remote))
        if not ttl_s > deadline:
            raise ValueError(f"lease {name!r}: ttl ({ttl_s:g} s) must be greater than renew_deadline "
                             f"({deadline:g} s), so a holder gives up before others take over")
        if not deadline > JITTER * retry:
            raise ValueError(f"lease {name!r}: renew_deadline ({deadline:g} s) must be greater "
                             f"than {JITTER:g} x retry_period ({retry:g} s), so a renewal can be "
                             f"retried before the deadline")
        # below half the renew deadline, so a hung request leaves time for a retry
        return cls(ttl_s, deadline, retry, clock.real_seconds(deadline * REQUEST_SHARE))


class Renewer:
    """Renews a lease every ``retry_period`` in the background until released or lost.
    It only talks to the store (through ``renew``); it never touches widgets."""

    def __init__(self, name: str, renew: Callable[[], bool], *, clock: Any, period: float) -> None:
        self.name = name
        self._renew = renew
        self._clock = clock
        self._period = period
        self._task: Optional[Task] = None

    def start(self) -> None:
        if self.running:
            return
        self._task = scheduler_for(self._clock).start(f"lease-{self.name}", self._step, after=self._period)

    def _step(self) -> Optional[float]:
        """One round: renew; the loop ends when the lease is lost."""
        try:
            self._renew()
        except LeaseLost as exc:
            log.warning("%s", exc)
            return None
        except SessionkitError as exc:
            log.warning("lease %r: renewal error: %s", self.name, exc)
        return self._period

    @property
    def running(self) -> bool:
        return self._task is not None and self._task.alive

    def cancel(self) -> None:
        """No renewal starts after this (one in flight finishes)."""
        if self._task is not None:
            self._task.cancel()

    def stop(self) -> None:
        """``cancel``, then wait (5 real seconds at most) for a renewal in flight."""
        task = self._task
        if task is not None:
            task.cancel()
            task.join(timeout=5)
